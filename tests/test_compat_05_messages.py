"""0.5's messages and warnings: trial start/finish, seeds, failures, code changes, purity."""

from __future__ import annotations

import configparser
import importlib.util
import logging
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_script_mode import SCRIPT

import daskperiment
from daskperiment import Experiment


def messages(caplog: pytest.LogCaptureFixture, level: int | None = None) -> list[tuple[str, str]]:
    """(level name, message) of the daskperiment records so far (``level``: only that one)."""
    return [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name.startswith("daskperiment") and (level is None or r.levelno == level)
    ]


def quickstart(ex: Experiment, noise: bool = False) -> Any:
    """0.5's quickstart graph; ``noise`` adds ``np.random.random()`` to the score, as its seeding part does."""
    import numpy as np

    a, b = ex.parameter("a"), ex.parameter("b")

    @ex
    def prepare_data(a, b):
        return a + b

    @ex.result
    def calculate_score(s):
        return 10 / s + (np.random.random() if noise else 0)

    return calculate_score(prepare_data(a, b))


# -- 1. messages of a trial ------------------------------------------------------------


def test_a_trial_logs_started_seed_and_finished_at_info(ex: Experiment, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="daskperiment")
    s = quickstart(ex)
    ex.set_parameters(a=1, b=2)
    caplog.clear()
    assert s.compute(seed=1) == 10 / 3
    info = messages(caplog, logging.INFO)
    assert ("INFO", "Random seed is initialized with given seed: 1") in info
    assert info.index(("INFO", "Started Experiment (trial id=1)")) < info.index(
        ("INFO", "Finished Experiment (trial id=1)")
    )


def test_an_unseeded_trial_logs_the_generated_seed(ex: Experiment, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="daskperiment")
    s = quickstart(ex)
    ex.set_parameters(a=1, b=2)
    s.compute()
    seed = ex.get_history(verbose=True).loc[1, "Seed"]
    assert ("INFO", f"Random seed is not provided, initialized with generated seed: {seed}") in messages(caplog)


def test_a_failed_trial_logs_experiment_failed_at_error(ex: Experiment, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="daskperiment")
    s = quickstart(ex)
    ex.set_parameters(a=1, b=-1)
    with pytest.raises(ZeroDivisionError):
        s.compute()
    assert messages(caplog, logging.ERROR) == [("ERROR", "Experiment failed: ZeroDivisionError(division by zero)")]
    assert ("INFO", "Finished Experiment (trial id=1)") not in messages(caplog)


def test_a_sweep_logs_its_trials_at_debug_and_itself_at_info(
    ex: Experiment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="daskperiment")
    s = quickstart(ex)
    ex.set_parameters(a=1, b=2)
    ex.sweep(s, grid={"b": [1, 2, -1]}, seed=3)
    info = [m for _, m in messages(caplog, logging.INFO)]
    debug = [m for _, m in messages(caplog, logging.DEBUG)]
    assert not any(m.startswith(("Started Experiment", "Finished Experiment")) for m in info)
    assert info.count("Random seed is initialized with given seed: 3") == 1
    assert sum(m.startswith("Sweep ") for m in info) == 1  # the start; a failed trial makes the end a WARNING
    assert sorted(m for m in debug if m.startswith("Finished Experiment")) == [
        "Finished Experiment (trial id=1)", "Finished Experiment (trial id=2)"
    ]
    assert "Experiment failed (trial id=3): ZeroDivisionError(division by zero)" in debug
    assert messages(caplog, logging.ERROR) == []


