"""What only the Redis store does: URIs, connection pools, key layout, round trips."""

from __future__ import annotations

import logging
import pickle
from urllib.parse import urlsplit

import pytest
import redis

from conftest import free_port
from daskperiment import Experiment, serialization
from daskperiment.backend import experiment_ids, open_backend
from daskperiment.backend.redis import RedisBackend
from daskperiment.errors import BackendError, InvalidExperimentIDError
from daskperiment.records import ArtifactRecord, MetricPoint, RecordBatch
from test_store_contract import (
    cache_entry,
    check_a_version_1_trial_reads_with_the_defaults,
    trial,
    version_1_trial_document,
)


def test_repr_shows_the_uri_as_given() -> None:
    backend = open_backend("redis://localhost:6379/0", "x")  # connects only when used
    assert isinstance(backend, RedisBackend)
    assert repr(backend) == "RedisBackend('redis://localhost:6379/0')"


def test_rediss_selects_redis_with_tls() -> None:
    backend = open_backend("rediss://localhost:6380/1?ssl_cert_reqs=none", "x")
    assert isinstance(backend, RedisBackend)


def test_the_password_is_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="daskperiment")
    uri = f"redis://alice:s3cret@127.0.0.1:{free_port()}/0"
    backend = RedisBackend(uri, "x")
    assert repr(backend) == f"RedisBackend('redis://alice:***@127.0.0.1:{urlsplit(uri).port}/0')"
    with pytest.raises(BackendError) as raised:
        backend.last_trial_id()
    assert "s3cret" not in str(raised.value) and "alice:***@" in str(raised.value)
    assert backend.reopen_arguments()[0] == uri  # workers must be able to log in
    assert "s3cret" not in caplog.text


def test_unreachable_server_is_a_clear_error() -> None:
    port = free_port()
    with pytest.raises(
        BackendError, match=rf"cannot reach the Redis server redis://127.0.0.1:{port}/0"
    ):
        Experiment("unreachable", backend=f"redis://127.0.0.1:{port}/0")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("redis://127.0.0.1:notaport/0", "the port is not a number"),
        ("redis://127.0.0.1:6379/first", "the database must be a number"),
        ("redis:///0", "names no host"),
        ("redis://127.0.0.1:6379/0?socket_timeout=soon", "malformed URI"),
    ],
)
def test_malformed_uri_is_a_clear_error(uri: str, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        open_backend(uri, "x")


def test_wrong_scheme_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match="wrong scheme.*redis://"):
        RedisBackend("http://127.0.0.1:6379/0", "x")
    with pytest.raises(BackendError, match="unknown backend 'http://h:1/0'.*redis://"):
        open_backend("http://h:1/0", "x")
    with pytest.raises(BackendError, match="unknown backend 'ftp://u:\\*\\*\\*@h/0'"):
        open_backend("ftp://u:pw@h/0", "x")


@pytest.mark.parametrize("bad_id", ["a:b", "a b", "", "../x", "a*"])
def test_ids_that_would_break_key_names_are_refused(redis_uri: str, bad_id: str) -> None:
    with pytest.raises(InvalidExperimentIDError, match="invalid experiment id"):
        RedisBackend(redis_uri, bad_id)


def test_keys_are_under_the_experiment_prefix(redis_uri: str) -> None:
    backend = RedisBackend(redis_uri, "keys.demo-1")
    backend.allocate_trial_id()
    backend.write_batch(
        RecordBatch(
            trials=[trial(1)],
            metrics=[MetricPoint(1, "loss", 0, 1.0)],
            cache_entries=[cache_entry("k")],
            artifacts=[ArtifactRecord(1, "output", "", "d" * 64, 5)],
        )
    )
    client = redis.Redis.from_url(redis_uri)
    keys = {key.decode() for key in client.keys("*")}
    client.close()
    assert "daskperiment:keys.demo-1:cache_payload:k" in keys  # payloads apart from entries
    assert all(
        k.startswith("daskperiment:keys.demo-1:") for k in keys - {"daskperiment:experiments"}
    )
    backend.close()


def test_a_connection_pool_or_client_is_accepted(redis_uri: str) -> None:
    parts = urlsplit(redis_uri)
    pool = redis.ConnectionPool(host=parts.hostname, port=parts.port, db=0)
    ex = Experiment("pooled", backend=pool)
    assert repr(ex.backend) == f"RedisBackend('redis://{parts.hostname}:{parts.port}/0')"
    ex.backend.write_trial(trial(1))
    copy = pickle.loads(pickle.dumps(ex.backend))
    assert copy == ex.backend and copy.load_trials() == [trial(1)]
    assert open_backend(redis.Redis(connection_pool=pool), "pooled") == ex.backend
    pool.disconnect()


def test_a_pool_with_a_password_keeps_it_out_of_repr() -> None:
    pool = redis.ConnectionPool(host="127.0.0.1", port=6399, db=2, username="bob", password="p@ss")
    backend = open_backend(pool, "x")
    assert repr(backend) == "RedisBackend('redis://bob:***@127.0.0.1:6399/2')"
    assert backend.reopen_arguments()[0] == "redis://bob:p%40ss@127.0.0.1:6399/2"


def test_experiment_ids_of_a_server(redis_uri: str) -> None:
    for name in ("b", "a"):
        RedisBackend(redis_uri, name).allocate_trial_id()
    assert experiment_ids(redis_uri) == ["a", "b"]
    with pytest.raises(BackendError, match="cannot reach the Redis server"):
        experiment_ids(f"redis://127.0.0.1:{free_port()}/0")


