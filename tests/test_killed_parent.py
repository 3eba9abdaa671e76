"""A parent process killed while its trials run on the ``processes`` scheduler leaves no orphan rows.

Worker processes compute steps, save metrics and produce persisted values; all of it travels back
to the parent, which writes a trial in one batch. Killing the parent at any moment must therefore
leave every metric point and persisted value attached to a recorded trial, and every trial
recorded as a success complete.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from daskperiment import Experiment

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import daskperiment

    target = sys.argv[1]
    backend = Path(target) if "://" not in target else target
    ex = daskperiment.Experiment("orphans", backend=backend, script_mode=False)
    n = ex.parameter("n")

    @ex.persist
    @ex
    def prepare(n):
        for epoch in range(20):
            ex.save_metric("worker", epoch, float(n * 100 + epoch))
        time.sleep(0.01 * (n % 3))
        return n * 2

    @ex.result
    def score(doubled):
        ex.save_metric("score", 0, float(doubled))
        return doubled + 1

    if __name__ == "__main__":  # worker processes start by importing this file
        graph = score(prepare(n))
        for value in range(1, 1000):
            ex.set_parameters(n=value)
            graph.compute(scheduler="processes", num_workers=2)
            print(value, flush=True)
    """
)

KILLS = 8


@pytest.fixture(params=["local", "redis", "mongo"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue(f"{request.param}_uri")


def _run_and_kill(store: str, tmp_path: Path, child_env: dict[str, str], delay: float) -> None:
    script = tmp_path / "orphans.py"
    script.write_text(SCRIPT)
    process = subprocess.Popen(
        [sys.executable, str(script), store],
        cwd=tmp_path,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its worker processes share its group: cleaned up after the kill
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline(), "the script recorded no trial"
        for _ in range(random.randint(0, 3)):  # kill after a random number of further trials
            assert process.stdout.readline(), "the script stopped before it was killed"
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)  # the parent only: its workers are orphaned mid-step
        process.wait(30)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.stdout.close()


def test_killed_parent_leaves_no_orphan_rows(store: str, tmp_path: Path, child_env, make_experiment) -> None:
    random.seed(20261124)
    for kill in range(KILLS):
        _run_and_kill(store, tmp_path, child_env, delay=(0.0, 0.004, 0.013, 0.031)[kill % 4])

    backend = Path(store) if "://" not in store else store
    ex: Experiment = make_experiment("orphans", backend=backend)
    history = ex.get_history()
    recorded = set(history.index)
    assert len(recorded) >= KILLS, "every run records at least one trial before it is killed"
    last = ex.backend.last_trial_id()

    # Every persisted value and metric point belongs to a recorded trial ...
    persisted = ex.backend.persisted_keys()
    assert {trial for trial, _ in persisted} <= recorded
    every_id = list(range(1, last + 1))
    for key in ("worker", "score"):
        points = ex.backend.load_metrics(key, every_id)
        assert set(points.trial_ids.tolist()) <= recorded, f"orphan {key!r} points"

    # ... and every trial recorded as a success is complete and right for its own parameter.
    succeeded = history[history["Success"] == True]  # noqa: E712 (a column of booleans)
    assert len(succeeded) >= KILLS
    assert last > len(succeeded), "some runs were killed mid-trial"
    for trial, row in succeeded.iterrows():
        n = row["n"]
        assert row["Result"] == n * 2 + 1
        assert ex.get_persisted("prepare", trial) == n * 2
        worker = ex.load_metric("worker", trial)
        assert worker[trial].tolist() == [float(n * 100 + epoch) for epoch in range(20)]
        assert ex.load_metric("score", trial)[trial].tolist() == [float(n * 2)]
    assert sorted((t, s) for t, s in persisted if t in set(succeeded.index)) == [
        (trial, "prepare") for trial in sorted(succeeded.index)
    ]
