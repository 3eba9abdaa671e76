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
from daskperiment.records import RecordBatch


@pytest.fixture(params=["redis", "mongo"])
def forgetful_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ServerProcess, str]]:
    """A server of each kind that keeps nothing across a restart."""
    data = tmp_path / "server-data"
    data.mkdir()
    if request.param == "redis":
        server = ServerProcess(redis_command(data), tmp_path / "server.log").start()
        uri = f"redis://127.0.0.1:{server.port}/0"
    else:
        server = ServerProcess(mongo_command(":memory:"), tmp_path / "server.log").start()
        uri = f"mongodb://127.0.0.1:{server.port}/forgetful"
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


@pytest.mark.parametrize("loss", ["flushed or dropped", "restarted empty"])
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
    ex = Experiment("hung", backend=uri + "?timeout=1")
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


# -- the local store ------------------------------------------------------------------------------
@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Mounts a small tmpfs (tests run as root, which chmod does not stop): ``mount(size)``."""
    mounted: list[Path] = []

    def make(size: str = "4m") -> Path:
        folder = tmp_path / f"mount{len(mounted)}"
        folder.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=True)


READER = """
import json, sys
from pathlib import Path
import daskperiment
from daskperiment.board.store import TrialCache, open_store
ex = daskperiment.Experiment("ro", backend=Path(sys.argv[1]))
history = ex.get_history()
cache = TrialCache(open_store("ro", Path(sys.argv[1])), min_interval=0)
cache.refresh()
print(json.dumps({
    "ids": history.index.tolist(), "results": history["Result"].tolist(),
    "loss": ex.load_metric("loss", history.index.tolist()).loc[0].tolist(),
    "board": cache.frame.index.tolist(),
}))
"""


def test_a_store_on_a_read_only_mount_can_be_read(
    mount: Callable[..., Path], run_python: Callable
) -> None:
    folder = mount() / "ro"
    ex = Experiment("ro", backend=folder)
    _record(ex, range(1, 13))
    ex.backend.close()
    subprocess.run(["mount", "-o", "remount,ro", str(folder.parent)], check=True)
    with pytest.raises(OSError):
        (folder / "probe").write_bytes(b"")  # root cannot write there either

    child = run_python(READER, str(folder))
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == {
        "ids": list(range(1, 13)), "results": [10 * n for n in range(1, 13)],
        "loss": [float(n) for n in range(1, 13)], "board": list(range(1, 13)),
    }
    listed = subprocess.run(
        [sys.executable, "-m", "daskperiment", "history", "ro", "--backend", str(folder)],
        env=_child_environment(), capture_output=True, text=True, timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert "120" in listed.stdout
    reader = Experiment("ro", backend=folder)
    with pytest.raises(BackendError, match="cannot write the code file of trial 3 .*ex.get_code"):
        reader.code_file(3)
    assert "return n * 10" in reader.get_code(3)
    with pytest.raises(BackendError, match="cannot open the local store .*writable"):
        _record(Experiment("ro", backend=folder), range(13, 14))


def test_a_store_folder_removed_while_open_is_created_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    from daskperiment.backend import LocalBackend

    caplog.set_level(logging.INFO, logger="daskperiment")
    folder = tmp_path / "gone"
    ex = Experiment("gone", backend=folder)
    _record(ex, range(1, 11))
    shutil.rmtree(folder)
    _record(ex, range(11, 21))
    errors = _errors(caplog)
    assert len(errors) == 1, errors
    assert f"the local store {folder / 'gone.sqlite3'} was removed" in errors[0]
    assert "continue after 10" in errors[0]
    fresh = LocalBackend(folder, "gone")  # what any other reader of the folder sees
    assert [t.trial_id for t in fresh.load_trials()] == list(range(11, 21))
    assert [t.result for t in fresh.load_trials()] == [10 * n for n in range(11, 21)]
    for trial in fresh.load_trials():
        assert fresh.load_blob(trial.code_digest) is not None
        assert fresh.load_blob(trial.environment_digest) is not None
        assert (folder / "code" / "versions" / f"{trial.code_digest}.py").is_file()
    _check_rows(ex, {t: t for t in range(11, 21)})


def test_a_full_disk_names_the_store_and_the_trial_not_recorded(mount: Callable[..., Path]) -> None:
    disk = mount("2m")
    ex = Experiment("full", backend=disk / "full")
    _record(ex, range(1, 6))

    @ex.result
    def big(n):
        ex.save_metric("loss", epoch=0, value=float(n))
        return "x" * 300_000

    filler = disk / "filler"
    with filler.open("wb") as output:
        try:
            while True:
                output.write(b"\\0" * 65536)
                output.flush()
        except OSError:
            pass
    with pytest.raises(BackendError) as raised:
        for n in range(6, 20):  # the disk fills up
            big(n).compute(seed=n)
    message = str(raised.value)
    assert f"the local store {disk / 'full' / 'full.sqlite3'} could not record" in message
    assert "not recorded" in message and "disk is full" in message
    filler.unlink()
    _record(ex, range(30, 35))
    history = ex.get_history()
    assert history["Success"].all()
    assert history["Result"].tolist()[:5] == [10, 20, 30, 40, 50]
    assert history["Result"].tolist()[-5:] == [300, 310, 320, 330, 340]


def test_a_damaged_database_is_named_and_not_written_again(tmp_path: Path) -> None:
    folder = tmp_path / "damaged"
    ex = Experiment("damaged", backend=folder)
    _record(ex, range(1, 41))
    ex.backend.close()
    database = folder / "damaged.sqlite3"
    content = bytearray(database.read_bytes())
    for start in range(4096, len(content), 4096):  # every page but the first
        content[start : start + 64] = b"\\xa5" * 64
    database.write_bytes(bytes(content))

    with pytest.raises(BackendError) as raised:
        _record(ex, range(41, 42))
    message = str(raised.value)
    assert str(database) in message and "damaged" in message and "not recorded" in message
    assert "integrity check" in message and ".recover" in message
    with pytest.raises(BackendError, match="is damaged .* not recorded"):
        ex.backend.write_batch(RecordBatch())
    assert database.read_bytes() == bytes(content)  # nothing more was written
