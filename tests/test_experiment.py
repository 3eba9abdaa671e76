"""The Experiment API: parameters, steps, trials, history, persisted values, code."""

from __future__ import annotations

import pathlib
import random

import numpy as np
import pandas as pd
import pytest

import daskperiment
from daskperiment import Experiment
from daskperiment.errors import (
    BackendError,
    InvalidExperimentIDError,
    ParameterNotDefinedError,
    ParameterUndefinedError,
    PersistedValueNotFoundError,
    PersistError,
    TrialIDNotFoundError,
)


def build(ex: Experiment):
    """The two-step graph of the README: score(prepare(a, b))."""
    a, b = ex.parameter("a"), ex.parameter("b", default=2)

    @ex
    def prepare(a, b):
        return a + b

    @ex.result
    def score(s):
        ex.save_metric("loss", epoch=0, value=1 / s)
        return 10 / s

    return score(prepare(a, b))


def test_default_backend_and_repr() -> None:
    ex = Experiment(id="demo")
    assert repr(ex) == "Experiment(id: demo, trial_id: 0, backend: LocalBackend('daskperiment_cache/demo'))"
    assert (pathlib.Path("daskperiment_cache") / "demo").is_dir()
    assert repr(ex.parameter("a")) == "Parameter(a: Undefined)"
    assert repr(ex.parameter("b", default=2)) == "Parameter(b: 2<class 'int'>)"


def test_same_id_returns_same_instance(tmp_path: pathlib.Path) -> None:
    first = Experiment("same", backend=tmp_path / "s")
    assert Experiment("same", backend=tmp_path / "s") is first
    assert Experiment("same", backend=tmp_path / "s", seed=3).seed == 3


def test_same_id_with_another_backend_switches_to_it(tmp_path: pathlib.Path) -> None:
    first = Experiment("same", backend=tmp_path / "one")
    assert Experiment("same", backend=tmp_path / "two") is first
    assert repr(first.backend) == f"LocalBackend('{tmp_path / 'two'}')"


@pytest.mark.parametrize("bad", ["", "a/b", "..", "a\\b", " x", "x y", "ü", 3, None, "a" * 129])
def test_invalid_experiment_ids(bad: object) -> None:
    with pytest.raises(InvalidExperimentIDError, match="invalid experiment id"):
        Experiment(bad)  # type: ignore[arg-type]
    assert not pathlib.Path("daskperiment_cache").exists()


def test_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match="unknown backend 'ftp://x'"):
        Experiment("x", backend="ftp://x")


def test_trials_are_recorded_in_history(ex: Experiment) -> None:
    s = build(ex)
    ex.set_parameters(a=1, b=2)
    assert s.compute(seed=1) == pytest.approx(10 / 3)
    ex.set_parameters(a=3)
    assert s.compute(seed=2) == pytest.approx(2.0)
    assert ex.trial_id == 2

    history = ex.get_history()
    assert history.index.name == "Trial ID"
    assert list(history.index) == [1, 2]
    assert list(history.columns) == [
        "a", "b", "Result", "Success", "Finished", "Process Time", "Description", "Status"
    ]
    assert list(history["a"]) == [1, 3] and list(history["b"]) == [2, 2]
    assert history["Result"].tolist() == pytest.approx([10 / 3, 2.0])
    assert history["Success"].tolist() == [True, True]
    assert pd.api.types.is_datetime64_any_dtype(history["Finished"])
    assert pd.api.types.is_timedelta64_dtype(history["Process Time"])
    assert (history["Process Time"] > pd.Timedelta(0)).all()
    assert history["Description"].isna().all() and history["Description"].dtype == "float64"

    verbose = ex.get_history(verbose=True)
    assert list(verbose.columns) == [
        "a", "b", "Seed", "Result", "Result Type", "Success", "Finished", "Process Time",
        "Description", "Status",
    ]
    assert verbose["Result Type"].tolist() == ["<class 'float'>", "<class 'float'>"]
    assert verbose["Seed"].tolist() == [1, 2]
    assert ex.get_parameters(trial_id=1) == {"a": 1, "b": 2}
    assert ex.get_parameters() == {"a": 3, "b": 2}


