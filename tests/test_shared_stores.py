"""Experiments on shared stores (Redis, MongoDB): same features, many processes, crashes."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import threading
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest

from conftest import ServerProcess, _child_environment, free_port, mongo_command, redis_command
from daskperiment import BackendError, Experiment
from daskperiment.backend import open_backend
from daskperiment.backend.server import new_token
from daskperiment import serialization
from daskperiment.backend.spool import SPOOL_FORMAT, Spool
from daskperiment.records import MetricPoint, RecordBatch, TrialRecord
from test_store_contract import artifact, cache_entry, listed, trial

CHILD_TIMEOUT_SECONDS = 300


def scenario(ex: Experiment) -> None:
    """Three trials using every feature: parameters, persist, metrics, seeds, purity, failure."""
    a, b = ex.parameter("a"), ex.parameter("b", default=2)
    calls = {"n": 0}

    @ex.persist
    def prepare(a, b):
        return {"sum": a + b, "items": list(range(a))}

    @ex
    def impure(a):
        calls["n"] += 1
        return calls["n"]

    @ex.result
    def score(prepared, noise):
        for epoch in range(5):
            ex.save_metric("loss", epoch=epoch, value=1 / (prepared["sum"] + epoch + 0.5))
        ex.save_metric("random", epoch=0, value=float(np.random.rand()))
        return 10 / prepared["sum"]

    result = score(prepare(a, b), impure(a))
    ex.set_parameters(a=1)
    result.compute(seed=1)
    ex.set_parameters(a=1, b=5)
    result.compute(seed=1)  # the same seed: impure(1) is compared with trial 1's output
    ex.set_parameters(a=-2, b=2)
    with pytest.raises(ZeroDivisionError):
        result.compute(seed=3)


def recorded(ex: Experiment) -> dict[str, Any]:
    """Everything the experiment can tell about its trials, comparable across stores."""
    trials = [1, 2, 3]
    history = ex.get_history(verbose=True).drop(columns=["Finished", "Process Time"])
    return {
        "trial_id": ex.trial_id,
        "history": history.astype(object).where(history.notna(), None).to_dict(),
        "parameters": [ex.get_parameters(t) for t in trials],
        "persisted": [ex.get_persisted("prepare", t) for t in trials],
        "loss": ex.load_metric("loss", trials).to_dict(),
        "random": ex.load_metric("random", trials).to_dict(),
        "metric_keys": ex.backend.metric_keys(),
        "code": [ex.get_code(t) for t in trials],
        "environment": [ex.get_environment(t) for t in trials],
        "packages": [ex.get_python_packages(t) for t in trials],
    }


def test_every_feature_works_identically_on_every_store(
    redis_uri: str, mongo_uri: str, tmp_path: Path, warnings_of: Callable[[], list[str]]
) -> None:
    outcomes, warnings = {}, {}
    for kind, backend in [
        ("local", tmp_path / "local"),
        ("redis", redis_uri),
        ("mongo", mongo_uri),
    ]:
        before = len(warnings_of())
        ex = Experiment(f"same_{kind}", backend=backend)
        scenario(ex)
        warnings[kind] = warnings_of()[before:]
        outcomes[kind] = recorded(ex)
    assert outcomes["redis"] == outcomes["local"]
    assert outcomes["mongo"] == outcomes["local"]
    assert outcomes["local"]["history"]["Description"][3] == "ZeroDivisionError(division by zero)"
    assert warnings["redis"] == warnings["mongo"] == warnings["local"]
    assert any("step: impure" in w for w in warnings["local"])


def test_steps_in_worker_processes_write_to_the_server(server_uri: str) -> None:
    ex = Experiment("workers", backend=server_uri)

    @ex.persist
    def prepare(n):
        ex.save_metric("size", epoch=0, value=float(n))
        return list(range(n))

    @ex.result
    def total(values):
        ex.save_metric("size", epoch=1, value=float(len(values) + 1))
        return sum(values)

    assert total(prepare(4)).compute(seed=7, scheduler="processes", num_workers=2) == 6
    assert ex.get_persisted("prepare", 1) == [0, 1, 2, 3]
    assert ex.load_metric("size", 1)[1].tolist() == [4.0, 5.0]


CHILD_READER = """
import json, sys
import daskperiment
ex = daskperiment.Experiment("shared", backend=sys.argv[1])
x = ex.parameter("x")

