"""Shared fixtures: every test gets fresh experiments in its own folder."""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

import daskperiment
from daskperiment import Experiment

_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run each test in its own working directory with no experiment open."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DASKPERIMENT_CACHE_DIR", str(tmp_path / ".cache"))
    Experiment._instances.clear()
    yield
    for experiment in Experiment._instances.values():
        experiment.backend.close()
    Experiment._instances.clear()


@pytest.fixture
def make_experiment(tmp_path: Path) -> Callable[..., Experiment]:
    """Create an experiment with a unique id stored below the test's folder."""

    def make(id: str | None = None, **kwargs: object) -> Experiment:
        experiment_id = id or f"ex{next(_ids)}"
        kwargs.setdefault("backend", tmp_path / "store" / experiment_id)
        return Experiment(experiment_id, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def ex(make_experiment: Callable[..., Experiment]) -> Experiment:
    """A fresh experiment on the local store."""
    return make_experiment()


@pytest.fixture
def warnings_of(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """WARNING messages logged by daskperiment so far in the test."""
    caplog.set_level(logging.INFO, logger="daskperiment")

    def messages() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.WARNING and r.name.startswith("daskperiment")
        ]

    return messages


@pytest.fixture
def child_env() -> dict[str, str]:
    """Environment for child Python processes: the package importable from this checkout."""
    return _child_environment()


@pytest.fixture
def run_python(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run code in a new Python process in the test's folder; return its outcome."""

    def run(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=tmp_path,
            env=_child_environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def _child_environment() -> dict[str, str]:
    """Environment of child processes: the package importable from this checkout."""
    env = dict(os.environ)
    root = str(Path(daskperiment.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env