def test_failed_trial_is_recorded_and_reraised(ex: Experiment) -> None:
    a = ex.parameter("a")

    @ex.result
    def inverse(a):
        return 1 / a

    ex.set_parameters(a=0)
    with pytest.raises(ZeroDivisionError):
        inverse(a).compute()
    history = ex.get_history(verbose=True)
    assert history.loc[1, "Success"] == False  # noqa: E712 (numpy bool)
    assert history.loc[1, "Description"] == "ZeroDivisionError(division by zero)"
    assert np.isnan(history.loc[1, "Result"])
    assert history.loc[1, "Result Type"] == "None"
    ex.set_parameters(a=4)
    assert inverse(a).compute() == 0.25
    assert ex.get_history()["Success"].tolist() == [False, True]


def test_undefined_parameter_raises_and_records_nothing(ex: Experiment) -> None:
    a, c = ex.parameter("a"), ex.parameter("c")

    @ex.result
    def add(a, c):
        return a + c

    with pytest.raises(ParameterUndefinedError, match=r"parameters 'a', 'c' have no value.*set_parameters\(a=..., c=...\)"):
        add(a, c).compute()
    assert ex.trial_id == 0 and ex.get_history().empty


def test_only_parameters_in_the_graph_must_be_set(ex: Experiment) -> None:
    a = ex.parameter("a")
    ex.parameter("unused")

    @ex.result
    def twice(a):
        return 2 * a

    ex.set_parameters(a=5)
    assert twice(a).compute() == 10
    assert ex.get_parameters(1) == {"a": 5}


def test_set_unknown_parameter_is_refused_and_changes_nothing(ex: Experiment) -> None:
    ex.parameter("a")
    ex.set_parameters(a=1)
    with pytest.raises(ParameterNotDefinedError, match=r"parameter 'z' is not defined.*ex.parameter\('z'\).*defined parameters: a"):
        ex.set_parameters(a=2, z=3)
    assert ex.get_parameters() == {"a": 1}


def test_invalid_parameter_name(ex: Experiment) -> None:
    with pytest.raises(ValueError, match="Python identifier"):
        ex.parameter("learning rate")


@pytest.mark.parametrize("name", ["Result", "Success", "Description", "Finished", "Seed", "Sweep", "Cached", "Status"])
def test_parameter_names_of_history_columns_are_refused(ex: Experiment, name: str) -> None:
    with pytest.raises(ValueError, match=f"invalid parameter name '{name}': the history has a column "
                                         f"'{name}' of its own; rename the parameter, e.g. '{name.lower()}_value'"):
        ex.parameter(name)
    ex.parameter(name.lower())  # another case is another name
    with pytest.raises(ParameterNotDefinedError):
        ex.set_parameters(**{name: 1})


def test_unpicklable_parameter_value_is_refused(ex: Experiment) -> None:
    import threading

    ex.parameter("lock")
    with pytest.raises(TypeError, match="parameter 'lock' cannot be recorded"):
        ex.set_parameters(lock=threading.Lock())


def test_decorators_with_and_without_parentheses(ex: Experiment) -> None:
    x = ex.parameter("x", default=1)

    @ex()
    def inc(x):
        return x + 1

    @ex.persist()
    def double(x):
        return 2 * x

    @ex.result()
    def total(u, v):
        return u + v

    assert total(inc(x), double(x)).compute() == 4
    assert ex.get_persisted("double", 1) == 2
    assert ex.get_persisted(double, 1) == 2
    assert inc.__name__ == "inc" and inc.__wrapped__(1) == 2


def test_steps_chain_like_dask_delayed(ex: Experiment) -> None:
    import dask

    x = ex.parameter("x", default=3)

    @ex
    def square(x):
        return x * x

    inner = square(x)
    assert isinstance(inner, dask.delayed(lambda: 0)().__class__)
    plain = dask.delayed(lambda v: v - 1)(inner)  # a plain delayed function in between

    @ex.result
    def report(v):
        return {"value": v}

    assert report(plain).compute() == {"value": 8}
    assert ex.get_history()["Result"].tolist() == [{"value": 8}]


