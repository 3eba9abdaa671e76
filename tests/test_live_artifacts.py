"""Artifact files of a running trial are listed and readable while it runs (issue 12)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import WAIT_SECONDS, wait_until

PARTS = 3


@pytest.fixture(params=["local", "redis", "mongo"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return tmp_path / "store" if request.param == "local" else request.getfixturevalue(f"{request.param}_uri")


def checkpoint(n: int, part: int) -> bytes:
    return f"trial a={n} part {part}\n".encode() * (100 + part)


def listed(ex: Any, trial_id: int) -> list[tuple[str, str, int, str]]:
    frame = ex.get_artifacts(trial_id)
    return sorted(zip(frame["Artifact"], frame["Path"], frame["Size"], frame["Step"]))


def test_files_a_running_step_wrote_are_listed_and_read_before_it_ends(store, make_experiment, tmp_path, fast) -> None:
    ex = make_experiment(backend=store)
    a = ex.parameter("a")
    gates = [threading.Event() for _ in range(PARTS)]

    @ex.result
    def train(a):
        folder = ex.artifact_dir("checkpoints")
        for part, gate in enumerate(gates if a < 0 else [None] * PARTS):
            (folder / f"part-{part}.bin").write_bytes(checkpoint(a, part))
            if gate is not None:  # no metric saved: the files alone are streamed
                assert gate.wait(WAIT_SECONDS)
        return a

    running = ex.submit(train(a), a=-1, scheduler="sync")
    trial = running.trial_id
    try:
        for part, gate in enumerate(gates):
            expected = [("checkpoints", f"part-{p}.bin", len(checkpoint(-1, p)), "train") for p in range(part + 1)]
            wait_until(lambda: listed(ex, trial) == expected, f"{part + 1} files listed")
            assert ex.get_history().loc[trial, "Status"] == "running"
            folder = ex.get_artifact("checkpoints", trial)  # downloaded while the trial runs
            assert sorted(p.name for p in folder.iterdir()) == [f"part-{p}.bin" for p in range(part + 1)]
            for p in range(part + 1):
                assert (folder / f"part-{p}.bin").read_bytes() == checkpoint(-1, p)
            gate.set()
    finally:
        for gate in gates:
            gate.set()
    assert running.result(WAIT_SECONDS) == -1
    assert listed(ex, trial) == [("checkpoints", f"part-{p}.bin", len(checkpoint(-1, p)), "train") for p in range(PARTS)]
    for n in range(24):  # trials ending at once list their files once, as before
        assert ex.run(train(a), a=n, scheduler="sync") == n
        assert listed(ex, ex.trial_id) == [
            ("checkpoints", f"part-{p}.bin", len(checkpoint(n, p)), "train") for p in range(PARTS)
        ]
        folder = ex.get_artifact("checkpoints", ex.trial_id)
        assert [(folder / f"part-{p}.bin").read_bytes() for p in range(PARTS)] == [checkpoint(n, p) for p in range(PARTS)]
