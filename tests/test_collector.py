"""Environment collectors: real facts of this process, rendered, diffed, never failing."""

from __future__ import annotations

import copy
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

import daskperiment
from daskperiment.collector import (
    DEFAULT_COLLECTORS,
    Collector,
    collect_environment,
    diff_environments,
    environment_future,
    environment_lines,
    environment_text,
    python_packages,
)
from daskperiment.collector.conda import CondaCollector
from daskperiment.collector.cpu import CPUCollector, cpu_info
from daskperiment.collector.git import GitCollector
from daskperiment.collector.numerics import NumpyCollector, PandasCollector, ScipyCollector
from daskperiment.collector.packages import PackagesCollector
from daskperiment.collector.platform import PlatformCollector
from daskperiment.collector.python import PythonCollector

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["platform", "cpu", "python", "packages", "git", "numpy", "scipy", "pandas", "conda"]


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The environment collected once for this module, with its own cpu cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DASKPERIMENT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield collect_environment()


def git(cwd: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=Tester", "-c", "user.email=tester@example.com", *args]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


# -- single collectors -------------------------------------------------------------------


def test_platform_collector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = PlatformCollector().collect()
    assert data == {
        "platform": platform.platform(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "working_directory": str(tmp_path),
    }


def test_cpu_collector_caches_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASKPERIMENT_CACHE_DIR", str(tmp_path / "cache"))
    collector = CPUCollector()
    assert collector.available()
    data = collector.collect()
    assert data["count"] == os.cpu_count()
    assert data["bits"] in (32, 64)
    assert data["brand"]
    (cache,) = (tmp_path / "cache").glob("cpuinfo-*.json")
    # Later collections read the cache: prove it by editing it.
    cached = json.loads(cache.read_text())
    cached["value"]["brand_raw"] = "Cached CPU"
    cache.write_text(json.dumps(cached))
    assert collector.collect() == {**data, "brand": "Cached CPU"}
    # A corrupt cache is recomputed and rewritten.
    cache.write_text("{not json")
    assert collector.collect() == data
    assert json.loads(cache.read_text())["value"]["brand_raw"] == data["brand"]


def test_cpu_collector_without_writable_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("DASKPERIMENT_CACHE_DIR", str(blocker / "cache"))
    assert cpu_info()["count"] == os.cpu_count()
    assert blocker.read_text() == "not a directory"


def test_python_collector() -> None:
    data = PythonCollector().collect()
    assert data == {
        "implementation": platform.python_implementation(),
        "version": platform.python_version(),
        "executable": sys.executable,
        "venv": sys.prefix != sys.base_prefix,
        "shell": "script",
        "daskperiment_version": daskperiment.__version__,
        "daskperiment_path": str(Path(daskperiment.__file__).resolve().parent),
    }


def test_shell_mode_of_an_interactive_interpreter() -> None:
    code = "from daskperiment.collector.python import shell_mode; print(shell_mode())"
    completed = subprocess.run(
        [sys.executable, "-i", "-c", code],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    assert completed.stdout.split() == ["interactive"]


def test_packages_collector() -> None:
    packages = PackagesCollector().collect()["packages"]
    names = [package["name"] for package in packages]
    assert names == sorted(names, key=str.lower)
    assert len({name.lower() for name in names}) == len(names)
    (pandas,) = [package for package in packages if package["name"].lower() == "pandas"]
    assert pandas["version"] == importlib.metadata.version("pandas")
    assert (Path(pandas["location"]) / "pandas" / "__init__.py").is_file()
    assert {"numpy", "dask", "distributed", "pytest"} <= {name.lower() for name in names}


def test_git_collector_on_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for name in ("a.txt", "b.txt", "pkg/mod.py"):
        (repo / name).write_text("original\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    git(repo, "remote", "add", "origin", "https://example.com/project.git")
    (repo / "a.txt").write_text("changed\n")
    git(repo, "mv", "b.txt", "renamed.txt")
    (repo / "new.txt").write_text("untracked\n")
    (repo / "data").mkdir()
    (repo / "data" / "x.csv").write_text("1,2\n")
    monkeypatch.chdir(repo / "pkg")  # the repository is found from a subdirectory

    collector = GitCollector()
    data = collector.collect()
    assert Path(data.pop("working_dir")).resolve() == repo.resolve()
    assert data.pop("modified") in (["a.txt", "renamed.txt"], ["renamed.txt", "a.txt"])
    assert data == {
        "branch": "main",
        "commit": git(repo, "rev-parse", "HEAD"),
        "remotes": {"origin": ["https://example.com/project.git"]},
        "untracked": ["data/", "new.txt"],
    }

    git(repo, "checkout", "-q", "--detach")
    assert collector.collect()["branch"] == "DETACHED"


def test_git_collector_before_the_first_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git(tmp_path, "init", "-q", "-b", "trunk")
    (tmp_path / "a.txt").write_text("a\n")
    monkeypatch.chdir(tmp_path)
    data = GitCollector().collect()
    assert (data["branch"], data["commit"], data["modified"], data["untracked"]) == (
        "trunk", None, [], ["a.txt"]
    )


def test_git_collector_outside_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert GitCollector().collect() == {}
    assert "git" not in collect_environment([PlatformCollector(), GitCollector()])


@pytest.mark.parametrize(
    "collector, module, section",
    [
        (NumpyCollector(), "numpy", "Build Dependencies"),
        (ScipyCollector(), "scipy", "Build Dependencies"),
        (PandasCollector(), "pandas", "dependencies"),
    ],
)
def test_numeric_reports(collector: Collector, module: str, section: str) -> None:
    assert collector.category == module
    assert collector.available()
    data = collector.collect()
    assert data["version"] == importlib.import_module(module).__version__
    assert data["config"][section]
    json.dumps(data)  # stored as JSON
    lines = environment_lines({module: data}, module)
    assert lines[0] == f"{module} version: {data['version']}"
    assert f"{section}:" in lines


def test_numpy_report_is_numpy_show_config() -> None:
    import numpy

    assert NumpyCollector().collect()["config"] == json.loads(json.dumps(numpy.show_config(mode="dicts")))


def test_pandas_report_names_the_pandas_version() -> None:
    data = PandasCollector().collect()
    assert data["config"]["dependencies"]["pandas"] == importlib.metadata.version("pandas")
    assert "  pandas: " + importlib.metadata.version("pandas") in environment_lines({"pandas": data}, "pandas")


def test_conda_collector_availability() -> None:
    assert CondaCollector().available() == (shutil.which("conda") is not None)


# -- the whole environment ---------------------------------------------------------------


def test_collect_environment(environment: dict[str, Any]) -> None:
    assert list(environment) == [category for category in ORDER if category in environment]
    assert ORDER == [collector.category for collector in DEFAULT_COLLECTORS]
    assert ("conda" in environment) == (shutil.which("conda") is not None)
    assert {"platform", "cpu", "python", "packages", "numpy", "scipy", "pandas"} <= set(environment)
    assert not any("error" in data for data in environment.values())
    assert environment["python"]["version"] == platform.python_version()
    assert json.loads(json.dumps(environment)) == environment


def test_failing_collectors_do_not_fail_collection(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Collector):
        category = "broken"

        def collect(self) -> dict[str, Any]:
            raise RuntimeError("boom")

    class Unavailable(Broken):
        category = "unavailable"

        def available(self) -> bool:
            return False

    class Empty(Collector):
        category = "empty"

        def collect(self) -> dict[str, Any]:
            return {}

    with caplog.at_level(logging.WARNING, logger="daskperiment.collector"):
        environment = collect_environment([Broken(), Unavailable(), Empty(), PythonCollector()])
    assert list(environment) == ["broken", "python"]
    assert environment["broken"] == {"error": "RuntimeError(boom)"}
    assert any("broken" in r.getMessage() and "boom" in r.getMessage() for r in caplog.records)
    assert environment_lines(environment, "broken") == ["Broken Error: RuntimeError(boom)"]


def test_environment_future_runs_once() -> None:
    future = environment_future()
    assert environment_future() is future
    result = future.result(timeout=120)
    assert result["python"]["version"] == platform.python_version()
    assert environment_future().result() is result
    assert not future.cancel()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_environment_future_after_fork() -> None:
    parent = environment_future()
    pid = os.fork()
    if pid == 0:  # child: must collect again, in its own thread
        try:
            child = environment_future()
            ok = child is not parent and child.result(timeout=120)["python"]["version"]
            os._exit(0 if ok and environment_future() is child else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert environment_future() is parent


# -- rendering ---------------------------------------------------------------------------


def test_summary_lines(environment: dict[str, Any]) -> None:
    lines = environment_lines(environment)
    assert f"Python Version: {platform.python_version()}" in [" ".join(line.split()) for line in lines]
    normalized = [" ".join(line.split()) for line in lines]
    count = len(environment["packages"]["packages"])
    assert f"Number of Installed Python Packages: {count}" in normalized
    assert f"Python venv: {sys.prefix != sys.base_prefix}" in normalized
    assert any(line.startswith("Device CPU Brand:") for line in lines)
    assert any(line.startswith("Device CPU Count:") for line in lines)
    assert lines[-1].startswith("Git ")  # the git facts close the summary, as in 0.5
    assert not any(line.startswith(("numpy", "Build Dependencies")) for line in lines)
    columns = set()
    for line in lines:
        label, value = line.split(":", 1)
        columns.add(len(label) + 1 + len(value) - len(value.lstrip(" ")))
    assert len(columns) == 1  # the values are aligned


def test_category_lines(environment: dict[str, Any]) -> None:
    packages = environment_lines(environment, "packages")
    assert len(packages) == len(environment["packages"]["packages"])
    pandas = f"pandas=={importlib.metadata.version('pandas')} ("
    assert any(line.startswith(pandas) for line in packages)
    numpy = environment_lines(environment, "numpy")
    assert numpy[0] == f"numpy version: {environment['numpy']['version']}"
    assert "Build Dependencies:" in numpy
    python = environment_lines(environment, "python")
    assert python[0].split() == ["Python", "Implementation:", platform.python_implementation()]


def test_unknown_category(environment: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="'nope' is unknown") as error:
        environment_lines(environment, "nope")
    assert "platform, cpu, python, packages" in str(error.value)
    without_numpy = {k: v for k, v in environment.items() if k != "numpy"}
    with pytest.raises(ValueError, match="'numpy' was not captured"):
        environment_lines(without_numpy, "numpy")


def test_no_git_repository_and_no_conda_say_so(environment: dict[str, Any]) -> None:
    bare = {k: v for k, v in environment.items() if k not in ("git", "conda")}
    assert environment_lines(bare, "git") == ["Git Repository: not a git repository"]
    assert environment_lines(bare, "conda") == ["Conda: not installed (no conda executable on the PATH)"]
    assert " ".join(environment_lines(bare)[-1].split()) == "Git Repository: not a git repository"
    assert environment_text(bare, "git") == "Git Repository: not a git repository"


def test_requirements_is_the_pip_freeze_list(environment: dict[str, Any]) -> None:
    assert environment_lines(environment, "requirements") == python_packages(environment)
    text = environment_text(environment, "requirements")
    assert text.splitlines() == python_packages(environment) and "\n" in text


def test_python_packages(environment: dict[str, Any]) -> None:
    packages = python_packages(environment)
    assert f"pandas=={importlib.metadata.version('pandas')}" in packages
    assert packages == sorted(packages, key=str.lower)
    assert python_packages({"packages": {"error": "OSError(no)"}}) == []


def test_diff_environments(environment: dict[str, Any]) -> None:
    stored = json.loads(json.dumps(environment))
    assert diff_environments(environment, stored) == ""
    changed = copy.deepcopy(stored)
    (pandas,) = [p for p in changed["packages"]["packages"] if p["name"] == "pandas"]
    pandas["version"] = "0.0.1"
    diff = diff_environments(
        stored, changed, old_label="environment of trial 3", new_label="this process"
    )
    lines = diff.splitlines()
    assert lines[:2] == ["--- environment of trial 3", "+++ this process"]
    old = f"pandas=={importlib.metadata.version('pandas')} ({pandas['location']})"
    assert f"-{old}" in lines
    assert f"+pandas==0.0.1 ({pandas['location']})" in lines
    assert sum(line.startswith(("-", "+")) for line in lines) == 4


def test_importing_collector_is_light() -> None:
    """Only collection imports numpy, scipy, pandas, git and cpuinfo."""
    code = "\n".join([
        "import sys, types",
        "stub = types.ModuleType('daskperiment')",  # skip the parent package's own imports
        f"stub.__path__ = [{str(ROOT / 'daskperiment')!r}]",
        "sys.modules['daskperiment'] = stub",
        "import daskperiment.collector",
        "heavy = ('numpy', 'scipy', 'pandas', 'git', 'cpuinfo')",
        "print(sorted(m for m in heavy if m in sys.modules))",
    ])
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_numeric_reports_are_cached_while_packages_stay_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASKPERIMENT_CACHE_DIR", str(tmp_path / "cache"))
    collector = NumpyCollector()
    data = collector.collect()
    (cache,) = (tmp_path / "cache").glob("numpy-config-*.json")
    stored = json.loads(cache.read_text())
    stored["value"]["config"] = {"from": "the cache"}
    cache.write_text(json.dumps(stored))
    assert collector.collect() == {**data, "config": {"from": "the cache"}}
    # Another set of installed packages is another key: the report is made again.
    monkeypatch.setattr(
        "daskperiment.collector.numerics.installed_packages",
        lambda: [{"name": "numpy", "version": "0.0.0", "location": "/"}],
    )
    assert collector.collect() == data
