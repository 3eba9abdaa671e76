"""What only the MongoDB store does: URIs, databases, collections, round trips."""

from __future__ import annotations

import logging
import pickle
from urllib.parse import urlsplit

import pymongo
import pytest
from pymongo import monitoring

from conftest import free_port
from daskperiment import Experiment
from daskperiment.backend import experiment_ids, open_backend
from daskperiment.backend.mongo import MAX_VALUE_BYTES, MongoBackend
from daskperiment.errors import BackendError, InvalidExperimentIDError
from daskperiment.records import MetricPoint, PersistedValue, RecordBatch
from test_store_contract import (
    artifact,
    cache_entry,
    check_a_version_1_trial_reads_with_the_defaults,
    trial,
    version_1_trial_document,
)


def test_repr_shows_the_uri_as_given() -> None:
    backend = open_backend("mongodb://localhost:27017/test_db", "x")  # connects only when used
    assert isinstance(backend, MongoBackend)
    assert repr(backend) == "MongoBackend('mongodb://localhost:27017/test_db')"
    srv = open_backend("mongodb+srv://u:pw@cluster0.example.net/team?retryWrites=true", "x")
    assert (
        repr(srv)
        == "MongoBackend('mongodb+srv://u:***@cluster0.example.net/team?retryWrites=true')"
    )


def test_the_password_is_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="daskperiment")
    port = free_port()
    uri = f"mongodb://alice:s3cret@127.0.0.1:{port}/db?serverSelectionTimeoutMS=300&tls=false"
    backend = MongoBackend(uri, "x")
    assert repr(backend) == (
        f"MongoBackend('mongodb://alice:***@127.0.0.1:{port}/db?serverSelectionTimeoutMS=300&tls=false')"
    )
    with pytest.raises(BackendError) as raised:
        backend.last_trial_id()
    assert "s3cret" not in str(raised.value)
    assert "s3cret" not in caplog.text
    assert backend.reopen_arguments()[0] == uri


def test_unreachable_server_is_a_clear_error() -> None:
    uri = f"mongodb://127.0.0.1:{free_port()}/db?serverSelectionTimeoutMS=300"
    with pytest.raises(BackendError, match="cannot reach the MongoDB server mongodb://127.0.0.1"):
        Experiment("unreachable", backend=uri)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("mongodb://127.0.0.1:27017", "names no database"),
        ("mongodb://127.0.0.1:27017/", "names no database"),
        ("mongodb://127.0.0.1:notaport/db", "malformed URI"),
        ("mongodb://127.0.0.1:27017/db?noSuchOption=1", "malformed URI"),
        ("mongodb://127.0.0.1:27017/bad.name", "cannot name a MongoDB database"),
        ("mongodb:///db", "names no host"),
    ],
)
def test_malformed_uri_is_a_clear_error(uri: str, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        open_backend(uri, "x")


def test_wrong_scheme_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match="wrong scheme.*mongodb://"):
        MongoBackend("redis://127.0.0.1:6379/0", "x")
    with pytest.raises(BackendError, match="unknown backend 'mongo://h/db'"):
        open_backend("mongo://h/db", "x")


def test_a_client_without_a_database_is_refused() -> None:
    client = pymongo.MongoClient("mongodb://127.0.0.1:1", connect=False)
    with pytest.raises(BackendError, match=r"a MongoClient names no database.*client\['test_db'\]"):
        Experiment("clientonly", backend=client)
    client.close()


@pytest.mark.parametrize("bad_id", ["a$b", "system.x ", "a b", "", "a/b"])
def test_ids_that_would_break_collection_names_are_refused(mongo_uri: str, bad_id: str) -> None:
    with pytest.raises(InvalidExperimentIDError, match="invalid experiment id"):
        MongoBackend(mongo_uri, bad_id)


def test_one_collection_per_experiment(mongo_uri: str) -> None:
    for name in ("system.users", "b"):
        MongoBackend(mongo_uri, name).write_trial(trial(1))
    client = pymongo.MongoClient(mongo_uri)
    names = client.get_default_database().list_collection_names()
    client.close()
    assert sorted(names) == ["daskperiment_b", "daskperiment_system.users"]
    assert experiment_ids(mongo_uri) == ["b", "system.users"]