@ex.result
def double(x):
    for epoch in range(3):
        ex.save_metric("m", epoch=epoch, value=x + epoch / 10)
    return 2 * x

seen_first = ex.trial_id
ex.set_parameters(x=21)
double(x).compute(seed=5)
history = ex.get_history(verbose=True).drop(columns=["Finished", "Process Time"])
history = history.astype(object).where(history.notna(), None)  # NaN (Description) as null
print(json.dumps({
    "seen_first": seen_first,
    "history": history.reset_index().to_dict("records"),
    "metrics": ex.load_metric("m", [1, 2]).to_dict("list"),
    "code": [ex.get_code(1), ex.get_code(2)],
}))
"""


def test_two_processes_see_each_others_trials(server_uri: str, run_python: Callable) -> None:
    ex = Experiment("shared", backend=server_uri)
    x = ex.parameter("x")

    @ex.result
    def double(x):
        for epoch in range(3):
            ex.save_metric("m", epoch=epoch, value=x + epoch / 10)
        return 2 * x

    ex.set_parameters(x=1)
    double(x).compute(seed=4)
    child = run_python(CHILD_READER, server_uri)
    assert child.returncode == 0, child.stderr
    seen = json.loads(child.stdout)
    assert seen["seen_first"] == 1
    assert ex.trial_id == 2
    history = ex.get_history(verbose=True).drop(columns=["Finished", "Process Time"])
    history = history.astype(object).where(history.notna(), None)
    assert history.reset_index().to_dict("records") == seen["history"]
    assert (
        ex.load_metric("m", [1, 2]).to_dict("list")
        == {int(k): v for k, v in seen["metrics"].items()}
        == {1: [1.0, 1.1, 1.2], 2: [21.0, 21.1, 21.2]}
    )
    assert [ex.get_code(1), ex.get_code(2)] == seen["code"]


CROWD = """
import json, sys
import daskperiment
ex = daskperiment.Experiment("crowd", backend=sys.argv[1])
worker = int(sys.argv[2])
x = ex.parameter("x")
ids = []

@ex.result
def triple(x):
    ids.append(ex.current_trial_id)
    ex.save_metric("x", epoch=0, value=float(x))
    return 3 * x

for i in range(50):
    ex.set_parameters(x=worker * 1000 + i)
    triple(x).compute(seed=i)
