"""Faults of the store: a server that lost its data, hung servers, local stores removed, full or damaged."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import ServerProcess, _child_environment, mongo_command, redis_command
from daskperiment import Experiment
from daskperiment.errors import BackendError


@pytest.fixture(params=["redis", "mongo"])
def forgetful_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ServerProcess, str]]:
    """A server of each kind that keeps nothing across a restart."""
    data = tmp_path / "server-data"
    data.mkdir()
    if request.param == "redis":
        server = ServerProcess(redis_command(data), tmp_path / "server.log").start()
        uri = f"redis://127.0.0.1:{server.port}/0?timeout=5"
    else:
        server = ServerProcess(mongo_command(":memory:"), tmp_path / "server.log").start()
        uri = f"mongodb://127.0.0.1:{server.port}/forgetful?timeout=5"
    yield server, uri
    server.kill()


def _flushall(uri: str) -> None:
    import redis

    client = redis.Redis.from_url(uri.partition("?")[0])
    client.flushall()
    client.close()


def _drop_collection(uri: str, experiment_id: str) -> None:
    import pymongo

    client = pymongo.MongoClient(uri.partition("?")[0])
    client.get_default_database().drop_collection(f"daskperiment_{experiment_id}")
    client.close()


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.startswith("daskperiment")
    ]


LATER_PROCESS = """
import json, sys
import daskperiment
ex = daskperiment.Experiment("lost", backend=sys.argv[1])

@ex.result
def train(n):
    ex.save_metric("loss", epoch=0, value=float(n))
    return n * 10

for n in range(int(sys.argv[2]), int(sys.argv[3])):
    train(n).compute(seed=n)