def test_a_database_is_accepted(mongo_uri: str) -> None:
    client = pymongo.MongoClient(mongo_uri)
    ex = Experiment("given", backend=client.get_default_database())
    assert repr(ex.backend) == f"MongoBackend('{mongo_uri}')"
    ex.backend.write_trial(trial(1))
    copy = pickle.loads(pickle.dumps(ex.backend))
    assert copy == ex.backend and copy.load_trials() == [trial(1)]
    client.close()


def test_a_database_of_a_client_given_hosts_keeps_its_name(mongo_uri: str) -> None:
    parts = urlsplit(mongo_uri)
    client = pymongo.MongoClient(parts.hostname, parts.port, connect=False)
    backend = open_backend(client["other_db"], "x")
    assert repr(backend) == f"MongoBackend('mongodb://{parts.hostname}:{parts.port}/other_db')"
    client.close()


def test_a_database_of_a_client_with_a_password_hides_it() -> None:
    client = pymongo.MongoClient(
        "mongodb://bob:p%40ss@127.0.0.1:1/?authSource=admin", connect=False
    )
    backend = open_backend(client["exp_db"], "x")
    assert repr(backend) == "MongoBackend('mongodb://bob:***@127.0.0.1:1/exp_db?authSource=admin')"
    assert (
        backend.reopen_arguments()[0] == "mongodb://bob:p%40ss@127.0.0.1:1/exp_db?authSource=admin"
    )
    client.close()


def test_a_value_too_large_for_a_document_writes_nothing(mongo_uri: str) -> None:
    backend = MongoBackend(mongo_uri, "large")
    big = PersistedValue(1, "prep", b"x" * (MAX_VALUE_BYTES + 1))
    with pytest.raises(BackendError, match="more than a MongoDB document can hold"):
        backend.write_batch(RecordBatch(trials=[trial(1)], persisted=[big]))
    assert backend.load_trials() == [] and backend.load_persisted("prep", 1) is None
    assert list(backend.spool.pending()) == []


def test_a_cache_payload_too_large_for_a_document_writes_nothing(mongo_uri: str) -> None:
    backend = MongoBackend(mongo_uri, "large")
    big = cache_entry("k", step="train", payload=b"x" * MAX_VALUE_BYTES)  # its metrics tip it over
    with pytest.raises(
        BackendError,
        match=r"the cached output of step 'train' with its metrics takes 15.9 MiB, more than a "
        r"MongoDB document can hold \(16 MiB\); nothing was written",
    ):
        backend.write_batch(
            RecordBatch(trials=[trial(1)], cache_entries=[big], artifacts=[artifact(1, "w", "")])
        )
    assert backend.load_trials() == [] and backend.cache_entries() == []
    assert backend.load_artifacts(1) == []
    assert list(backend.spool.pending()) == []


