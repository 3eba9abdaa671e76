"""The Redis store's ``history`` sorted set: one row per recorded trial, all a history reads.

Every batch writing a trial document writes its row (replacing the trial's
earlier one), every deletion removes it; stores written before the rows
existed (or by an older daskperiment writing or deleting beside a newer one)
read right, and get their rows written, never for a trial deleted or rewritten
meanwhile. Each check compares every row of ``get_history()`` with what its
trial's own parameters must give, and the stored rows with the trials'
documents.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis

from daskperiment import Experiment
from daskperiment.backend.codec import history_row
from daskperiment.records import TrialColumns, TrialStart
from daskperiment.transfer import copy_experiment, export_experiment, import_experiment
from conftest import _child_environment

CHILD_TIMEOUT_SECONDS = 240
WORKER = """
import sys
import daskperiment
from test_redis_history import record
ex = daskperiment.Experiment(sys.argv[2], backend=sys.argv[1], script_mode=False)
first = int(sys.argv[3]) * 100
record(ex, range(first, first + int(sys.argv[4])))
"""
"""A process recording trials of ``a = worker * 100 + i`` (see :func:`record`)."""


@pytest.fixture
def client(redis_uri: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_uri)
    yield connection
    connection.close()


def expected_b(a: int) -> Any:
    i = a % 100
    return (a, "t") if i % 2 else "x" * (i % 5)


def run_workers(uri: str, experiment_id: str, workers: range, trials: int, cwd: Path) -> None:
    env = _child_environment()
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env["PYTHONPATH"]])  # for record()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, uri, experiment_id, str(worker), str(trials)],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for worker in workers
    ]
    for child in children:
        _, err = child.communicate(timeout=CHILD_TIMEOUT_SECONDS)
        assert child.returncode == 0, err


def check_rows(ex: Experiment, ids: list[int]) -> None:
    """Every row of the history is what its trial's parameters give; ``ids`` are the recorded trials."""
    history = ex.get_history(verbose=True)
    recorded = [t for t in history.index if history.loc[t, "Status"] in ("finished", "failed")]
    assert recorded == ids
    for trial_id in ids:
        row = history.loc[trial_id]
        a = int(row["a"])
        assert row["b"] == expected_b(a), (trial_id, row["b"])
        if a % 7 == 3:
            assert row["Status"] == "failed" and not row["Success"] and row["Description"] == f"ValueError(bad a {a})"
            assert isinstance(row["Result"], float) and math.isnan(row["Result"])
        else:
            assert row["Status"] == "finished" and row["Success"] and row["Result"] == a * 10 + len(expected_b(a))
            assert row["Result Type"] == "<class 'int'>"
    assert ex.backend.load_trial_columns() == TrialColumns.of(ex.backend.load_trials())  # as the documents say


def stored_rows(client: redis.Redis, experiment_id: str) -> dict[int, list[Any]]:
    """The rows the ``history`` holds, by trial id, checked to be one per recorded trial, as its document gives."""
    members = client.zrange(f"daskperiment:{experiment_id}:history", 0, -1, withscores=True)
    rows = {int(score): json.loads(member) for member, score in members}
    assert len(rows) == len(members), ("one row per trial", [(m[:12], s) for m, s in members])
    documents = client.hgetall(f"daskperiment:{experiment_id}:trials")
    assert sorted(rows) == sorted(int(t) for t in documents)
    for trial_id, document in documents.items():
        assert rows[int(trial_id)] == history_row(json.loads(document)), trial_id
    return rows


def record(ex: Experiment, values: range) -> None:
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex.result
    def score(a, b):
        if a % 7 == 3:
            raise ValueError(f"bad a {a}")
        return a * 10 + len(b)

    for value in values:
        try:
            ex.run(score(a, b), a=value, b=expected_b(value), scheduler="sync")
        except ValueError:
            pass