@pytest.fixture
def run_script(tmp_path: Path, child_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess]:
    def run(setup: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        path = tmp_path / "simple_experiment.py"
        path.write_text(SCRIPT.replace('\nprint("result:"', f'\n{setup}\nprint("result:"'))
        return subprocess.run(
            [sys.executable, str(path), *args], check=False, cwd=tmp_path, env={**child_env, **(env or {})},
            capture_output=True, text=True, timeout=120,
        )

    return run


def test_script_mode_prints_the_messages_and_result_on_stderr(run_script: Callable) -> None:
    done = run_script("", "a=1", "b=3", "--seed", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "result: 0.25\n"
    lines = done.stderr.splitlines()
    assert "INFO daskperiment.seeding: Random seed is initialized with given seed: 1" in lines
    assert "INFO daskperiment.trialmessages: Started Experiment (trial id=1)" in lines
    assert "INFO daskperiment.trialmessages: Finished Experiment (trial id=1)" in lines
    assert "INFO daskperiment.script: Result of trial 1 of experiment 'simple': 0.25" in lines


def test_script_mode_failure_is_logged_at_error(run_script: Callable) -> None:
    done = run_script("", "a=0", "b=0")
    assert done.returncode == 1
    assert "ERROR daskperiment.trialmessages: Experiment failed: ZeroDivisionError(division by zero)" in (
        done.stderr.splitlines()
    )


def test_script_mode_messages_are_turned_down_by_logging_level(run_script: Callable) -> None:
    done = run_script('import logging\nlogging.getLogger("daskperiment").setLevel(logging.WARNING)', "a=1")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout == "result: 0.09090909090909091\n"


def test_script_mode_leaves_a_configured_logging_alone(run_script: Callable) -> None:
    done = run_script('import logging, sys\nlogging.basicConfig(stream=sys.stdout, format="%(message)s")', "a=1")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # root at WARNING: the user's configuration decides
    assert done.stdout == "result: 0.09090909090909091\n"


# -- 2. code change at re-decoration -----------------------------------------------------


def define_step(folder: Path, module: str, decorator: str, ex: Experiment) -> Any:
    """Decorate ``prepare_data`` from a source file (as a notebook cell would, run again)."""
    path = folder / f"{module}.py"
    path.write_text(f"def define(ex):\n    @{decorator}\n    def prepare_data(a, b):\n        return a + b\n    return prepare_data\n")
    spec = importlib.util.spec_from_file_location(module, path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded.define(ex)


def test_redecorating_a_step_with_other_code_warns_at_once_with_its_diff(
    ex: Experiment, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO, logger="daskperiment")
    define_step(tmp_path, "cell1", "ex", ex)
    define_step(tmp_path, "cell1_again", "ex", ex)
    assert messages(caplog, logging.WARNING) == []
    define_step(tmp_path, "cell2", "ex.persist", ex)
    assert [m for _, m in messages(caplog, logging.WARNING)] == [
        "Code context has been changed: prepare_data",
        "@@ -1,3 +1,3 @@",
        "-@ex",
        "+@ex.persist",
        " def prepare_data(a, b):",
        "     return a + b",
    ]


def test_the_trial_time_code_warning_is_kept(ex: Experiment, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.INFO, logger="daskperiment")
    a, b = ex.parameter("a"), ex.parameter("b")
    ex.set_parameters(a=1, b=2)
    define_step(tmp_path, "cell1", "ex.result", ex)
    define_step(tmp_path, "cell1", "ex.result", ex)(a, b).compute()
    step = define_step(tmp_path, "cell2", "ex.result(cache=False)", ex)
    caplog.clear()
    assert step(a, b).compute() == 3
    warned = [m for _, m in messages(caplog, logging.WARNING)]
    assert len(warned) == 1 and warned[0].startswith("Code context has been changed since trial 1:")
    assert "+@ex.result(cache=False)" in warned[0]


# -- 3. purity: compared with the latest output, the given seed part of the input -------------

PURITY = "Experiment step result is changed with the same input: (step: calculate_score, args: (7,), kwargs: {})"


def random_score(ex: Experiment) -> Any:
    s = quickstart(ex, noise=True)
    ex.set_parameters(a=3, b=4)
    return s


def purity_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [m for _, m in messages(caplog, logging.WARNING) if m.startswith("Experiment step result is changed")]


def test_purity_message_starts_with_05_wording_then_explains(ex: Experiment, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="daskperiment")
    s = random_score(ex)
    s.compute()
    s.compute()  # generated seeds: the seed is not part of the input, the outputs differ
    (warning,) = purity_warnings(caplog)
    assert warning.startswith(PURITY + " — the step is not pure")


def test_the_same_seed_twice_does_not_warn_and_seeds_are_inputs(
    ex: Experiment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="daskperiment")
    s = random_score(ex)
    first = s.compute(seed=1)
    assert s.compute(seed=1) == first
    s.compute(seed=2)
    s.compute(seed=2)
    assert purity_warnings(caplog) == []


def test_purity_compares_with_the_latest_output_not_the_first(
    ex: Experiment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="daskperiment")
    state = {"offset": 0}
    x = ex.parameter("x", default=1)

    @ex.result
    def shifted(x):
        return x + state["offset"]

    shifted(x).compute(seed=1)
    state["offset"] = 1  # a change of global state: one warning ...
    shifted(x).compute(seed=1)
    shifted(x).compute(seed=1)  # ... then the latest output is the reference
    warnings = [m for _, m in messages(caplog, logging.WARNING) if "result is changed" in m]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "Experiment step result is changed with the same input: (step: shifted, args: (1,), kwargs: {})"
    )


def test_a_seed_sweep_of_a_random_step_does_not_warn(ex: Experiment, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="daskperiment")
    s = random_score(ex)
    frame = ex.sweep(s, grid={"a": [3, 3, 3, 3]}, seed=5, per_trial_seeds=True)
    assert frame["Success"].all() and frame["Result"].nunique() == 4
    assert purity_warnings(caplog) == []


# -- 4. start_dashboard(blocking=...) and its URL -------------------------------------------


def test_start_dashboard_not_blocking_returns_the_server_and_logs_its_url(
    ex: Experiment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="daskperiment")
    board = ex.start_dashboard(port=0, blocking=False)  # not interactive here: would block by default
    try:
        with urllib.request.urlopen(board.url, timeout=30) as response:
            assert f"{ex.id} · daskperiment" in response.read().decode()
        assert ("INFO", f"dashboard of {ex.id!r} at {board.url}") in messages(caplog)
    finally:
        board.stop()


def test_start_dashboard_blocking_must_be_a_bool(ex: Experiment) -> None:
    with pytest.raises(TypeError, match="blocking must be True or False"):
        ex.start_dashboard(port=0, blocking="no")


def test_start_dashboard_blocking_shows_its_url_on_stderr(tmp_path: Path, child_env: dict[str, str]) -> None:
    script = tmp_path / "board_script.py"
    script.write_text(
        "import pathlib, daskperiment\n"
        "ex = daskperiment.Experiment('scripted', backend=pathlib.Path('store'))\n"
        "ex.start_dashboard(port=0, blocking=True)\n"
    )
    process = subprocess.Popen(
        [sys.executable, str(script)], cwd=tmp_path, env=child_env, stderr=subprocess.PIPE, text=True
    )
    try:
        line = process.stderr.readline()
        assert line.startswith("INFO daskperiment.board.server: dashboard of 'scripted' at http://127.0.0.1:")
        url = line.split(" at ", 1)[1].split()[0]
        with urllib.request.urlopen(url, timeout=30) as response:
            assert "scripted · daskperiment" in response.read().decode()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- 5. first hour: script-mode opt-out, the README tour as a file, packaging ---------------

ROOT = Path(__file__).resolve().parent.parent


def readme_tour() -> str:
    """The code block of the README's "A tour" section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A tour", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_tour_runs_as_a_file(tmp_path: Path, child_env: dict[str, str]) -> None:
    path = tmp_path / "tour.py"
    path.write_text(readme_tour())
    done = subprocess.run(
        [sys.executable, str(path)], check=False, cwd=tmp_path, env=child_env, capture_output=True, text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].startswith("Trial ID")
    assert lines[2].split()[:3] == ["1", "1", "2"] and lines[3].split()[:3] == ["2", "3", "2"]
    history = Experiment("demo", backend=tmp_path / "daskperiment_cache" / "demo").get_history()
    assert history["Result"].tolist() == [10 / 3, 2.0] and history["Success"].all()


def test_script_mode_false_makes_a_file_a_session(run_script: Callable) -> None:
    done = run_script(
        'ex = daskperiment.Experiment(id="simple", script_mode=False)\n'
        # the call re-initialises the experiment (as 0.5): define its parameters and steps again
        'a, b = ex.parameter("a"), ex.parameter("b", default=10)\n'
        "prepare, score = ex(prepare.func), ex.result(score.func)\n"
        "print(type(score(prepare(a, b))).__name__)\n"
        "ex.set_parameters(a=1)\n"
        "print(score(prepare(a, b)).compute(seed=1))\n"
        "raise SystemExit(0)"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["TrialResult", "0.09090909090909091"]


@pytest.mark.parametrize("value", ["0", "false", "OFF", "no"])
def test_the_environment_variable_turns_script_mode_off(run_script: Callable, value: str) -> None:
    done = run_script(
        "print(type(score(prepare(a, b))).__name__)\nraise SystemExit(0)", env={"DASKPERIMENT_SCRIPT_MODE": value}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "TrialResult\n"


def test_script_mode_stays_on_with_other_values(run_script: Callable) -> None:
    done = run_script("", "a=1", env={"DASKPERIMENT_SCRIPT_MODE": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "result: 0.09090909090909091\n"


def test_script_mode_must_be_a_bool(make_experiment: Callable[..., Experiment]) -> None:
    with pytest.raises(TypeError, match="script_mode must be True or False"):
        make_experiment(script_mode="off")


def test_python_m_daskperiment_is_the_command(child_env: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "daskperiment", "--version"], check=False, cwd=tmp_path, env=child_env,
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert daskperiment.__version__ in done.stdout + done.stderr


def setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def test_packaging_declares_licence_types_and_pythons() -> None:
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("BSD 3-Clause License") and "Copyright (c) daskperiment developers" in licence
    assert (ROOT / "daskperiment" / "py.typed").is_file()
    config = setup_cfg()
    metadata = config["metadata"]
    assert metadata["license"] == "BSD-3-Clause" and metadata["license_files"] == "LICENSE"
    assert config["options.package_data"]["daskperiment"] == "py.typed"
    classifiers = metadata["classifiers"].split("\n")
    for version in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    urls = dict(line.split(" = ", 1) for line in metadata["project_urls"].strip().split("\n"))
    assert urls == {
        "Documentation": "https://pypi.org/project/daskperiment/",  # the README, as PyPI shows it
        "Download": "https://pypi.org/project/daskperiment/#files",
    }


def test_the_readme_names_every_user_extra() -> None:
    extras = set(setup_cfg()["options.extras_require"]) - {"test"}
    readme = (ROOT / "README.md").read_text()
    assert {"board", "notebook", "redis", "mongo", "optuna", "s3", "git", "distributed"} <= extras
    assert all(f'pip install "daskperiment[{extra}]"' in readme for extra in extras)