class CountingConnection(redis.Connection):
    """A connection that counts the requests it sends (one per round trip)."""

    sent = 0

    def send_packed_command(self, command: object, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)


@pytest.mark.parametrize("trials", [3, 60])
def test_reads_take_a_constant_number_of_round_trips(redis_uri: str, trials: int) -> None:
    parts = urlsplit(redis_uri)
    pool = redis.ConnectionPool(
        connection_class=CountingConnection, host=parts.hostname, port=parts.port, db=0
    )
    backend = RedisBackend.from_pool(pool, "counted")
    backend.write_batch(
        RecordBatch(
            trials=[trial(t) for t in range(1, trials + 1)],
            metrics=[
                MetricPoint(t, "loss", e, 1.0) for t in range(1, trials + 1) for e in range(3)
            ],
        )
    )
    before = CountingConnection.sent
    assert len(backend.load_trials()) == trials
    assert len(backend.load_metrics("loss", range(1, trials + 1))) == 3 * trials
    assert CountingConnection.sent - before == 2
    before = CountingConnection.sent
    backend.write_metrics([MetricPoint(1, "acc", e, 0.5) for e in range(1000)])
    assert CountingConnection.sent - before == 1
    pool.disconnect()


def test_a_trial_takes_two_round_trips_its_start_and_its_record(redis_uri: str, caplog) -> None:
    """The start allocates the id; the record's script also returns the step outputs it
    replaces (purity) and which blobs the store holds: no read of their own."""
    parts = urlsplit(redis_uri)
    pool = redis.ConnectionPool(
        connection_class=CountingConnection, host=parts.hostname, port=parts.port, db=0
    )
    ex = Experiment("two_trips", backend=pool)
    a = ex.parameter("a")
    drift = {"on": False}

    @ex
    def prepare(a):
        return a + 2 + (0.5 if drift["on"] else 0)

    @ex.result
    def score(s):
        for i in range(10):
            ex.save_metric(f"m{i}", epoch=0, value=float(s + i))
        return s * 0.5

    result = score(prepare(a))
    ex.run(result, a=0, scheduler="sync")  # the first trial also sends code and environment
    for n in range(1, 41):
        before = CountingConnection.sent
        assert ex.run(result, a=n, scheduler="sync") == (n + 2) * 0.5
        assert CountingConnection.sent - before == 2, n
    drift["on"] = True  # same inputs, other outputs: the write's answer says so
    with caplog.at_level(logging.WARNING, logger="daskperiment"):
        for n in range(1, 6):
            before = CountingConnection.sent
            assert ex.run(result, a=n, scheduler="sync") == (n + 2.5) * 0.5
            assert CountingConnection.sent - before == 2, n
    impure = [r.getMessage() for r in caplog.records if "step result is changed" in r.getMessage()]
    assert len(impure) == 5 and all("step: prepare" in m for m in impure), impure
    for n, message in zip(range(1, 6), impure):
        assert f"args: ({n},)" in message, message
    history = ex.get_history()
    assert list(history.index) == list(range(1, 47))
    assert [history.loc[t, "Result"] for t in range(2, 42)] == [(n + 2) * 0.5 for n in range(1, 41)]
    pool.disconnect()


def test_a_server_refusing_the_connection_is_a_clear_error(redis_uri: str) -> None:
    parts = urlsplit(redis_uri)
    backend = RedisBackend(f"redis://:wrong@{parts.hostname}:{parts.port}/99", "x")  # no db 99
    with pytest.raises(BackendError, match=r"refused.*DB index.*Check the credentials") as raised:
        backend.last_trial_id()
    assert "wrong" not in str(raised.value)
    with pytest.raises(BackendError, match=r"refused the record of trial 1"):
        backend.write_trial(trial(1))
    assert backend.spool.pending() == []


def test_a_trial_written_before_sweeps_reads_with_the_defaults(redis_uri: str) -> None:
    client = redis.Redis.from_url(redis_uri)
    client.hset("daskperiment:old:trials", "1", pickle.dumps(version_1_trial_document(1), protocol=5))
    client.zadd("daskperiment:old:trial_ids", {"1": 1})
    client.close()
    check_a_version_1_trial_reads_with_the_defaults(RedisBackend(redis_uri, "old"))


def test_cache_reads_and_writes_take_one_round_trip(redis_uri: str) -> None:
    parts = urlsplit(redis_uri)
    pool = redis.ConnectionPool(
        connection_class=CountingConnection, host=parts.hostname, port=parts.port, db=0
    )
    backend = RedisBackend.from_pool(pool, "counted")
    entries = [cache_entry(f"key-{n:04d}", last_used=float(n)) for n in range(500)]
    keys = [entry.key for entry in entries]
    backend.write_batch(RecordBatch(cache_entries=entries))
    calls = [
        lambda: backend.load_cache_entries([*keys, "absent"]),
        lambda: backend.touch_cache_entries(keys[:300], 1000.0),
        backend.cache_entries,
        lambda: backend.load_cache_payload(keys[0]),
        lambda: backend.delete_cache_entries(keys[:100]),
        lambda: backend.load_artifacts(1),
    ]
    for call in calls:
        before = CountingConnection.sent
        call()
        assert CountingConnection.sent - before == 1
    assert len(backend.cache_entries()) == 400
    pool.disconnect()
