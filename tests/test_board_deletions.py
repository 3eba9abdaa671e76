"""Trials deleted by another process leave an open dashboard at its next refresh, on every store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_board import record, write_trials
from test_board_notes import STORES, TRIALS, make_store

from daskperiment.backend import Backend
from daskperiment.board.store import TrialCache
from daskperiment.records import Blob


def delete_elsewhere(location: object, trial_ids: list[int]) -> None:
    """Delete ``trial_ids`` of experiment ``gone`` with the command line, in another process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run(
        [sys.executable, "-m", "daskperiment", "delete", "gone", *map(str, trial_ids), "--yes",
         "--backend", str(location)],
        check=True, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
    )


def check_rows(cache: TrialCache, kept: set[int]) -> None:
    """The table holds exactly ``kept``, each row with what its own trial recorded."""
    frame = cache.frame
    assert sorted(frame.index) == sorted(kept)
    for trial_id in kept:
        assert frame.loc[trial_id, "lr"] == trial_id / 100
        assert frame.loc[trial_id, "Result"] == trial_id / 10


@pytest.mark.parametrize("kind", STORES)
def test_trials_deleted_by_another_process_leave_the_table(kind: str, request: pytest.FixtureRequest,
                                                           tmp_path: Path) -> None:
    backend, location = make_store(kind, request, tmp_path, "gone")
    cache = TrialCache(backend, min_interval=0)
    cache.refresh()
    kept = set(range(1, TRIALS + 1))
    check_rows(cache, kept)
    assert backend.deletions() == 0

    first = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, TRIALS]  # the last one too: ids alone cannot tell
    delete_elsewhere(location, first)
    kept -= set(first)
    assert cache.refresh()
    check_rows(cache, kept)
    assert not cache.refresh()  # nothing more changed: no reload

    code = Blob.of(b"def train(lr):\n    return lr\n")
    new = range(TRIALS + 1, TRIALS + 9)
    write_trials(backend, [record(t, code, result=t / 10, lr=t / 100, depth=t % 3) for t in new], [code])
    second = [1, TRIALS + 2, TRIALS + 8]
    delete_elsewhere(location, second)
    kept = (kept | set(new)) - set(second)
    assert cache.refresh()
    check_rows(cache, kept)
    assert backend.deletions() == 2


def test_a_deletion_of_no_trial_is_not_counted(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    backend: Backend = make_store("local", request, tmp_path, "gone")[0]
    assert backend.delete_trials([]).trial_ids == () and backend.delete_trials([999]).trial_ids == ()
    assert backend.deletions() == 0