def test_rows_of_trials_from_several_processes_deleted_annotated_running_and_killed(
    redis_uri: str, client: redis.Redis, make_experiment: Callable[..., Experiment], tmp_path: Path
) -> None:
    ex = make_experiment("crowd", backend=redis_uri)
    run_workers(redis_uri, ex.id, range(1, 4), 16, tmp_path)
    record(ex, range(400, 412))
    ids = list(range(1, 61))
    assert sorted(stored_rows(client, ex.id)) == ids
    check_rows(ex, ids)
    gone = [2, 17, 18, 33, 59, 60]
    assert ex.delete_trials(gone) == gone
    ids = [t for t in ids if t not in gone]
    assert sorted(stored_rows(client, ex.id)) == ids
    ex.set_note(5, "kept, noted")
    ex.add_tags(6, "x", "y")
    now = time.time()
    running = TrialStart({"a": 900, "b": "running"}, 1, now - 5, now, 10.0, "host:1")
    killed = TrialStart({"a": 901, "b": "killed"}, 2, now - 900, now - 800, 10.0, "host:2")
    started = ex.backend.start_trials([running, killed])
    before = stored_rows(client, ex.id)
    check_rows(ex, ids)
    assert stored_rows(client, ex.id) == before  # notes, tags and starts write no row
    history = ex.get_history()
    assert history.loc[5, "Note"] == "kept, noted" and history.loc[6, "Tags"] == "x, y"
    assert history.loc[list(started), "Status"].tolist() == ["running", "killed"]
    assert history.loc[list(started), "b"].tolist() == ["running", "killed"]
    assert history.index.tolist() == [*ids, *started]
    run_workers(redis_uri, ex.id, range(5, 6), 5, tmp_path)  # after deletions and starts: new ids
    ids += list(range(started[-1] + 1, started[-1] + 6))
    assert sorted(stored_rows(client, ex.id)) == ids
    check_rows(ex, ids)
    again = Experiment("crowd", backend=redis_uri)  # another session reads the same
    assert again.get_history().drop(columns=["Status", "Description"]).equals(
        ex.get_history().drop(columns=["Status", "Description"]))


def test_a_trial_rewritten_has_one_row_its_new_one(
    redis_uri: str, client: redis.Redis, make_experiment: Callable[..., Experiment]
) -> None:
    ex = make_experiment("rewritten", backend=redis_uri)
    record(ex, range(24))
    trials = ex.backend.load_trials([4, 9])
    ex.backend.rewrite_trials([replace(trial, description=f"rewritten {trial.trial_id}") for trial in trials])
    rows = stored_rows(client, ex.id)
    assert rows[4][7] == "rewritten 4" and rows[9][7] == "rewritten 9" and rows[5][7] is None
    history = ex.get_history()
    assert history.loc[[4, 9], "Description"].tolist() == ["rewritten 4", "rewritten 9"]


def test_a_store_written_before_rows_reads_right_and_gets_them(
    redis_uri: str, client: redis.Redis, make_experiment: Callable[..., Experiment], caplog: pytest.LogCaptureFixture
) -> None:
    ex = make_experiment("old", backend=redis_uri)
    record(ex, range(40))
    key = f"daskperiment:{ex.id}:history"
    client.delete(key)  # the documents alone: the layout before the history rows (documents unchanged)
    ids = list(range(1, 41))
    with caplog.at_level("INFO", logger="daskperiment.backend.redis"):
        check_rows(ex, ids)
    assert "history rows written for 40 trials" in caplog.text
    assert sorted(stored_rows(client, ex.id)) == ids
    caplog.clear()
    with caplog.at_level("INFO", logger="daskperiment.backend.redis"):
        check_rows(ex, ids)
    assert "history rows written" not in caplog.text  # nothing left to write


def test_a_mixed_store_reads_right_and_is_mended(
    redis_uri: str, client: redis.Redis, make_experiment: Callable[..., Experiment]
) -> None:
    """Rows missing (trials written by an older daskperiment), left (trials it deleted), doubled or damaged."""
    ex = make_experiment("mixed", backend=redis_uri)
    record(ex, range(36))
    prefix = f"daskperiment:{ex.id}:"
    rows = {int(score): member for member, score in client.zrange(prefix + "history", 0, -1, withscores=True)}
    for trial_id in (3, 4, 20, 36):  # recorded by an older daskperiment: no row
        client.zremrangebyscore(prefix + "history", trial_id, trial_id)
    for trial_id in (7, 8):  # deleted by an older daskperiment: the row stays
        client.hdel(prefix + "trials", trial_id)
        client.zrem(prefix + "trial_ids", trial_id)
    client.zadd(prefix + "history", {rows[13].replace(b"[13,", b"[12,", 1): 12})  # a second row for 12
    client.zadd(prefix + "history", {rows[12][:-3]: 12})  # and a damaged one
    client.zremrangebyscore(prefix + "history", 15, 15)
    client.zadd(prefix + "history", {b"not JSON": 15})  # a damaged row alone
    client.zadd(prefix + "history", {rows[16].replace(b"[16,", b"[17,", 1): 16})  # a row of another id
    ids = [t for t in range(1, 37) if t not in (7, 8)]
    check_rows(ex, ids)
    assert sorted(stored_rows(client, ex.id)) == ids
    assert client.zcard(prefix + "history") == len(ids)