def test_intermediate_compute_is_a_dry_run(ex: Experiment) -> None:
    a = ex.parameter("a", default=2)

    @ex
    def step(a):
        ex.save_metric("m", 0, 1.0)
        return a * 10

    assert step(a).compute() == 20
    assert ex.trial_id == 0


def test_visualize_is_available(ex: Experiment) -> None:
    s = build(ex)
    assert callable(s.visualize)
    assert s.key.startswith("score-")


def test_trial_id_and_current_trial_id(ex: Experiment) -> None:
    seen = []

    @ex.result
    def step():
        seen.append(ex.current_trial_id)
        return ex.current_trial_id

    assert ex.trial_id == 0
    assert step().compute() == 1
    assert step().compute() == 2
    assert seen == [1, 2] and ex.trial_id == 2
    with pytest.raises(TrialIDNotFoundError, match="only available inside a step"):
        ex.current_trial_id  # noqa: B018 - the property raises


def test_unknown_trial_ids_are_clear_errors(ex: Experiment) -> None:
    s = build(ex)
    ex.set_parameters(a=1)
    s.compute()
    with pytest.raises(TrialIDNotFoundError, match="trial 5 of experiment .* does not exist: its trial ids go up to 1"):
        ex.get_parameters(trial_id=5)
    with pytest.raises(TrialIDNotFoundError, match="invalid trial id 'x'"):
        ex.get_code(trial_id="x")  # type: ignore[arg-type]
    with pytest.raises(TrialIDNotFoundError, match="does not exist"):
        ex.load_metric("loss", trial_id=[1, 9])
    with pytest.raises(TrialIDNotFoundError, match="does not exist"):
        ex.get_persisted("prepare", 3)


def test_persisted_values(ex: Experiment) -> None:
    n = ex.parameter("n")

    @ex.persist
    def data(n):
        return np.arange(n)

    @ex.result
    def total(d):
        return int(d.sum())

    for value in (3, 5):
        ex.set_parameters(n=value)
        total(data(n)).compute()
    np.testing.assert_array_equal(ex.get_persisted("data", trial_id=1), np.arange(3))
    np.testing.assert_array_equal(ex.get_persisted("data", trial_id=2), np.arange(5))
    with pytest.raises(PersistedValueNotFoundError, match="step 'total' persisted nothing in trial 1"):
        ex.get_persisted("total", 1)


def test_unpicklable_persisted_value_fails_the_trial_cleanly(ex: Experiment) -> None:
    import threading

    @ex.persist
    def make_lock():
        ex.save_metric("before", 0, 1.0)
        return threading.Lock()

    @ex.result
    def use(lock):
        return "never"

    with pytest.raises(PersistError, match="output of persisted step 'make_lock' cannot be stored"):
        use(make_lock()).compute()
    history = ex.get_history()
    assert history.loc[1, "Success"] == False  # noqa: E712
    assert history.loc[1, "Description"].startswith("PersistError(the output of persisted step")
    with pytest.raises(PersistedValueNotFoundError):
        ex.get_persisted("make_lock", 1)
    assert ex.load_metric("before", 1)[1].tolist() == [1.0]  # what the step saved is kept


def test_unpicklable_result_is_recorded_as_its_repr(ex: Experiment, warnings_of) -> None:
    import threading

    lock = threading.Lock()

    @ex.result
    def give():
        return lock

    assert give().compute() is lock
    assert ex.get_history(verbose=True).loc[1, "Result"] == repr(lock)
    assert any("cannot be serialized" in w for w in warnings_of())


def test_persist_stacked_on_a_step(ex: Experiment) -> None:
    @ex.persist
    @ex
    def value():
        return 7

    @ex.result
    def out(v):
        return v

    out(value()).compute()
    assert ex.get_persisted("value", 1) == 7


