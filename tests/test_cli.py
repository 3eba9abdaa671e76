"""The `daskperiment` and `daskperimentboard` console scripts, run as subprocesses."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from daskperiment.cli.diff import IDENTICAL

SCRIPT = '''
import daskperiment

ex = daskperiment.Experiment(id="cli_demo")
a, b = ex.parameter("a"), ex.parameter("b", default=2)


@ex
def prepare(a, b):
    return a + b


@ex.result
def score(s):
    for epoch in range(3):
        ex.save_metric("loss", epoch=epoch, value=1.0 / (epoch + 1))
    return 12 // s


score(prepare(a, b))
'''


def console_script(name: str) -> str:
    """Path of an installed console script (next to the interpreter, else on PATH)."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"console script {name!r} is not installed: run `pip install -e .`")
    return found


def cli(*args: str, cwd: Path, program: str = "daskperiment") -> subprocess.CompletedProcess:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    env["DASKPERIMENT_CACHE_DIR"] = str(cwd / ".cache")  # the environment collectors' cache
    return subprocess.run(
        [console_script(program), *args], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose local store holds cli_demo: trials 1 and 2 succeed (code changed), 3 fails."""
    folder = tmp_path_factory.mktemp("project")
    script = folder / "demo.py"
    script.write_text(SCRIPT)
    first = cli("run", "demo.py", "a=1", "--seed", "1", cwd=folder)
    assert first.returncode == 0, first.stderr
    script.write_text(SCRIPT.replace("12 // s", "24 // s"))
    second = cli("run", "--seed", "5", "demo.py", "a=4", "b=8", cwd=folder)
    assert second.returncode == 0, second.stderr
    failed = cli("run", "demo.py", "a=0", "b=0", cwd=folder)
    assert failed.returncode == 1
    assert "ZeroDivisionError: integer division or modulo by zero" in failed.stderr
    return folder


def history_json(project: Path) -> list[dict]:
    done = cli("history", "cli_demo", "--format", "json", cwd=project)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# -- help and usage -------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "list", "history", "show", "diff", "board"])
def test_every_subcommand_has_help(tmp_path: Path, command: str) -> None:
    done = cli(command, "--help", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith(f"usage: daskperiment {command}")
    if command != "run":
        assert "--backend BACKEND" in done.stdout


def test_top_level_help_lists_the_subcommands(tmp_path: Path) -> None:
    done = cli("--help", cwd=tmp_path)
    assert done.returncode == 0
    for command in ("run", "list", "history", "show", "diff", "board"):
        assert f"    {command} " in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["history"], "the following arguments are required: ID"),
        (["show", "cli_demo", "one"], "argument TRIAL: invalid int value: 'one'"),
        (["diff", "cli_demo", "1"], "the following arguments are required: TRIAL_B"),
        (["history", "cli_demo", "--format", "xml"], "invalid choice: 'xml'"),
        (["run"], "the following arguments are required: SCRIPT"),
        (["run", "missing.py"], "script 'missing.py' not found"),
        (["board", "cli_demo", "--port", "x"], "argument --port: invalid int value: 'x'"),
        (["board", "cli_demo", "--port", "70000"], "invalid port 70000"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    done = cli(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


# -- run --------------------------------------------------------------------------------


def test_run_records_trials_like_script_mode(project: Path) -> None:
    records = history_json(project)
    assert [r["Trial ID"] for r in records] == [1, 2, 3]
    assert [(r["a"], r["b"], r["Result"], r["Success"]) for r in records[:2]] == [
        (1, 2, 4.0, True),
        (4, 8, 2.0, True),
    ]
    assert records[2]["Success"] is False
    assert records[2]["Description"] == "ZeroDivisionError(integer division or modulo by zero)"


def test_run_usage_error_records_nothing(project: Path) -> None:
    done = cli("run", "demo.py", "a==1", cwd=project)
    assert done.returncode == 2
    assert "demo.py: error: 'a==1' has more than one '='" in done.stderr
    assert len(history_json(project)) == 3


def test_run_with_backend_stores_where_it_says(project: Path) -> None:
    done = cli("run", "--backend", "elsewhere", "demo.py", "a=3", cwd=project)
    assert done.returncode == 0, done.stderr
    assert (project / "elsewhere" / "cli_demo.sqlite3").is_file()
    listed = cli("history", "cli_demo", "--backend", "elsewhere", "--format", "json", cwd=project)
    assert [r["a"] for r in json.loads(listed.stdout)] == [3]
    assert len(history_json(project)) == 3  # the default store is untouched


# -- list -------------------------------------------------------------------------------


def test_list_shows_the_experiments_of_a_store(project: Path) -> None:
    done = cli("list", cwd=project)
    assert done.returncode == 0, done.stderr
    header, _, row = done.stdout.splitlines()
    assert header.split() == ["Last", "Trial", "Last", "Finished"]
    assert row.split()[:2] == ["cli_demo", "3"]
    assert header.index("Last Finished") + len("Last Finished") == len(row)  # aligned
    listed = json.loads(cli("list", "--backend", "daskperiment_cache", "--format", "json", cwd=project).stdout)
    assert [(e["Experiment"], e["Last Trial"]) for e in listed] == [("cli_demo", 3)]


def test_list_of_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    done = cli("list", "--backend", "no_such_folder", cwd=tmp_path)
    assert done.returncode == 1
    assert "store folder 'no_such_folder' does not exist" in done.stderr


# -- history ----------------------------------------------------------------------------


def test_history_table_is_aligned(project: Path) -> None:
    done = cli("history", "cli_demo", cwd=project)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:5] == ["a", "b", "Result", "Success", "Finished"]
    assert lines[1].startswith("Trial ID")
    assert [line.split()[0] for line in lines[2:]] == ["1", "2", "3"]
    assert len({len(line) for line in lines[2:4]}) == 1


def test_history_json_has_iso_dates_and_seconds(project: Path) -> None:
    records = history_json(project)
    for record in records:
        assert datetime.fromisoformat(record["Finished"]).tzinfo is not None
        assert isinstance(record["Process Time"], float)
    verbose = json.loads(cli("history", "cli_demo", "-v", "--format", "json", cwd=project).stdout)
    assert [r["Seed"] for r in verbose[:2]] == [1, 5]
    assert verbose[0]["Result Type"] == "<class 'int'>"


def test_history_csv(project: Path) -> None:
    done = cli("history", "cli_demo", "--format", "csv", cwd=project)
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [row["Trial ID"] for row in rows] == ["1", "2", "3"]
    assert [row["Success"] for row in rows] == ["True", "True", "False"]
    float(rows[0]["Process Time"])
    datetime.fromisoformat(rows[0]["Finished"])


def test_both_folder_layouts_resolve(project: Path) -> None:
    for store in ("daskperiment_cache", "daskperiment_cache/cli_demo", str(project / "daskperiment_cache")):
        done = cli("history", "cli_demo", "--backend", store, "--format", "json", cwd=project)
        assert done.returncode == 0, done.stderr
        assert len(json.loads(done.stdout)) == 3


def test_unknown_experiment_names_the_store_and_its_experiments(project: Path) -> None:
    done = cli("history", "nope", cwd=project)
    assert done.returncode == 1
    assert "no experiment 'nope' in store 'local'" in done.stderr
    assert "experiments there: cli_demo" in done.stderr
    assert not (project / "daskperiment_cache" / "nope").exists()


def test_empty_store(tmp_path: Path) -> None:
    done = cli("history", "x", cwd=tmp_path)
    assert done.returncode == 1
    assert "experiments there: none" in done.stderr
    listed = cli("list", cwd=tmp_path)
    assert (listed.returncode, listed.stdout) == (0, "(none)\n")


# -- show -------------------------------------------------------------------------------


def test_show_a_trial(project: Path) -> None:
    done = cli("show", "cli_demo", "2", cwd=project)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for section in ("[trial]", "[parameters]", "[metrics]", "[code]", "[environment]"):
        assert f"\n{section}\n" in f"\n{out}"
    assert "Result:           2\n" in out
    assert "Seed:             5\n" in out
    assert "a = 4\nb = 8\n" in out
    metrics = out.split("[metrics]\n")[1].split("[code]")[0].splitlines()
    assert metrics[0].split() == ["Epochs", "First", "Last", "Min", "Max"]
    key, epochs, *values = metrics[2].split()
    assert (key, epochs) == ("loss", "3")
    assert [float(v) for v in values] == pytest.approx([1.0, 1 / 3, 1 / 3, 1.0], abs=1e-6)
    assert "    return 24 // s\n" in out
    assert "Python Version:" in out


def test_show_a_failed_trial(project: Path) -> None:
    out = cli("show", "cli_demo", "3", cwd=project).stdout
    assert "Result:           -\n" in out
    assert "Success:          False\n" in out
    assert "Description:      ZeroDivisionError(integer division or modulo by zero)\n" in out


def test_show_an_unknown_trial(project: Path) -> None:
    done = cli("show", "cli_demo", "9", cwd=project)
    assert done.returncode == 1
    assert "trial 9 of experiment 'cli_demo' does not exist: its trial ids go up to 3" in done.stderr


# -- diff -------------------------------------------------------------------------------


def test_diff_two_trials(project: Path) -> None:
    done = cli("diff", "cli_demo", "1", "2", cwd=project)
    assert done.returncode == 0, done.stderr
    parameters, rest = done.stdout.split("[code]\n")
    code, environment = rest.split("[environment]\n")
    assert parameters.splitlines()[1:3] == ["--- trial 1", "+++ trial 2"]
    assert {"-a = 1", "-b = 2", "+a = 4", "+b = 8"} <= set(parameters.splitlines())
    assert "-    return 12 // s" in code.splitlines() and "+    return 24 // s" in code.splitlines()
    assert environment.strip() == IDENTICAL or environment.startswith("--- trial 1\n")


def test_diff_of_a_trial_with_itself_is_identical(project: Path) -> None:
    done = cli("diff", "cli_demo", "2", "2", cwd=project)
    assert done.stdout == f"[parameters]\n{IDENTICAL}\n[code]\n{IDENTICAL}\n[environment]\n{IDENTICAL}\n"


# -- board ------------------------------------------------------------------------------


def test_daskperimentboard_help_and_errors(tmp_path: Path) -> None:
    done = cli("--help", cwd=tmp_path, program="daskperimentboard")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: daskperimentboard [-h] [--backend BACKEND]")
    missing = cli(cwd=tmp_path, program="daskperimentboard")
    assert missing.returncode == 2
    assert "the following arguments are required: ID" in missing.stderr


def test_board_of_an_unknown_experiment(project: Path) -> None:
    for program, args in (("daskperiment", ["board", "nope"]), ("daskperimentboard", ["nope"])):
        done = cli(*args, cwd=project, program=program)
        assert done.returncode == 1
        assert "no experiment 'nope' in store 'local'" in done.stderr


@pytest.mark.parametrize("program", ["daskperiment", "daskperimentboard"])
def test_board_serves_and_says_where(project: Path, program: str) -> None:
    import signal
    import urllib.request

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH")]))
    args = ["board", "cli_demo"] if program == "daskperiment" else ["cli_demo"]
    process = subprocess.Popen(
        [console_script(program), *args, "--port", "0"], cwd=project, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("dashboard of 'cli_demo' at http://127.0.0.1:"), process.stderr.read()
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url, timeout=60) as response:
            assert response.status == 200
            assert b"bokeh" in response.read().lower()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)
    assert process.returncode == 0


def test_a_server_store_given_as_uri(server_uri: str, tmp_path: Path) -> None:
    from daskperiment import Experiment

    experiment = Experiment("on_server", backend=server_uri)
    x = experiment.parameter("x")

    @experiment.result
    def double(x):
        return 2 * x

    experiment.set_parameters(x=21)
    double(x).compute(seed=0)
    listed = cli("list", "--backend", server_uri, "--format", "json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [(e["Experiment"], e["Last Trial"]) for e in json.loads(listed.stdout)] == [("on_server", 1)]
    history = cli("history", "on_server", "--backend", server_uri, "--format", "json", cwd=tmp_path)
    assert [(r["x"], r["Result"]) for r in json.loads(history.stdout)] == [(21, 42)]
    unknown = cli("history", "nope", "--backend", server_uri, cwd=tmp_path)
    assert unknown.returncode == 1
    assert "no experiment 'nope' in store" in unknown.stderr
    assert "experiments there: on_server" in unknown.stderr
