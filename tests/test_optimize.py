"""ex.optimize: adaptive search with Optuna, every proposed trial a recorded daskperiment trial."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from daskperiment import Experiment, ParameterNotDefinedError, ParameterUndefinedError
from daskperiment.errors import OptimizeError

optuna = pytest.importorskip("optuna")
FloatDistribution = optuna.distributions.FloatDistribution
IntDistribution = optuna.distributions.IntDistribution
CategoricalDistribution = optuna.distributions.CategoricalDistribution
TrialState = optuna.trial.TrialState

SPACE = {"x": FloatDistribution(-5, 5), "y": FloatDistribution(-5, 5)}


def quadratic(x: float, y: float) -> float:
    return (x - 2) ** 2 + (y + 1) ** 2


def quadratic_experiment(ex: Experiment):
    x, y = ex.parameter("x"), ex.parameter("y")

    @ex.result
    def score(x, y):
        return (x - 2) ** 2 + (y + 1) ** 2

    return score(x, y)


def sweep_rows(ex: Experiment, name: str):
    history = ex.get_history(verbose=True)
    return history[history["Sweep"] == name]


def check_study_matches_store(ex: Experiment, study, name: str) -> None:
    """Each study trial names one recorded trial of the search, with its parameters and outcome."""
    rows = sweep_rows(ex, name)
    ids = [trial.user_attrs["daskperiment_trial_id"] for trial in study.trials]
    assert sorted(ids) == sorted(rows.index) and len(set(ids)) == len(ids)
    for trial in study.trials:
        trial_id = trial.user_attrs["daskperiment_trial_id"]
        assert ex.get_parameters(trial_id) == trial.params
        if trial.state == TrialState.COMPLETE:
            assert rows.loc[trial_id, "Success"]
            assert rows.loc[trial_id, "Result"] == trial.value
        else:
            assert trial.state == TrialState.FAIL
            assert not rows.loc[trial_id, "Success"]


def check_best_is_recorded(ex: Experiment, study) -> None:
    best = study.best_trial.user_attrs["daskperiment_trial_id"]
    assert ex.get_parameters(best) == study.best_params
    assert ex.get_history().loc[best, "Result"] == study.best_value


# -- searching ------------------------------------------------------------------------


def test_quadratic_on_threads(ex: Experiment) -> None:
    verbosity = optuna.logging.get_verbosity()
    study = ex.optimize(
        quadratic_experiment(ex), SPACE, 30, n_parallel=4, seed=3, scheduler="threads", name="quad"
    )
    assert optuna.logging.get_verbosity() == verbosity  # optuna's own logging is left alone
    rows = sweep_rows(ex, "quad")
    assert len(rows) == 30 and rows["Success"].all()
    assert (rows["Seed"] == 3).all()
    for trial_id, row in rows.iterrows():
        assert row["Result"] == pytest.approx(quadratic(row["x"], row["y"]), rel=1e-12, abs=1e-12)
    assert len(study.trials) == 30
    assert all(trial.state == TrialState.COMPLETE for trial in study.trials)
    check_study_matches_store(ex, study, "quad")
    check_best_is_recorded(ex, study)
    assert study.best_value == rows["Result"].min()
    assert abs(study.best_params["x"] - 2) < 1.5 and abs(study.best_params["y"] + 1) < 1.5
    assert study.best_value < 2
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert ex.get_direction() == "minimize"


def test_maximize_and_a_mixed_space(ex: Experiment) -> None:
    n, kind = ex.parameter("n"), ex.parameter("kind")

    @ex.result
    def score(n, kind):
        return -((n - 3) ** 2) + (10 if kind == "good" else 0)

    space = {"n": IntDistribution(0, 6), "kind": CategoricalDistribution(["bad", "good"])}
    study = ex.optimize(score(n, kind), space, 20, direction="maximize", seed=1, name="mixed")
    check_study_matches_store(ex, study, "mixed")
    check_best_is_recorded(ex, study)
    rows = sweep_rows(ex, "mixed")
    assert study.best_value == rows["Result"].max()
    assert all(isinstance(v, int) for v in rows["n"]) and set(rows["kind"]) <= {"bad", "good"}
    assert ex.get_direction() == "maximize"


def test_define_by_run_space(ex: Experiment) -> None:
    result = quadratic_experiment(ex)

    def space(trial) -> dict:
        x = trial.suggest_float("x", 0, 4)
        return {"x": x, "y": trial.suggest_float("y", -3, 1) if x > 1 else -1.0}

    study = ex.optimize(result, space, 12, n_parallel=3, seed=2, name="dbr")
    rows = sweep_rows(ex, "dbr")
    assert len(rows) == 12 and rows["Success"].all()
    for trial in study.trials:
        recorded = ex.get_parameters(trial.user_attrs["daskperiment_trial_id"])
        assert recorded["x"] == trial.params["x"]
        assert recorded["y"] == trial.params.get("y", -1.0)
        assert trial.value == pytest.approx(quadratic(recorded["x"], recorded["y"]))


def test_failing_trials_are_told_failed_and_the_search_goes_on(ex: Experiment) -> None:
    x = ex.parameter("x")

    @ex.result
    def score(x):
        if x % 3 == 0:
            raise ValueError(f"no multiples of 3: {x}")
        return float(x)

    study = ex.optimize(score(x), {"x": IntDistribution(0, 20)}, 15, n_parallel=3, seed=4, name="fails")
    rows = sweep_rows(ex, "fails")
    assert len(rows) == 15 == len(study.trials)
    failed = rows[~rows["Success"]]
    assert len(failed) > 0 and (failed["x"] % 3 == 0).all()
    assert (rows[rows["Success"]]["x"] % 3 != 0).all()
    for trial_id, row in failed.iterrows():
        assert row["Description"] == f"ValueError(no multiples of 3: {row['x']})"
    check_study_matches_store(ex, study, "fails")
    assert sum(t.state == TrialState.FAIL for t in study.trials) == len(failed)
    check_best_is_recorded(ex, study)


def test_same_seed_proposes_the_same_parameters(make_experiment) -> None:
    proposals = []
    for _ in range(2):
        ex = make_experiment()
        study = ex.optimize(quadratic_experiment(ex), SPACE, 14, n_parallel=1, seed=11, scheduler="sync")
        proposals.append([trial.params for trial in study.trials])
        assert (ex.get_history(verbose=True)["Seed"] == 11).all()
    assert proposals[0] == proposals[1]
    assert len({tuple(p.values()) for p in proposals[0]}) == 14


def test_continues_a_given_study(ex: Experiment) -> None:
    result = quadratic_experiment(ex)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    ex.optimize(result, SPACE, 5, study=study, name="first")
    again = ex.optimize(result, SPACE, 5, study=study, name="second")
    assert again is study and len(study.trials) == 10
    assert len(sweep_rows(ex, "first")) == len(sweep_rows(ex, "second")) == 5
    ids = [t.user_attrs["daskperiment_trial_id"] for t in study.trials]
    assert sorted(ids) == sorted([*sweep_rows(ex, "first").index, *sweep_rows(ex, "second").index])
    check_best_is_recorded(ex, study)


def test_on_a_local_cluster_of_processes(ex: Experiment) -> None:
    distributed = pytest.importorskip("distributed")
    x, y = ex.parameter("x"), ex.parameter("y")

    @ex.result
    def score(x, y):
        import os

        ex.save_metric("pid", 0, float(os.getpid()))
        return (x - 2) ** 2 + (y + 1) ** 2

    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster, distributed.Client(cluster):
        study = ex.optimize(score(x, y), SPACE, 12, n_parallel=2, seed=5, name="cluster")
    rows = sweep_rows(ex, "cluster")
    assert len(rows) == 12 and rows["Success"].all()
    for trial_id, row in rows.iterrows():
        assert row["Result"] == pytest.approx(quadratic(row["x"], row["y"]))
    check_study_matches_store(ex, study, "cluster")
    check_best_is_recorded(ex, study)
    pids = ex.load_metric("pid", list(rows.index)).iloc[0]
    assert os.getpid() not in set(pids)  # every trial ran on a worker


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({}, "space must be a non-empty dict"),
        ([("x", 1)], "space must be a non-empty dict"),
        ({"x": [0, 1]}, "space of parameter 'x' must be an Optuna distribution"),
        ({"x": FloatDistribution(0, 1), "y": "uniform"}, "space of parameter 'y'"),
    ],
)
def test_malformed_space_is_refused_before_anything_runs(ex: Experiment, space, message) -> None:
    with pytest.raises(OptimizeError, match=message):
        ex.optimize(quadratic_experiment(ex), space, 3)
    assert ex.trial_id == 0


def test_unknown_or_missing_parameters_are_refused_before_anything_runs(ex: Experiment) -> None:
    result = quadratic_experiment(ex)
    with pytest.raises(ParameterNotDefinedError, match="'z'"):
        ex.optimize(result, {**SPACE, "z": FloatDistribution(0, 1)}, 3)
    with pytest.raises(ParameterUndefinedError, match="'y'"):
        ex.optimize(result, {"x": FloatDistribution(0, 1)}, 3)
    assert ex.trial_id == 0


@pytest.mark.parametrize(("option", "value"), [("n_trials", 0), ("n_parallel", 0), ("n_parallel", 1.5)])
def test_bad_counts(ex: Experiment, option: str, value: object) -> None:
    arguments = {"n_trials": 3, option: value}
    with pytest.raises(OptimizeError, match=f"{option} must be a positive integer"):
        ex.optimize(quadratic_experiment(ex), SPACE, **arguments)
    assert ex.trial_id == 0


def test_not_a_result_is_a_type_error(ex: Experiment) -> None:
    quadratic_experiment(ex)
    with pytest.raises(TypeError, match=r"ex.optimize\(\) takes the output of an @ex.result step"):
        ex.optimize(ex.parameter("x"), SPACE, 3)


def test_a_space_function_that_returns_no_dict(ex: Experiment) -> None:
    study = optuna.create_study()
    with pytest.raises(OptimizeError, match="the space function must return a dict"):
        ex.optimize(quadratic_experiment(ex), lambda trial: trial.suggest_float("x", 0, 1), 3, study=study)
    assert [t.state for t in study.trials] == [TrialState.FAIL]
    assert ex.trial_id == 0


def test_a_result_that_is_no_number_stops_the_search(ex: Experiment) -> None:
    x = ex.parameter("x")

    @ex.result
    def label(x):
        return f"x={x}"

    study = optuna.create_study()
    with pytest.raises(OptimizeError, match=r"trial 1 returned 'x=\d' \(a str\): ex.optimize needs .* real number"):
        ex.optimize(label(x), {"x": IntDistribution(0, 9)}, 5, n_parallel=1, study=study)
    assert [t.state for t in study.trials] == [TrialState.FAIL]
    history = ex.get_history()
    assert list(history.index) == [1] and history.loc[1, "Success"]  # the trial itself succeeded


def test_nan_results_are_told_failed(ex: Experiment) -> None:
    x = ex.parameter("x")

    @ex.result
    def score(x):
        return math.nan if x < 5 else float(x)

    study = ex.optimize(score(x), {"x": IntDistribution(0, 9)}, 10, seed=0)
    for trial in study.trials:
        expected = TrialState.FAIL if trial.params["x"] < 5 else TrialState.COMPLETE
        assert trial.state == expected


@pytest.mark.parametrize("direction", ["max", "MINIMIZE", 1, ""])
def test_bad_direction(ex: Experiment, direction: object) -> None:
    with pytest.raises(ValueError, match=f"invalid direction {direction!r}: use 'minimize'"):
        ex.set_direction(direction)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid direction"):
        ex.optimize(quadratic_experiment(ex), SPACE, 3, direction=direction)  # type: ignore[arg-type]
    assert ex.get_direction() is None and ex.trial_id == 0


def test_a_study_in_another_direction_is_refused(ex: Experiment) -> None:
    result = quadratic_experiment(ex)
    maximizing = optuna.create_study(direction="maximize", study_name="up")
    with pytest.raises(OptimizeError, match="study 'up' is set to maximize but the direction given is minimize"):
        ex.optimize(result, SPACE, 3, study=maximizing, direction="minimize")
    ex.set_direction("minimize")
    with pytest.raises(OptimizeError, match="direction stored with experiment .* is minimize"):
        ex.optimize(result, SPACE, 3, study=maximizing)
    two = optuna.create_study(directions=["minimize", "maximize"])
    with pytest.raises(OptimizeError, match="2 objectives"):
        ex.optimize(result, SPACE, 3, study=two)
    assert ex.trial_id == 0 and maximizing.trials == []


def test_a_study_gives_its_direction_when_none_is_stored(ex: Experiment) -> None:
    study = optuna.create_study(direction="maximize")
    ex.optimize(quadratic_experiment(ex), SPACE, 2, study=study, seed=0)
    assert ex.get_direction() == "maximize"


# -- the direction is stored with the experiment -----------------------------------------


def test_direction_survives_a_new_process(ex: Experiment, run_python: Callable, tmp_path: Path) -> None:
    assert ex.get_direction() is None
    ex.optimize(quadratic_experiment(ex), SPACE, 2, direction="maximize", seed=0)
    code = (
        "import sys, pathlib, daskperiment\n"
        f"ex = daskperiment.Experiment({ex.id!r}, backend=pathlib.Path(sys.argv[1]))\n"
        "print(ex.get_direction())\n"
        "ex.set_direction('minimize')\n"
    )
    done = run_python(code, str(tmp_path / "store" / ex.id))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "maximize\n"
    assert ex.get_direction() == "minimize"


@pytest.mark.parametrize("store", ["local", "redis", "mongo"])
def test_direction_is_stored_with_the_experiment(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    backend = tmp_path / "store" if store == "local" else request.getfixturevalue(f"{store}_uri")
    ex = Experiment("directed", backend=backend)
    ex.optimize(quadratic_experiment(ex), SPACE, 3, direction="maximize", seed=0, name="up")
    ex.backend.close()
    Experiment._instances.clear()

    reopened = Experiment("directed", backend=backend)
    assert reopened.get_direction() == "maximize"
    study = reopened.optimize(quadratic_experiment(reopened), SPACE, 3, seed=0, name="again")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    check_study_matches_store(reopened, study, "again")
    assert study.best_value == sweep_rows(reopened, "again")["Result"].max()
    reopened.set_direction("minimize")
    reopened.backend.close()
    Experiment._instances.clear()
    assert Experiment("directed", backend=backend).get_direction() == "minimize"
