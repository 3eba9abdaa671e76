"""`daskperiment sweep SCRIPT name=values ...`, run as a subprocess: the script's result call runs a sweep."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from daskperiment import Experiment
from daskperiment.cli.axes import parse_axis
from daskperiment.script import UsageError
from test_cli import cli

SCRIPT = '''
import daskperiment

ex = daskperiment.Experiment(id="grid")
a, b = ex.parameter("a"), ex.parameter("b", default=2)


@ex
def prepare(a, b):
    return (a, b)


@ex.result
def score(pair):
    a, b = pair
    if a == "fail":
        raise ValueError("asked to fail")
    return repr(a) + "|" + repr(b)


score(prepare(a, b))
'''

USAGE_START = "usage: daskperiment sweep SCRIPT [name=values ...] [--seed N]"


@pytest.fixture(scope="module")
def environment_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of the environment collectors for the module's subprocesses (a cold one is slow)."""
    return tmp_path_factory.mktemp("environment_cache")


def make_project(folder: Path, cache: Path) -> Path:
    (folder / "grid.py").write_text(SCRIPT)
    (folder / ".cache").symlink_to(cache, target_is_directory=True)  # where cli() points the collectors
    return folder


@pytest.fixture
def project(tmp_path: Path, environment_cache: Path) -> Path:
    """A folder with the script grid.py and no store yet."""
    return make_project(tmp_path, environment_cache)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, environment_cache: Path) -> Path:
    """A folder whose store holds one sweep of grid.py, trials 1 and 2."""
    folder = make_project(tmp_path_factory.mktemp("recorded"), environment_cache)
    done = sweep(folder, "grid.py", "a=1,2", "--name", "before")
    assert done.returncode == 0, done.stderr
    return folder


def stored(project: Path, store: str = "daskperiment_cache/grid"):
    """The history of experiment 'grid' as the store holds it now (verbose: with seeds)."""
    Experiment._instances.pop("grid", None)
    path = project / store
    if not path.exists():
        return None
    experiment = Experiment("grid", backend=path)
    history = experiment.get_history(verbose=True)
    experiment.backend.close()
    Experiment._instances.pop("grid", None)
    return history


def sweep(project: Path, *args: str):
    return cli("sweep", *args, cwd=project)


# -- running a grid -------------------------------------------------------------------------


def test_a_3_by_2_grid_is_recorded_row_by_row(project: Path) -> None:
    done = sweep(project, "grid.py", "a=1,2,3", "b=[10, 20]", "--seed", "7", "--name", "g1")
    assert done.returncode == 0, done.stderr
    history = stored(project)
    assert list(history.index) == [1, 2, 3, 4, 5, 6]
    expected = list(itertools.product([1, 2, 3], [10, 20]))
    for trial_id, (a, b) in zip(history.index, expected):
        row = history.loc[trial_id]
        assert (row["a"], row["b"]) == (a, b)
        assert row["Result"] == f"{a!r}|{b!r}"
        assert row["Success"] and row["Seed"] == 7 and row["Sweep"] == "g1"
        assert pd.isna(row["Description"])
    lines = done.stdout.splitlines()  # the sweep's rows, as `daskperiment history` prints them
    assert lines[0].split()[:4] == ["a", "b", "Result", "Success"]
    assert [line.split()[:4] for line in lines[2:]] == [
        [str(t), str(a), str(b), f"{a!r}|{b!r}"] for t, (a, b) in zip(range(1, 7), expected)
    ]


def test_options_before_the_script_and_among_the_values(project: Path) -> None:
    done = sweep(
        project, "--seed", "3", "--scheduler", "sync", "grid.py", "a=1,2", "--per-trial-seeds",
        "--max-in-flight", "1", "--progress", "--backend", "elsewhere",
    )
    assert done.returncode == 0, done.stderr
    assert "2/2 trials" in done.stderr
    assert stored(project) is None  # the default store is untouched
    history = stored(project, "elsewhere")
    assert history["a"].tolist() == [1, 2] and history["b"].tolist() == [2, 2]
    seeds = history["Seed"].tolist()
    assert len(set(seeds)) == 2 and 3 not in seeds  # derived from --seed 3, one per trial
    again = sweep(project, "--seed", "3", "grid.py", "a=1,2", "--per-trial-seeds", "--backend", "elsewhere")
    assert again.returncode == 0, again.stderr
    assert stored(project, "elsewhere")["Seed"].tolist()[2:] == seeds  # reproducible
    assert stored(project, "elsewhere")["Sweep"].nunique() == 2  # generated sweep ids differ


def test_a_failing_trial_is_recorded_and_the_command_fails(project: Path) -> None:
    done = sweep(project, "grid.py", "a=1,fail,3", "b=0")
    assert done.returncode == 1
    assert "1 of 3 trials failed" in done.stderr
    history = stored(project)
    assert history["Success"].tolist() == [True, False, True]
    assert history.loc[2, "Description"] == "ValueError(asked to fail)"
    assert history.loc[3, "Result"] == "3|0"