def test_history_is_reloaded_by_a_new_process(make_experiment, run_python, tmp_path) -> None:
    ex = make_experiment("reload", backend=tmp_path / "shared")
    s = build(ex)
    for a in (1, 2, 3):
        ex.set_parameters(a=a)
        s.compute(seed=a)
    code = f"""
import daskperiment, pathlib
ex = daskperiment.Experiment("reload", backend=pathlib.Path({str(tmp_path / 'shared')!r}))
print(ex.trial_id)
print(ex.get_history(verbose=True).to_json(orient="split", date_format="iso"))
print(ex.load_metric("loss", [1, 3]).to_json(orient="split"))
"""
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    trial_id, history, metrics = out.stdout.splitlines()
    assert trial_id == "3"
    mine = ex.get_history(verbose=True).to_json(orient="split", date_format="iso")
    assert history == mine
    assert metrics == ex.load_metric("loss", [1, 3]).to_json(orient="split")


def test_seeding(ex: Experiment, warnings_of) -> None:
    @ex.result
    def draw():
        return (random.random(), float(np.random.rand()))

    first = draw().compute(seed=42)
    again = draw().compute(seed=42)
    other = draw().compute(seed=7)
    assert first == again != other
    unseeded = draw().compute()
    seeds = ex.get_history(verbose=True)["Seed"].tolist()
    assert seeds[:3] == [42, 42, 7]
    assert isinstance(seeds[3], int) and 0 <= seeds[3] < 2**32
    random.seed(seeds[3])
    np.random.seed(seeds[3])
    assert unseeded == (random.random(), float(np.random.rand()))


def test_experiment_default_seed(make_experiment) -> None:
    ex = make_experiment(seed=11)

    @ex.result
    def draw():
        return random.random()

    value = draw().compute()
    random.seed(11)
    assert value == random.random()
    assert ex.get_history(verbose=True)["Seed"].tolist() == [11]


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "1", True])
def test_invalid_seed(ex: Experiment, seed: object) -> None:
    @ex.result
    def one():
        return 1

    with pytest.raises(ValueError, match="invalid seed"):
        one().compute(seed=seed)
    assert ex.trial_id == 0


def test_purity_warning(ex: Experiment, warnings_of) -> None:
    x = ex.parameter("x", default=1)
    counter = iter(range(100))

    @ex
    def impure(x):
        return x + next(counter)

    @ex.result
    def out(v):
        return v

    out(impure(x)).compute()
    assert not any("not pure" in w for w in warnings_of())
    out(impure(x)).compute()
    warnings = [w for w in warnings_of() if "not pure" in w]
    assert len(warnings) == 1
    assert "(step: impure, args: (1,), kwargs: {})" in warnings[0]


def test_pure_steps_do_not_warn(ex: Experiment, warnings_of) -> None:
    x = ex.parameter("x", default=np.arange(4))

    @ex
    def frame(x):
        return pd.DataFrame({"x": x})

    @ex.result
    def total(f):
        return int(f["x"].sum())

    for _ in range(3):
        total(frame(x)).compute()
    assert not any("not pure" in w for w in warnings_of())


def test_code_is_captured_and_changes_are_diffed(ex: Experiment, warnings_of, tmp_path) -> None:
    @ex.result
    def value():
        return 1

    value().compute()
    assert "def value():\n    return 1" in ex.get_code()
    assert ex.get_code(1) == ex.get_code()

    namespace: dict = {"ex": ex}
    exec("@ex.result\ndef value():\n    return 2\n", namespace)  # redefined, as in a notebook
    namespace["value"]().compute()
    changes = [w for w in warnings_of() if "Code context has been changed since" in w]
    assert len(changes) == 1
    assert "--- trial 1" in changes[0] and "+++ trial 2" in changes[0]
    code_file = ex.code_file(1)
    assert code_file == tmp_path / "store" / ex.id / "code" / f"{ex.id}_1.py"
    assert code_file.read_text() == ex.get_code(1)
    assert ex.code_file(2).read_text() == ex.get_code(2)
    assert ex.get_code(1) != ex.get_code(2)


