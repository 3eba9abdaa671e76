"""Script mode: `python script.py a=1 b=2 --seed 1` runs one trial per @ex.result call."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from daskperiment import Experiment
from daskperiment.script import UsageError, parse_arguments, parse_value

SCRIPT = '''
import daskperiment

ex = daskperiment.Experiment(id="simple")
a, b = ex.parameter("a"), ex.parameter("b", default=10)


@ex
def prepare(a, b):
    return a + b


@ex.result
def score(s):
    return 1 / s


print("result:", repr(score(prepare(a, b))))
'''


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "simple_experiment.py"
    path.write_text(SCRIPT)
    return path


@pytest.fixture
def run_script(
    tmp_path: Path, child_env: dict[str, str]
) -> Callable[..., subprocess.CompletedProcess]:
    def run(path: Path, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(path), *args],
            check=False,
            cwd=tmp_path,
            env=child_env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def history(experiment_id: str = "simple"):
    Experiment._instances.pop(experiment_id, None)
    return Experiment(experiment_id).get_history(verbose=True)


# -- parsing, in process ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1),
        ("-2", -2),
        ("0.5", 0.5),
        ("1e-3", 0.001),
        ("True", True),
        ("None", None),
        ("'a b'", "a b"),
        ("[1, 2]", [1, 2]),
        ("{'k': (1, 2)}", {"k": (1, 2)}),
        ("(1,)", (1,)),
        ("ridge", "ridge"),
        ("true", "true"),
        ("data/x.csv", "data/x.csv"),
        ("__import__('os')", "__import__('os')"),  # never evaluated: a plain string
        ("'nan'", "nan"),  # quoted, a word or text like a number is a string
        ("'0.1e'", "0.1e"),
        ("'2024-01-01'", "2024-01-01"),
        ("-v", "-v"),
        ("./data.csv", "./data.csv"),
        ("1e308", 1e308),
        ("-1e-400", -0.0),
        ("1j", 1j),
    ],
)
def test_values_are_python_literals_and_bare_words_are_strings(text: str, value: object) -> None:
    assert parse_value(text) == value
    assert type(parse_value(text)) is type(value)


@pytest.mark.parametrize("text", ["", " ", "[1, 2", "{'a': 1", "'open", "=1"])
def test_malformed_values_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_value(text)


@pytest.mark.parametrize(
    "text",
    ["0.1e", "1+", "10**10**10", "2**100000", "1" * 5000, "2024-01-01", "3x", ".5.5", "-1-", "nan",
     "NaN", "-inf", "+Infinity"],
)
def test_text_like_a_number_that_is_not_a_literal_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="is not a valid Python literal.*quote strings"):
        parse_value(text)


@pytest.mark.parametrize("text", ["1e309", "-1e309", "[1, 1e999]", "{'a': 1e400j}"])
def test_floats_beyond_range_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="beyond the range of floats"):
        parse_value(text)


def test_seed_may_come_anywhere_among_the_arguments() -> None:
    parsed = parse_arguments(["a=1", "--seed", "7", "b='x'", "--progress"])
    assert parsed.parameters == {"a": 1, "b": "x"}
    assert (parsed.seed, parsed.progress, parsed.help) == (7, True, False)
    assert parse_arguments(["--seed=3"]).seed == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a"], "not of the form name=value"),
        (["=1"], "'=1' has no parameter name: write name=value, e.g. a=1"),
        (["a==1"], "more than one '='"),
        (["1a=2"], "invalid parameter name"),
        (["a=1", "a=2"], "given twice"),
        (["--seed"], "needs a value"),
        (["--seed", "x"], "invalid seed 'x'"),
        (["--seed", "-1"], "invalid seed '-1'"),
        (["--seed", "1", "--seed", "2"], "given twice"),
        (["--verbose"], "unknown option '--verbose'"),
    ],
)
def test_malformed_arguments_say_what_is_wrong(args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_arguments(args)


# -- running scripts ------------------------------------------------------------------


def test_a_script_run_as_a_file_runs_one_trial(script: Path, run_script: Callable) -> None:
    done = run_script(script, "a=1", "b=3", "--seed", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "result: 0.25\n"
    trials = history()
    assert list(trials.index) == [1]
    assert trials.loc[1, ["a", "b", "Result", "Success", "Seed"]].tolist() == [1, 3, 0.25, True, 1]


def test_seed_before_parameters_and_defaults(script: Path, run_script: Callable) -> None:
    done = run_script(script, "--seed", "5", "a=0.5")
    assert done.returncode == 0, done.stderr
    trials = history()
    assert trials.loc[1, ["a", "b", "Seed"]].tolist() == [0.5, 10, 5]


def test_each_call_of_the_result_step_runs_one_trial(tmp_path: Path, run_script: Callable) -> None:
    path = tmp_path / "twice.py"
    path.write_text(SCRIPT + 'print("second:", repr(score(prepare(a, b))))\n')
    done = run_script(path, "a=1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["result: 0.09090909090909091", "second: 0.09090909090909091"]
    assert list(history().index) == [1, 2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a"], "'a' is not of the form name=value"),
        (["=1"], "'=1' has no parameter name"),
        (["a==1"], "'a==1' has more than one '='"),
        (["a=1", "c=2"], "unknown parameter c: the parameters of experiment 'simple' are a, b"),
        (["b=1"], "parameter a has no value and no default: give a=VALUE on the command line"),
        (["a=1", "--seed", "x"], "invalid seed 'x'"),
        (["a=0.1e"], "invalid value of parameter 'a': '0.1e' is not a valid Python literal"),
        (["a=10**10**10"], "invalid value of parameter 'a': '10**10**10' is not a valid Python literal"),
        (["a=nan"], "invalid value of parameter 'a': 'nan' is not a valid Python literal"),
        (["a=1", "b=1+"], "invalid value of parameter 'b': '1+' is not a valid Python literal"),
        (["a=1e309"], "invalid value of parameter 'a': '1e309' is beyond the range of floats"),
    ],
)
def test_usage_errors_exit_2_and_record_nothing(
    script: Path, run_script: Callable, args: list[str], message: str
) -> None:
    done = run_script(script, *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("usage: simple_experiment.py [name=value ...]")
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert history().empty


def test_help_lists_the_parameters_and_runs_nothing(script: Path, run_script: Callable) -> None:
    done = run_script(script, "--help")
    assert done.returncode == 0
    assert "  a  (required)\n  b=10\n" in done.stdout
    assert history().empty


def test_a_failing_trial_exits_non_zero_and_is_recorded(script: Path, run_script: Callable) -> None:
    done = run_script(script, "a=0", "b=0")
    assert done.returncode == 1
    assert "ZeroDivisionError" in done.stderr
    trials = history()
    assert trials.loc[1, "Success"] == False
    assert trials.loc[1, "Description"] == "ZeroDivisionError(division by zero)"


def test_progress_bar_on_stderr(script: Path, run_script: Callable) -> None:
    done = run_script(script, "a=1", "--progress")
    assert done.returncode == 0, done.stderr
    assert "100%" in done.stderr
    assert done.stdout == "result: 0.09090909090909091\n"


def test_an_imported_script_does_not_run(script: Path, run_python: Callable) -> None:
    done = run_python("import simple_experiment as s; print(type(s.score(s.prepare(s.a, s.b))).__name__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("result: Delayed('score-")
    assert done.stdout.endswith("\nTrialResult\n")
    assert history().empty


def test_an_interactive_run_does_not_run(script: Path, child_env: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-i", str(script), "a=1"],
        check=False,
        cwd=tmp_path,
        env=child_env,
        input="",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("result: Delayed(")
    assert history().empty