@pytest.mark.parametrize(
    ("a", "a_values", "b", "b_values"),
    [
        ("a=1,2,3", [1, 2, 3], "b=x,y", ["x", "y"]),
        ("a=0.5,1e-3,True,None", [0.5, 0.001, True, None], "b=7", [7]),
        ("a=[1, 2]", [1, 2], "b=[[1, 2], [3]]", [[1, 2], [3]]),
        ("a=(1, 2),'p,q'", [(1, 2), "p,q"], "b=1:4", [1, 2, 3]),
        ("a=1:10:4", [1, 5, 9], "b=3:0:-1", [3, 2, 1]),
        ("a=linspace(0,1,5)", np.linspace(0, 1, 5).tolist(), "b=logspace(-4,-1,4)", np.logspace(-4, -1, 4).tolist()),
    ],
)
def test_value_forms(project: Path, a: str, a_values: list, b: str, b_values: list) -> None:
    done = sweep(project, "grid.py", a, b)
    assert done.returncode == 0, done.stderr
    history = stored(project)
    recorded = list(zip(history["a"], history["b"]))
    expected = list(itertools.product(a_values, b_values))
    assert recorded == expected
    assert [(type(x), type(y)) for x, y in recorded] == [(type(x), type(y)) for x, y in expected]


# -- usage errors: exit status 2, a message, nothing recorded -----------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a=1", "c=2"], "unknown parameter c: the parameters of experiment 'grid' are a, b"),
        (["b=1,2"], "parameter a has no value and no default: give a=VALUE on the command line"),
        (["a=1,,2"], "invalid values of parameter 'a': empty value"),
        (["a="], "invalid values of parameter 'a': empty value"),
        (["a=[1, 2"], "invalid values of parameter 'a': '[1, 2' is not a valid Python literal"),
        (["a=1,[2"], "invalid values of parameter 'a': '[2' is not a valid Python literal"),
        (["a=[]"], "invalid values of parameter 'a': the list [] is empty"),
        (["a=5:1"], "invalid values of parameter 'a': bad range '5:1': it holds no integer"),
        (["a=1:5:0"], "invalid values of parameter 'a': bad range '1:5:0': the step is 0"),
        (["a=1.5:3"], "invalid values of parameter 'a': bad range '1.5:3': its bounds are not integers"),
        (["a=1:"], "invalid values of parameter 'a': bad range '1:'"),
        (["a=linspace(0,1)"], "invalid values of parameter 'a': bad linspace(0, 1): use linspace(start, stop, num)"),
        (["a=logspace(0,1,0)"], "invalid values of parameter 'a': bad logspace(0, 1, 0)"),
        (["a=linspace(0,1,5"], "invalid values of parameter 'a': malformed linspace(0,1,5"),
        (["a=1", "a=2"], "parameter 'a' is given twice"),
        (["a"], "'a' is not of the form name=value"),
        (["a==1"], "'a==1' has more than one '='"),
        (["a=1", "--seed", "x"], "argument --seed: invalid seed 'x'"),
        (["a=1", "--max-in-flight", "0"], "argument --max-in-flight: '0' is not a positive integer"),
        (["a=1", "--scheduler", "gpu"], "argument --scheduler: invalid choice: 'gpu'"),
        (["a=1", "--name", "no spaces"], "invalid sweep name 'no spaces'"),
        (["a=1", "--verbose"], "unrecognized arguments: --verbose"),
        (["a=0.1e"], "invalid values of parameter 'a': '0.1e' is not a valid Python literal"),
        (["a=1,10**10**10"], "invalid values of parameter 'a': '10**10**10' is not a valid Python literal"),
        (["a=1,nan"], "invalid values of parameter 'a': 'nan' is not a valid Python literal"),
        (["a=[1, 1e309]"], "invalid values of parameter 'a': '[1, 1e309]' is beyond the range of floats"),
    ],
)
def test_usage_errors_exit_2_and_record_nothing(recorded: Path, args: list[str], message: str) -> None:
    done = sweep(recorded, "grid.py", *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(USAGE_START)
    assert f"\ndaskperiment sweep: error: {message}" in done.stderr
    assert "Traceback" not in done.stderr
    history = stored(recorded)
    assert list(history.index) == [1, 2]
    assert history["a"].tolist() == [1, 2] and set(history["Sweep"]) == {"before"}


def test_a_missing_script_is_a_usage_error(project: Path) -> None:
    done = sweep(project, "nope.py", "a=1")
    assert done.returncode == 2
    assert "script 'nope.py' not found" in done.stderr


def test_help_lists_the_parameters_and_the_value_forms(project: Path) -> None:
    done = sweep(project, "grid.py", "a=1", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(USAGE_START)
    assert "\nparameters:\n  a  (required)\n  b=2\n" in done.stdout
    for form in ("a=1,2,3", "a=[1, 2]", "a=1:10:2", "linspace(0,1,5)", "logspace(-4,-1,4)"):
        assert form in done.stdout
    assert stored(project).empty
    general = sweep(project, "--help")
    assert general.returncode == 0
    assert general.stdout.startswith(USAGE_START)
    for text in ("--per-trial-seeds", "--max-in-flight K", "--backend BACKEND", "logspace(-4,-1,4)"):
        assert text in general.stdout
    assert "    sweep " in cli("--help", cwd=project).stdout


# -- parsing values, in process ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("ridge,lasso", ["ridge", "lasso"]),
        ("{'k': 1},{'k': 2}", [{"k": 1}, {"k": 2}]),
        ("'a,b',\"c]\"", ["a,b", "c]"]),
        ("data/x.csv", ["data/x.csv"]),
        ("http://h:80", ["http://h:80"]),
        ("-2:1", [-2, -1, 0]),
        ("linspace(1, 2, 1)", [1.0]),
        ("()", [()]),
    ],
)
def test_parse_axis(text: str, values: list) -> None:
    assert parse_axis(text) == values


@pytest.mark.parametrize("text", ["", ",", "[]", ":", "1:2:", "0:1:0", "linspace(a, 1, 2)", "logspace(0, 1, 2.5)"])
def test_parse_axis_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_axis(text)
