"""Where the environment collectors keep their cache and how they read package reports."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import threadpoolctl

from daskperiment.collector import collect_environment, diff_environments, environment_lines
from daskperiment.collector.numerics import NumpyCollector, PandasCollector, ScipyCollector

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -c code`` with this checkout importable and exactly ``env`` added to a clean environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DASKPERIMENT_", "XDG_"))}
    base.update(PYTHONPATH=str(ROOT), HOME=str(cwd / "home"), **env)
    return subprocess.run(
        [sys.executable, "-c", code], env=base, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


# -- the user cache folder ---------------------------------------------------------------

CACHE_CPU_INFO = (
    "from daskperiment.collector.cpu import cpu_info\n"
    "from daskperiment.userdirs import cache_dir\n"
    "print(cache_dir()); cpu_info()\n"
)


def test_user_cache_follows_xdg_cache_home(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg-cache"
    done = run_python(CACHE_CPU_INFO, {"XDG_CACHE_HOME": str(xdg)}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(xdg / "daskperiment")
    assert list((xdg / "daskperiment").glob("cpuinfo-*.json"))
    assert not (tmp_path / "home").exists()  # nothing written to ~/.cache


def test_user_cache_without_xdg_is_the_platform_default(tmp_path: Path) -> None:
    done = run_python(CACHE_CPU_INFO, {}, tmp_path)
    assert done.returncode == 0, done.stderr
    expected = tmp_path / "home" / ".cache" / "daskperiment"  # Linux: ~/.cache
    assert done.stdout.strip() == str(expected)
    assert list(expected.glob("cpuinfo-*.json"))


def test_daskperiment_cache_dir_wins_over_xdg_cache_home(tmp_path: Path) -> None:
    xdg, own = tmp_path / "xdg-cache", tmp_path / "own-cache"
    done = run_python(CACHE_CPU_INFO, {"XDG_CACHE_HOME": str(xdg), "DASKPERIMENT_CACHE_DIR": str(own)}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(own)
    assert list(own.glob("cpuinfo-*.json"))
    assert not xdg.exists()


# -- distributed and GitPython are optional ----------------------------------------------

WITHOUT_OPTIONAL = (
    "import sys\n"
    "for name in ('git', 'distributed'):\n"
    "    sys.modules[name] = None  # as if not installed: importing it raises ImportError\n"
    "import daskperiment\n"
    "ex = daskperiment.Experiment('no_extras', script_mode=False)\n"
    "a = ex.parameter('a')\n"
    "@ex.result\n"
    "def double(a):\n"
    "    return 2 * a\n"
    "ex.set_parameters(a=21)\n"
    "print(double(a).compute())\n"
    "print(ex.get_environment(category='git'))\n"
    "print(sorted(name for name in sys.modules if name.split('.')[0] in ('git', 'distributed')\n"
    "             and sys.modules[name] is not None))\n"
)


def test_a_trial_runs_without_distributed_and_gitpython(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    done = run_python(WITHOUT_OPTIONAL, {"DASKPERIMENT_CACHE_DIR": str(tmp_path / "cache")}, tmp_path)
    assert done.returncode == 0, done.stderr
    result, git_text, imported = done.stdout.strip().splitlines()
    assert result == "42"
    assert git_text == 'Git Repository: not captured, GitPython is not installed (pip install "daskperiment[git]")'
    assert imported == "[]"
    assert list((tmp_path / "daskperiment_cache" / "no_extras").iterdir())


def test_git_collector_without_the_git_executable(tmp_path: Path) -> None:
    code = (
        "from daskperiment.collector import collect_environment, environment_text\n"
        "from daskperiment.collector.git import GitCollector\n"
        "environment = collect_environment([GitCollector()])\n"
        "print(environment['git'])\n"
        "print(environment_text(environment).splitlines()[-1])\n"
    )
    done = run_python(code, {"PATH": str(tmp_path / "empty-bin")}, tmp_path)
    assert done.returncode == 0, done.stderr
    data, summary = done.stdout.strip().splitlines()
    assert data == "{'unavailable': 'not captured, the git executable is not on the PATH'}"
    assert summary == "Git Repository: not captured, the git executable is not on the PATH"


# -- numpy, scipy and pandas reports: read as data, never printed -------------------------


def test_reports_leave_sys_stdout_and_other_threads_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASKPERIMENT_CACHE_DIR", str(tmp_path / "cache"))  # nothing cached: made now
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    stop, printed = threading.Event(), threading.Event()
    seen: list[object] = []

    def user() -> None:  # a user's thread printing all along
        while not stop.is_set():
            print("tick")
            printed.set()

    def poll() -> None:
        while not stop.is_set():
            seen.append(sys.stdout)

    threads = [threading.Thread(target=user), threading.Thread(target=poll)]
    for thread in threads:
        thread.start()
    printed.wait(10)
    try:
        environment = collect_environment([NumpyCollector(), ScipyCollector(), PandasCollector()])
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert list(environment) == ["numpy", "scipy", "pandas"]
    assert all(data["config"] for data in environment.values())
    lines = stream.getvalue().splitlines()
    assert lines and set(lines) == {"tick"}  # no report text among the user's output
    assert seen and all(current is stream for current in seen)


def test_numpy_report_has_the_blas_threads_of_now(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASKPERIMENT_CACHE_DIR", str(tmp_path / "cache"))
    collector = NumpyCollector()
    pools = collector.collect()["blas_threads"]
    expected = [pool for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]
    assert [pool["filepath"] for pool in pools] == [pool["filepath"] for pool in expected]
    assert [pool["num_threads"] for pool in pools] == [pool["num_threads"] for pool in expected]
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        # The report itself is cached; the thread counts are read each time.
        assert [pool["num_threads"] for pool in collector.collect()["blas_threads"]] == [1] * len(pools)
    text = environment_lines({"numpy": collector.collect()}, "numpy")
    start = text.index("BLAS threads (threadpoolctl):")
    assert text[start + 1] == f"  - internal_api: {pools[0]['internal_api']}"
    assert f"    num_threads: {pools[0]['num_threads']}" in text[start:]


def test_numpy_report_without_threadpoolctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASKPERIMENT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # as if not installed
    data = NumpyCollector().collect()
    assert sorted(data) == ["config", "version"]
    assert not any("BLAS threads" in line for line in environment_lines({"numpy": data}, "numpy"))


def test_reports_recorded_as_printed_text_still_render_and_diff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASKPERIMENT_CACHE_DIR", str(tmp_path / "cache"))
    new = collect_environment([NumpyCollector(), PandasCollector()])
    old = {  # as environments were stored before: the text each package printed
        "numpy": {"version": "1.26.4", "text": "Build Dependencies:\n  blas:\n    name: openblas64  \n"},
        "pandas": {"version": "2.2.0", "text": "\nINSTALLED VERSIONS\n------------------\npandas : 2.2.0\n"},
    }
    assert environment_lines(old, "numpy") == [
        "numpy version: 1.26.4", "Build Dependencies:", "  blas:", "    name: openblas64"
    ]
    assert environment_lines(old, "pandas")[:3] == ["pandas version: 2.2.0", "INSTALLED VERSIONS", "------------------"]
    diff = diff_environments(old, new, old_label="trial 1", new_label="trial 2").splitlines()
    assert diff[:2] == ["--- trial 1", "+++ trial 2"]
    assert "-numpy version: 1.26.4" in diff and f"+numpy version: {new['numpy']['version']}" in diff
    assert diff_environments(new, json.loads(json.dumps(new))) == ""  # a stored environment renders the same