def test_the_rows_written_spare_trials_deleted_or_rewritten_meanwhile(
    redis_uri: str, client: redis.Redis, make_experiment: Callable[..., Experiment], monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = make_experiment("race", backend=redis_uri)
    record(ex, range(30))
    other = Experiment("race", backend=redis_uri)  # another process, deleting and rewriting as the rows are mended
    prefix = f"daskperiment:{ex.id}:"
    client.delete(prefix + "history")
    client.zadd(prefix + "history", {b"[29]": 29})  # a damaged row: mended unless its trial is deleted first
    real_hmget = redis.Redis.hmget
    raced: list[bool] = []

    def hmget_then_race(self: redis.Redis, name: str, keys: Any, *args: Any) -> Any:
        found = real_hmget(self, name, keys, *args)
        if name == prefix + "trials" and not raced and len(list(keys)) > 20:  # the mending read of the documents
            raced.append(True)
            monkeypatch.setattr(redis.Redis, "hmget", real_hmget)
            assert other.delete_trials([5, 6, 29]) == [5, 6, 29]
            from dataclasses import replace

            trial = other.backend.load_trials([10])[0]
            other.backend.rewrite_trials([replace(trial, description="rewritten meanwhile")])
        return found

    monkeypatch.setattr(redis.Redis, "hmget", hmget_then_race)
    columns = ex.backend.load_trial_columns()  # read before the deletion: the deleted trials are in it
    assert raced and columns.trial_ids == list(range(1, 31))
    ids = [t for t in range(1, 31) if t not in (5, 6, 29)]
    rows = stored_rows(client, ex.id)  # no row brought back for a deleted trial, the rewritten trial's own row
    assert sorted(rows) == ids and rows[10][7] == "rewritten meanwhile"
    check_rows(ex, ids)
    assert ex.get_history().loc[10, "Description"] == "rewritten meanwhile"


def test_imports_and_copies_carry_the_rows(
    redis_uri: str, client: redis.Redis, make_experiment: Callable[..., Experiment], tmp_path: Path
) -> None:
    ex = make_experiment("origin", backend=redis_uri)
    record(ex, range(30))
    ex.delete_trials([4, 5])
    ids = [t for t in range(1, 31) if t not in (4, 5)]
    exported = tmp_path / "origin.zip"
    export_experiment("origin", exported, backend=redis_uri)
    local = make_experiment("origin", backend=tmp_path / "local")
    record(local, range(100, 130))
    for target_id, transfer in [
        ("imported", lambda: import_experiment(exported, backend=redis_uri, experiment_id="imported")),
        ("copied", lambda: copy_experiment("origin", redis_uri, redis_uri, new_id="copied")),
        ("from-local", lambda: copy_experiment("origin", tmp_path / "local", redis_uri, new_id="from-local")),
    ]:
        transfer()
        copy = Experiment(target_id, backend=redis_uri)
        expected = list(range(1, 31)) if target_id == "from-local" else ids
        assert sorted(stored_rows(client, target_id)) == expected
        check_rows(copy, expected)
    import_experiment(exported, backend=redis_uri, experiment_id="copied", replace=True)  # over it
    assert sorted(stored_rows(client, "copied")) == ids
    copy_experiment("origin", tmp_path / "local", redis_uri, new_id="copied", replace=True)
    assert sorted(stored_rows(client, "copied")) == list(range(1, 31))
    check_rows(Experiment("copied", backend=redis_uri), list(range(1, 31)))
    assert client.zcard("daskperiment:copied:history") == 30