class CommandCounter(monitoring.CommandListener):
    """Counts the commands (one round trip each) a client sends."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.found: list[dict] = []  # documents the find commands returned

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name == "find":
            self.found.extend(event.reply["cursor"]["firstBatch"])

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.mark.parametrize("trials", [3, 300])
def test_reads_take_a_constant_number_of_round_trips(mongo_uri: str, trials: int) -> None:
    counter = CommandCounter()
    client = pymongo.MongoClient(mongo_uri, event_listeners=[counter])
    backend = MongoBackend.from_database(client.get_default_database(), "counted")
    backend.write_batch(
        RecordBatch(
            trials=[trial(t) for t in range(1, trials + 1)],
            metrics=[
                MetricPoint(t, "loss", e, 1.0) for t in range(1, trials + 1) for e in range(3)
            ],
        )
    )
    counter.commands.clear()
    assert len(backend.load_trials()) == trials
    assert len(backend.load_metrics("loss", range(1, trials + 1))) == 3 * trials
    assert counter.commands == ["find", "find"]
    counter.commands.clear()
    backend.write_metrics([MetricPoint(1, "acc", e, 0.5) for e in range(1000)])
    assert counter.commands == ["update"]
    client.close()


def test_a_database_of_a_client_given_keywords_keeps_them() -> None:
    client = pymongo.MongoClient(
        "127.0.0.1",
        1,
        username="bob",
        password="p@ss",
        authSource="admin",
        tls=False,
        connect=False,
    )
    backend = open_backend(client["exp_db"], "x")
    uri = "mongodb://bob:p%40ss@127.0.0.1:1/exp_db?authSource=admin&tls=false"
    assert backend.reopen_arguments()[0] == uri
    assert (
        repr(backend)
        == "MongoBackend('mongodb://bob:***@127.0.0.1:1/exp_db?authSource=admin&tls=false')"
    )
    client.close()


def test_a_trial_written_before_sweeps_reads_with_the_defaults(mongo_uri: str) -> None:
    client = pymongo.MongoClient(mongo_uri)
    client.get_default_database()["daskperiment_old"].insert_one(
        {"_id": "trial:1", "kind": "trial", **version_1_trial_document(1)}
    )
    client.close()
    check_a_version_1_trial_reads_with_the_defaults(MongoBackend(mongo_uri, "old"))


def test_cache_reads_and_writes_take_one_round_trip_without_payloads(mongo_uri: str) -> None:
    counter = CommandCounter()
    client = pymongo.MongoClient(mongo_uri, event_listeners=[counter])
    backend = MongoBackend.from_database(client.get_default_database(), "counted")
    entries = [cache_entry(f"key-{n:04d}", last_used=float(n)) for n in range(500)]
    keys = [entry.key for entry in entries]
    backend.write_batch(
        RecordBatch(cache_entries=entries, artifacts=[artifact(1, "w", str(n)) for n in range(200)])
    )
    calls = [
        (lambda: backend.load_cache_entries([*keys, "absent"]), "find"),
        (lambda: backend.touch_cache_entries(keys[:300], 1000.0), "update"),
        (backend.cache_entries, "find"),
        (lambda: backend.delete_cache_entries(keys[:100]), "delete"),
        (lambda: backend.load_artifacts(1), "find"),
    ]
    for call, command in calls:
        counter.commands.clear()
        call()
        assert counter.commands == [command]
    assert len(counter.found) == 500 + 500 + 200
    assert not any("payload" in document for document in counter.found)
    assert backend.load_cache_payload(keys[-1]) == b"payload " + keys[-1].encode()
    client.close()


class CommandLog(monitoring.CommandListener):
    """Every command a client sends: its name, collection and the filters of its statements."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str, list[dict]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command, name = event.command, event.command_name
        filters = {
            "findAndModify": lambda: [command["query"]],
            "find": lambda: [command["filter"]],
            "update": lambda: [u["q"] for u in command["updates"]],
            "delete": lambda: [d["q"] for d in command["deletes"]],
        }.get(name, lambda: [])()
        self.commands.append((name, command.get(name), filters))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_every_per_trial_operation_addresses_documents_by_id(mongo_uri: str) -> None:
    """Each command of a trial finds its documents by ``_id`` (an index on every server), none by
    searching the experiment's collection: the start (counter and start document), the step
    outputs of the purity check with the check of its blobs, the batch, the removal of the start."""
    log = CommandLog()
    client = pymongo.MongoClient(mongo_uri, event_listeners=[log])
    ex = Experiment("by_id", backend=client.get_default_database())
    a = ex.parameter("a")

    @ex
    def prepare(a):
        return a + 2

    @ex.result
    def score(s):
        for i in range(10):
            ex.save_metric(f"m{i}", epoch=0, value=float(s + i))
        return s * 0.5

    result = score(prepare(a))
    ex.run(result, a=0, scheduler="sync")  # the first trial also sends code and environment
    for n in range(1, 31):
        log.commands.clear()
        assert ex.run(result, a=n, scheduler="sync") == (n + 2) * 0.5
        # round trips of one trial: the start; one find of the step outputs and blobs the
        # batch replaces or needs; the batch; the removal of the start
        assert [name for name, _, _ in log.commands] == ["update", "find", "update", "delete"], log.commands
        assert {collection for _, collection, _ in log.commands} == {"daskperiment_by_id"}
        filters = [f for _, _, statement_filters in log.commands for f in statement_filters]
        assert filters and all("_id" in f for f in filters), filters
        assert all(isinstance(f["_id"], str) or set(f["_id"]) == {"$in"} for f in filters), filters
        assert any(f["_id"] == f"trial:{n + 1}" for f in filters)
    history = ex.get_history()
    assert history["Result"].tolist() == [(n + 2) * 0.5 for n in range(31)]
    for i in range(10):
        assert ex.load_metric(f"m{i}", list(range(1, 32))).loc[0].tolist() == [float(n + 2 + i) for n in range(31)]
    client.close()