print(json.dumps(ex.get_history().index.tolist()))
"""


def _record(ex: Experiment, numbers: range) -> None:
    @ex.result
    def train(n):
        ex.save_metric("loss", epoch=0, value=float(n))
        return n * 10

    for n in numbers:
        assert train(n).compute(seed=n) == n * 10


def _check_rows(ex: Experiment, expected: dict[int, int]) -> None:
    """Every trial is recorded with its result, metric, code and environment."""
    history = ex.get_history()
    assert history.index.tolist() == sorted(expected)
    assert history["Result"].tolist() == [10 * expected[t] for t in sorted(expected)]
    assert history["Success"].all()
    metrics = ex.load_metric("loss", sorted(expected))
    for trial_id, n in expected.items():
        assert metrics[trial_id].tolist() == [float(n)]
    for trial in ex.backend.load_trials():
        assert ex.backend.load_blob(trial.code_digest) is not None, trial.trial_id
        assert ex.backend.load_blob(trial.environment_digest) is not None, trial.trial_id


@pytest.mark.parametrize("loss", ["flushed", "restarted empty"])
def test_a_server_that_lost_its_data_keeps_ids_and_blobs(
    forgetful_server: tuple[ServerProcess, str],
    loss: str,
    run_python: Callable,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, uri = forgetful_server
    caplog.set_level(logging.INFO, logger="daskperiment")
    ex = Experiment("lost", backend=uri)
    _record(ex, range(1, 13))
    before = ex.backend.epoch()
    if loss == "restarted empty":
        server.kill()
        server.start()
    elif uri.startswith("redis"):
        _flushall(uri)
    else:
        _drop_collection(uri, "lost")

    _record(ex, range(13, 25))  # ids never reused in this process's view
    errors = _errors(caplog)
    assert len(errors) == 1, errors
    assert f"server {ex.backend.server} has lost the records of experiment 'lost'" in errors[0]
    assert "ids up to 12" in errors[0] and "continue after 12" in errors[0]
    assert ex.backend.epoch() not in (None, before)
    child = run_python(LATER_PROCESS, uri, "25", "31")
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == list(range(13, 31))
    _check_rows(ex, {t: t for t in range(13, 31)})


def test_a_dropped_mongo_collection_is_noticed_by_every_process(
    mongo_uri: str, run_python: Callable, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="daskperiment")
    ex = Experiment("lost", backend=mongo_uri)
    _record(ex, range(1, 11))
    other = run_python(LATER_PROCESS, mongo_uri, "11", "16")
    assert json.loads(other.stdout) == list(range(1, 16))
    _drop_collection(mongo_uri, "lost")
    child = run_python(LATER_PROCESS, mongo_uri, "1", "6")  # opens the emptied store first
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == [1, 2, 3, 4, 5]
    _record(ex, range(21, 31))  # this process saw ids up to 10: its trials go after them
    errors = _errors(caplog)
    assert len(errors) == 1 and "ids up to 10" in errors[0], errors
    assert "collection was deleted" in errors[0] and "holds trials up to id 5" in errors[0]
    _check_rows(ex, {**{t: t for t in range(1, 6)}, **{t: t + 10 for t in range(11, 21)}})


def test_a_spooled_trial_never_overwrites_a_newer_one(
    forgetful_server: tuple[ServerProcess, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, uri = forgetful_server
    caplog.set_level(logging.INFO, logger="daskperiment")
    ex = Experiment("lost", backend=uri)
    _record(ex, range(1, 3))
    kill = {"now": True}

    @ex.result
    def train(n):
        ex.save_metric("loss", epoch=0, value=float(n))
        if kill["now"]:
            server.kill()
        return n * 10

    with pytest.raises(BackendError, match="trial 3"):
        train(3).compute(seed=3)
    server.start()  # empty
    elsewhere = tmp_path / "elsewhere"  # another working directory: another spool
    elsewhere.mkdir()
    child = subprocess.run(
        [sys.executable, "-c", LATER_PROCESS, uri, "101", "106"],
        cwd=elsewhere, env=_child_environment(), capture_output=True, text=True, timeout=120,
    )
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == [1, 2, 3, 4, 5]

    assert ex.backend.sync() == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("trial 3 of experiment 'lost' is recorded as trial 6" in w for w in warnings), warnings
    kill["now"] = False
    assert train(7).compute(seed=7) == 70  # sends the code and environment again
    _check_rows(ex, {1: 101, 2: 102, 3: 103, 4: 104, 5: 105, 6: 3, 7: 7})


def test_the_dashboard_reloads_a_store_that_lost_its_data(
    server_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    from daskperiment.board.store import TrialCache, open_store

    ex = Experiment("lost", backend=server_uri)
    _record(ex, range(1, 9))
    cache = TrialCache(open_store("lost", server_uri), min_interval=0)
    assert cache.refresh() and cache.frame.index.tolist() == list(range(1, 9))
    if server_uri.startswith("redis"):
        _flushall(server_uri)
    else:
        _drop_collection(server_uri, "lost")
    assert cache.refresh()  # emptied
    assert cache.frame.index.tolist() == []
    _record(ex, range(9, 14))
    assert cache.refresh()
    assert cache.frame.index.tolist() == list(range(9, 14))
    assert cache.frame["Result"].tolist() == [90, 100, 110, 120, 130]
    assert any("dashboard reloads" in r.getMessage() for r in caplog.records)


def test_a_hung_server_spools_the_trial_once_the_timeout_is_over(
    forgetful_server: tuple[ServerProcess, str]
) -> None:
    server, uri = forgetful_server
    ex = Experiment("hung", backend=uri.replace("timeout=5", "timeout=1"))
    assert ex.backend.timeout == 1.0
    _record(ex, range(1, 6))
    stop = {"now": True}

    @ex.result
    def train(n):
        ex.save_metric("loss", epoch=0, value=float(n))
        if stop["now"]:
            os.kill(server.process.pid, signal.SIGSTOP)
        return n * 10

    try:
        with pytest.raises(BackendError, match="trial 6") as raised:
            train(6).compute(seed=6)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    assert "Nothing is lost" in str(raised.value)
    assert len(ex.backend.spool.pending()) == 1
    assert ex.backend.sync() == 1  # the server may have run the write it got before it stopped
    assert ex.backend.sync() == 0
    stop["now"] = False
    for n in range(7, 13):
        assert train(n).compute(seed=n) == n * 10
    _check_rows(ex, {t: t for t in range(1, 13)})


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_a_bad_timeout_option_is_a_clear_error(server_uri: str, value: str) -> None:
    uri = server_uri + ("&" if "?" in server_uri else "?") + f"timeout={value}"
    with pytest.raises(BackendError, match=f"timeout={value!r}.*positive number of seconds"):
        Experiment("hung", backend=uri)


def test_the_timeout_option_is_not_part_of_the_spool_folder(server_uri: str) -> None:
    plain = Experiment("a", backend=server_uri).backend
    timed = Experiment("b", backend=server_uri + "?timeout=3").backend
    assert (plain.timeout, timed.timeout) == (10.0, 3.0)
    assert plain.spool.directory.name == timed.spool.directory.name