print(json.dumps(ids))
"""


def test_eight_processes_of_fifty_trials_get_distinct_ids(server_uri: str, tmp_path: Path) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CROWD, server_uri, str(worker)],
            cwd=tmp_path,
            env=_child_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(8)
    ]
    claimed: list[int] = []
    for child in children:
        out, err = child.communicate(timeout=CHILD_TIMEOUT_SECONDS)
        assert child.returncode == 0, err
        claimed.extend(json.loads(out))
    assert sorted(claimed) == list(range(1, 401))
    ex = Experiment("crowd", backend=server_uri)
    history = ex.get_history()
    assert history.index.tolist() == list(range(1, 401))
    assert history["Success"].all()
    assert (history["Result"] == 3 * history["x"]).all()
    metrics = ex.load_metric("x", history.index.tolist())
    assert metrics.loc[0].tolist() == history["x"].astype(float).tolist()


@pytest.fixture(params=["redis", "mongo"])
def killable_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ServerProcess, str]]:
    """A server of each kind that keeps its data on disk across a kill and restart."""
    data = tmp_path / "server-data"
    data.mkdir()
    if request.param == "redis":
        server = ServerProcess(
            redis_command(data, persistent=True), tmp_path / "server.log"
        ).start()
        uri = f"redis://127.0.0.1:{server.port}/0"
    else:
        command = mongo_command(str(data), "--sync-on-commit")
        server = ServerProcess(command, tmp_path / "server.log").start()
        uri = f"mongodb://127.0.0.1:{server.port}/crash?serverSelectionTimeoutMS=1500"
    yield server, uri
    server.kill()


CHILD_OPENER = """
import json, sys
import daskperiment
ex = daskperiment.Experiment("crash", backend=sys.argv[1])
print(json.dumps(ex.get_history().index.tolist()))
"""


def test_a_server_killed_mid_trial_loses_nothing(
    killable_server: tuple[ServerProcess, str], run_python: Callable
) -> None:
    server, uri = killable_server
    ex = Experiment("crash", backend=uri)
    kill = {"now": False}

    @ex.result
    def train(n):
        ex.save_metric("loss", epoch=0, value=1.0 / n)
        if kill["now"]:
            server.kill()
        ex.save_metric("loss", epoch=1, value=0.5 / n)
        return n

    assert train(1).compute(seed=1) == 1
    kill["now"] = True
    with pytest.raises(BackendError) as raised:
        train(2).compute(seed=2)
    message = str(raised.value)
    assert f"server {uri}" in message and "trial 2" in message and "sync()" in message
    assert len(ex.backend.spool.pending()) == 1

    kill["now"] = False
    with pytest.raises(BackendError, match="start a trial"):
        train(3).compute()  # the server is down: no trial can start

    server.start()
    reopened = run_python(CHILD_OPENER, uri)  # opening the experiment re-sends the spool
    assert reopened.returncode == 0, reopened.stderr
    assert json.loads(reopened.stdout) == [1, 2]
    assert ex.backend.spool.pending() == []
    assert ex.get_history()["Result"].tolist() == [1, 2]
    assert ex.load_metric("loss", [1, 2])[2].tolist() == [0.5, 0.25]

    kill["now"] = True
    with pytest.raises(BackendError, match="trial 3"):
        train(4).compute(seed=4)
    server.start()
    assert ex.backend.sync() == 1
    assert ex.backend.sync() == 0
    assert ex.get_history()["Result"].tolist() == [1, 2, 4]
    assert ex.load_metric("loss", [3])[3].tolist() == [0.25, 0.125]


def test_a_server_killed_during_the_first_trial_of_a_process_loses_nothing(
    killable_server: tuple[ServerProcess, str], warnings_of: Callable
) -> None:
    server, uri = killable_server
    ex = Experiment("first", backend=uri)

    @ex.result
    def train():
        ex.save_metric("loss", epoch=0, value=1.0)
        server.kill()  # before the writer has read anything from the store
        return "done"

    with pytest.raises(BackendError, match="trial 1"):
        train().compute(seed=1)
    assert any("could not compare" in w for w in warnings_of())
    server.start()
    assert ex.backend.sync() == 1
    assert ex.get_history()["Result"].tolist() == ["done"]
    assert ex.load_metric("loss", 1)[1].tolist() == [1.0]


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("redis://127.0.0.1:notaport/0", "malformed URI"),
        ("mongodb://127.0.0.1:27017", "names no database"),
        ("postgres://127.0.0.1/db", "unknown backend"),
        ("not a uri", "unknown backend"),
        (3.5, "unknown backend"),
    ],
)
def test_bad_backends_are_clear_errors(backend: object, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        Experiment("bad", backend=backend)


def test_importing_daskperiment_loads_no_server_client(run_python: Callable) -> None:
    child = run_python(
        "import sys, daskperiment; print('redis' in sys.modules, 'pymongo' in sys.modules)"
    )
    assert child.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("uri", ["redis://127.0.0.1:{}/0", "mongodb://127.0.0.1:{}/db"])
def test_a_batch_that_cannot_be_serialized_is_not_spooled(uri: str) -> None:
    backend = open_backend(uri.format(free_port()), "x")  # no server there: nothing is sent
    with pytest.raises(TypeError, match="cannot serialize"):
        backend.write_batch(RecordBatch(trials=[trial(1, result=threading.Lock())]))
    assert backend.spool.pending() == []


def test_sync_skips_unreadable_spool_files(
    server_uri: str, warnings_of: Callable[[], list[str]]
) -> None:
    backend = Experiment("spooled", backend=server_uri).backend
    backend.spool.directory.mkdir(parents=True)
    garbage = backend.spool.directory / "0-garbage.batch"
    garbage.write_bytes(b"not a pickle")
    backend.spool.put(new_token(), RecordBatch(trials=[trial(1)]))
    assert backend.sync() == 1
    assert backend.load_trials() == [trial(1)]
    assert garbage.exists()
    assert any("cannot be read and is left in place" in w for w in warnings_of())


def test_a_spool_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    backend = open_backend(f"redis://127.0.0.1:{free_port()}/0", "x")  # no server there
    (tmp_path / "a-file").write_text("")
    backend.spool = Spool(tmp_path / "a-file" / "spool")
    with pytest.raises(BackendError, match="could not be kept in the local spool .* either"):
        backend.write_batch(RecordBatch(trials=[trial(1)]))


def test_a_spooled_batch_keeps_its_cache_entries_and_artifacts(server_uri: str) -> None:
    backend = open_backend(server_uri, "spooled")
    batch = RecordBatch(
        trials=[trial(2, cached_steps=(("prepare", 1),))],
        metrics=[MetricPoint(2, "loss", 0, 0.5)],
        cache_entries=[
            cache_entry("k"),
            cache_entry("far", payload=None, location="d" * 64, last_used=50.0),
        ],
        artifacts=[artifact(2, "output", ""), artifact(2, "weights", "a.bin")],
    )
    assert backend.last_trial_id() == 0  # connected: sync() sends what the spool holds
    token = new_token()
    for _ in range(2):  # re-sent after the server took it once: stored once
        backend.spool.put(token, batch)
        assert backend.sync() == 1
        assert backend.load_trials() == batch.trials
        assert backend.load_metrics("loss", [2]) == batch.metrics
        assert backend.cache_entries() == [batch.cache_entries[1], listed(batch.cache_entries[0])]
        assert backend.load_cache_payload("k") == b"payload k"
        assert backend.load_artifacts(2) == batch.artifacts
    backend.close()


class _AsPickledBefore:
    """Pickles as a ``kind`` of state ``state``, as an earlier daskperiment pickled it."""

    def __init__(self, kind: type, state: Any) -> None:
        self.kind, self.state = kind, state

    def __reduce__(self) -> tuple[Any, ...]:
        return object.__new__, (self.kind,), self.state


def test_a_batch_spooled_before_the_step_cache_is_re_sent(server_uri: str) -> None:
    backend = open_backend(server_uri, "spooled")
    old = trial(1)
    # A frozen slotted dataclass pickles the values of its fields, a slotted one a dict of them.
    old_trial = _AsPickledBefore(
        TrialRecord,
        [getattr(old, f.name) for f in fields(TrialRecord) if f.name not in ("cached_steps", "status")],
    )
    old_batch = _AsPickledBefore(
        RecordBatch,
        (None, {"trials": [old_trial], "metrics": [MetricPoint(1, "loss", 0, 0.5)],
                "persisted": [], "step_outputs": [], "blobs": []}),
    )
    assert backend.last_trial_id() == 0  # connected: sync() sends what the spool holds
    backend.spool.directory.mkdir(parents=True)
    token = new_token()
    (backend.spool.directory / f"{token}.batch").write_bytes(
        pickle.dumps({"format": SPOOL_FORMAT, "token": token, "batch": old_batch}, protocol=5)
    )
    assert backend.spool.pending() == []  # unsigned: not loaded unless its pickles are trusted
    with serialization.trusting(serialization.Trust.OLD_PICKLES):
        (spooled,) = backend.spool.pending()
    assert spooled.batch == RecordBatch(trials=[old], metrics=[MetricPoint(1, "loss", 0, 0.5)])
    assert pickle.loads(pickle.dumps(spooled.batch)) == spooled.batch
    with serialization.trusting(serialization.Trust.OLD_PICKLES):  # as `daskperiment migrate` does
        assert backend.sync() == 1
    assert backend.load_trials() == [old] and backend.load_trials()[0].cached_steps == ()
    backend.close()
