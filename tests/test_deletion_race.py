"""Deletions racing trial writes never leave a recorded trial without its code or environment (issue 12)."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from daskperiment.backend import open_backend
from daskperiment.deletion import delete_trials
from daskperiment.artifactstore import ArtifactStore

WRITERS, TRIALS_PER_WRITER = 3, 25


@pytest.fixture(params=["local", "redis", "mongo"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return tmp_path / "store" if request.param == "local" else request.getfixturevalue(f"{request.param}_uri")


def check_blobs(backend: Any) -> int:
    """Every recorded trial's code and environment are stored; how many trials there are."""
    trials = backend.load_trials()
    for trial in trials:
        for digest in trial.blob_digests():
            assert backend.load_blob(digest) is not None, (trial.trial_id, digest)
    return len(trials)


def test_blobs_a_deletion_removes_again_and_again_are_sent_again_each_time(spec, make_experiment, tmp_path) -> None:
    ex = make_experiment("raced", backend=spec)
    a = ex.parameter("a")

    @ex.result
    def double(a):
        return 2 * a

    deleter = open_backend(spec, "raced")  # another store object, as another process has
    artifacts = ArtifactStore(str(tmp_path / "unused"))
    for round_ in range(6):
        assert ex.run(double(a), a=round_, scheduler="sync") == 2 * round_
        assert check_blobs(ex.backend) == 1, round_  # the trial written after its blobs were removed
        trial_id = ex.backend.last_trial_id()
        assert delete_trials(deleter, artifacts, [trial_id], files=False).trial_ids == (trial_id,)


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import daskperiment

    spec = sys.argv[1] if "://" in sys.argv[1] else Path(sys.argv[1])
    ex = daskperiment.Experiment("raced", backend=spec)
    a = ex.parameter("a")

    @ex.result
    def double(a):
        return 2 * a

    for n in range(int(sys.argv[2])):
        assert ex.run(double(a), a=n, scheduler="sync") == 2 * n
    print("done", flush=True)
    """
)


def test_writers_and_a_deleter_at_once_leave_every_kept_trial_its_blobs(spec, make_experiment, tmp_path, child_env) -> None:
    make_experiment("raced", backend=spec).backend.allocate_trial_id()  # the store exists before the race
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(spec), str(TRIALS_PER_WRITER)],
            cwd=tmp_path, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(WRITERS)
    ]
    deleter = open_backend(spec, "raced")
    artifacts = ArtifactStore(str(tmp_path / "unused"))
    rng, deleted = random.Random(5), set()
    while any(writer.poll() is None for writer in writers):
        recorded = [t.trial_id for t in deleter.load_trials()]
        chosen = rng.sample(recorded, k=len(recorded) // 2) if recorded else []
        deleted.update(delete_trials(deleter, artifacts, chosen, files=False).trial_ids)
        time.sleep(rng.uniform(0.0, 0.05))
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0 and out == "done\n", err
    kept = check_blobs(open_backend(spec, "raced"))
    assert kept + len(deleted) == WRITERS * TRIALS_PER_WRITER and len(deleted) >= WRITERS
    ids = {t.trial_id for t in open_backend(spec, "raced").load_trials()}
    assert ids.isdisjoint(deleted) and len(ids | deleted) == WRITERS * TRIALS_PER_WRITER