def test_code_change_since_the_last_trial_of_an_earlier_process(child_env, tmp_path) -> None:
    import subprocess
    import sys

    script = tmp_path / "code_module.py"  # imported, not run as a script
    template = (
        "import daskperiment, pathlib\n"
        "ex = daskperiment.Experiment('codes', backend=pathlib.Path('codes'))\n\n"
        "@ex.result\ndef f():\n    return {value}\n\n"
        "f().compute()\n"
    )
    outcomes = []
    for value in (1, 2):
        script.write_text(template.format(value=value))
        outcomes.append(
            subprocess.run([sys.executable, "-c", "import code_module"], cwd=tmp_path, env=child_env,
                           capture_output=True, text=True, timeout=120)
        )
    assert [o.returncode for o in outcomes] == [0, 0], outcomes[1].stderr
    assert "Code context has been changed" not in outcomes[0].stderr
    assert "Code context has been changed since trial 1" in outcomes[1].stderr
    assert "-    return 1" in outcomes[1].stderr and "+    return 2" in outcomes[1].stderr
    assert "not pure" not in outcomes[1].stderr


def test_steps_without_source_do_not_look_impure(ex: Experiment, warnings_of) -> None:
    namespace: dict = {"ex": ex}
    for value in (1, 2):
        exec(f"@ex.result\ndef f():\n    return {value}\n", namespace)
        namespace["f"]().compute()
    assert "source of f is not available" in ex.get_code(2)
    assert not any("not pure" in w for w in warnings_of())


def test_public_api_names() -> None:
    for name in (
        "parameter", "set_parameters", "get_parameters", "persist", "result", "trial_id",
        "current_trial_id", "get_history", "get_persisted", "save_metric", "load_metric",
        "get_code", "get_environment", "get_python_packages",
    ):
        assert hasattr(Experiment, name), name
    assert daskperiment.__version__


def test_import_is_light(run_python) -> None:
    out = run_python(
        "import sys, daskperiment\n"
        "print(sorted(m for m in ('pandas', 'numpy', 'scipy', 'git', 'cpuinfo') if m in sys.modules))"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "value",
    [
        (len, "abc"),  # a tuple that looks like a dask task
        "STEP_KEY",  # a string equal to a key of the graph
        ["STEP_KEY", 1],  # a list holding a key
        {"k": ("STEP_KEY",)},
        np.arange(3),
        None,
        1.5,
    ],
)
def test_parameter_values_reach_steps_intact(ex: Experiment, value: object) -> None:
    p = ex.parameter("p")

    @ex
    def first():
        return "first"

    head = first()
    if isinstance(value, (str, list, dict)):
        value = _replace_marker(value, head.key)

    @ex.result
    def echo(p, h):
        return p

    ex.set_parameters(p=value)
    out = echo(p, head).compute()
    if isinstance(value, np.ndarray):
        np.testing.assert_array_equal(out, value)
    else:
        assert out == value and type(out) is type(value)


def _replace_marker(value: object, key: str) -> object:
    if isinstance(value, str) and value == "STEP_KEY":
        return key
    if isinstance(value, list):
        return [_replace_marker(v, key) for v in value]
    if isinstance(value, tuple):
        return tuple(_replace_marker(v, key) for v in value)
    if isinstance(value, dict):
        return {k: _replace_marker(v, key) for k, v in value.items()}
    return value


def test_default_backend_from_the_environment(tmp_path: pathlib.Path, monkeypatch) -> None:
    monkeypatch.setenv("DASKPERIMENT_BACKEND", str(tmp_path / "chosen"))
    ex = Experiment("from_env")
    assert repr(ex.backend) == f"LocalBackend('{tmp_path / 'chosen'}')"
    monkeypatch.setenv("DASKPERIMENT_BACKEND", "local")
    Experiment._instances.clear()
    assert repr(Experiment("from_env").backend) == "LocalBackend('daskperiment_cache/from_env')"


def test_any_local_scheduler_and_its_options(ex: Experiment) -> None:
    import threading

    import dask

    where = []

    @ex.result
    def step():
        where.append(threading.current_thread() is threading.main_thread())
        return len(where)

    assert step().compute(scheduler="sync") == 1
    assert step().compute(scheduler="threads", num_workers=1) == 2
    assert step().compute(optimize_graph=False) == 3
    with dask.config.set(scheduler="synchronous"):
        assert step().compute() == 4
    assert where == [True, False, False, True]
    assert ex.get_history()["Success"].tolist() == [True] * 4
