"""The store contract: every backend passes the same tests."""

from __future__ import annotations

import datetime
import math
import multiprocessing
import pickle
import random
import re
import threading
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import pytest

from conftest import free_port
from daskperiment import serialization
from daskperiment.backend import Backend, LocalBackend, experiment_ids, open_backend
from daskperiment.backend.mongo import MongoBackend
from daskperiment.backend.redis import RedisBackend
from daskperiment.errors import BackendError
from daskperiment.records import (
    ArtifactRecord,
    Blob,
    CacheEntry,
    MetricPoint,
    PersistedValue,
    RecordBatch,
    StepOutput,
    TrialRecord,
    TrialStart,
)

DEADLOCK_SECONDS = 120  # only to fail rather than hang if a process never gets there


@pytest.fixture(params=["local", "redis", "mongo"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A new, empty store of each kind."""
    if request.param == "local":
        backend: Backend = LocalBackend(tmp_path / "store", "contract")
    elif request.param == "redis":
        backend = RedisBackend(request.getfixturevalue("redis_uri"), "contract")
    else:
        backend = MongoBackend(request.getfixturevalue("mongo_uri"), "contract")
    yield backend
    backend.close()


def run_in_processes(
    target: Callable[..., object],
    calls: Sequence[tuple],
    alongside: Callable[[], None] = lambda: None,
) -> list[Any]:
    """Results of ``target(*call)`` for each call, each run in a new (spawned) process.

    The processes start, wait until all of them are ready, then run at once,
    while this process runs ``alongside()``. Results come in the order the
    calls finish; a call that raised fails the test with its traceback.
    """
    context = multiprocessing.get_context("spawn")
    barrier, outcomes = context.Barrier(len(calls) + 1), context.Queue()
    processes = [
        context.Process(target=_run_at_barrier, args=(barrier, outcomes, target, call))
        for call in calls
    ]
    for process in processes:
        process.start()
    try:
        barrier.wait(timeout=DEADLOCK_SECONDS)
        alongside()
        results = [outcomes.get(timeout=DEADLOCK_SECONDS) for _ in calls]
    finally:
        for process in processes:
            process.join(timeout=DEADLOCK_SECONDS)
            if process.is_alive():
                process.kill()
    failures = [detail for failed, detail in results if failed]
    assert not failures, "\n".join(failures)
    return [value for _, value in results]


def _run_at_barrier(
    barrier: Any, outcomes: Any, target: Callable[..., object], call: tuple
) -> None:
    barrier.wait(timeout=DEADLOCK_SECONDS)
    try:
        outcomes.put((False, target(*call)))
    except BaseException:
        outcomes.put((True, traceback.format_exc()))


def trial(trial_id: int, **changes: Any) -> TrialRecord:
    fields: dict[str, Any] = dict(
        trial_id=trial_id,
        parameters={"a": trial_id, "b": [1, 2]},
        result=trial_id * 1.5,
        result_type="float",
        success=True,
        finished=1_700_000_000.0 + trial_id,
        process_time=0.25,
        description=None,
        seed=trial_id,
        code_digest="c" * 64,
        environment_digest="e" * 64,
    )
    return TrialRecord(**{**fields, **changes})


def test_trial_ids_are_allocated_in_order(store: Backend) -> None:
    assert [store.allocate_trial_id() for _ in range(3)] == [1, 2, 3]
    assert store.last_trial_id() == 0  # allocated is not recorded


def test_trial_ids_are_unique_across_threads(store: Backend) -> None:
    ids: list[int] = []
    lock = threading.Lock()

    def allocate() -> None:
        for _ in range(25):
            value = store.allocate_trial_id()
            with lock:
                ids.append(value)

    threads = [threading.Thread(target=allocate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(ids) == list(range(1, 101))


def version_1_trial_document(trial_id: int) -> dict[str, object]:
    """A trial document as the server stores wrote it before sweeps and worker environments."""
    return {
        "format": 1,
        "trial_id": trial_id,
        "parameters": pickle.dumps({"a": trial_id, "b": [1, 2]}, protocol=5),  # as format 1 stored them
        "result": pickle.dumps(trial_id * 1.5, protocol=5),
        "result_type": "float",
        "success": True,
        "finished": 1_700_000_000.0 + trial_id,
        "process_time": 0.25,
        "description": None,
        "seed": trial_id,
        "code_digest": "c" * 64,
        "environment_digest": "e" * 64,
    }


def check_a_version_1_trial_reads_with_the_defaults(store: Backend) -> None:
    """``store`` holds trial 1 as written before sweeps: it reads back, new trials go beside it."""
    assert store.load_trials() == [trial(1)]  # no sweep, no worker environments
    swept = trial(2, sweep_id="sweep-1", worker_environment_digests=("a" * 64, "b" * 64))
    store.write_trial(swept)
    assert store.load_trials() == [trial(1), swept]
    store.close()


def test_blocks_of_trial_ids_follow_each_other(store: Backend) -> None:
    assert store.allocate_trial_ids(3) == range(1, 4)
    assert store.allocate_trial_id() == 4
    assert store.allocate_trial_ids(1) == range(5, 6)
    assert store.allocate_trial_ids(np.int64(10)) == range(6, 16)
    assert store.last_trial_id() == 0  # allocated is not recorded


def location_of(store: Backend) -> str:
    """Where the experiments of ``store``'s kind are listed (see ``experiment_ids``)."""
    return store.reopen_arguments()[0]


@pytest.mark.parametrize("count", [0, -2, True, 2.5, "3", None])
def test_a_bad_count_is_refused_before_the_store_is_used(store: Backend, count: object) -> None:
    message = rf"count must be a positive int.* got {re.escape(repr(count))}\. Pass an int"
    with pytest.raises(ValueError, match=message):
        store.allocate_trial_ids(count)  # type: ignore[arg-type]
    assert experiment_ids(location_of(store)) == []  # not even opened
    assert store.allocate_trial_ids(2) == range(1, 3)


BLOCKS_PER_WORKER = 40


def _allocate_blocks(store: Backend, seed: int) -> list[tuple[int, range]]:
    sizes = random.Random(seed).choices(range(1, 10), k=BLOCKS_PER_WORKER)
    return [(size, store.allocate_trial_ids(size)) for size in sizes]


def test_blocks_of_trial_ids_are_disjoint_across_threads_and_processes(store: Backend) -> None:
    in_threads: list[tuple[int, range]] = []

    def allocate_in_threads() -> None:
        threads = [
            threading.Thread(target=lambda s=seed: in_threads.extend(_allocate_blocks(store, s)))
            for seed in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    in_processes = run_in_processes(
        _allocate_blocks, [(store, seed) for seed in range(8, 12)], alongside=allocate_in_threads
    )
    blocks = in_threads + [block for blocks in in_processes for block in blocks]
    assert len(blocks) == 12 * BLOCKS_PER_WORKER
    assert all(len(ids) == size for size, ids in blocks)
    total = sum(size for size, _ in blocks)
    assert sorted(i for _, ids in blocks for i in ids) == list(range(1, total + 1))


def start(number: int, **changes: object) -> TrialStart:
    record = TrialStart(
        parameters={"a": number, "b": [1, (2, "x")], "c": float("nan") if number % 2 else -0.0},
        seed=number * 7,
        started=1_700_000_000.0 + number,
        heartbeat=1_700_000_000.5 + number,
        interval=10.0,
        process=f"host:{1000 + number}",
        sweep_id=None if number % 3 else f"sweep-{number}",
    )
    return replace(record, **changes)


def same_start(expected: TrialStart, actual: TrialStart) -> bool:
    return same_value(dict(expected.parameters), dict(actual.parameters)) and replace(
        expected, parameters={}
    ) == replace(actual, parameters={})


def test_started_trials_are_stored_under_the_ids_they_get(store: Backend) -> None:
    starts = [start(n) for n in range(1, 6)]
    assert store.start_trials(starts[:1]) == range(1, 2)
    assert store.start_trials(starts[1:]) == range(2, 6)
    assert store.allocate_trial_ids(2) == range(6, 8)  # one counter for both
    assert store.start_trials([start(8)]) == range(8, 9)
    loaded = store.load_starts()
    assert list(loaded) == [1, 2, 3, 4, 5, 8]
    for number, expected in zip([1, 2, 3, 4, 5], starts):
        assert same_start(expected, loaded[number]), (expected, loaded[number])
    assert same_start(start(8), loaded[8])
    assert list(store.load_starts([8, 2, 99])) == [2, 8]
    assert store.load_starts([]) == {}
    assert store.last_trial_id() == 0 and store.load_trials() == []  # started is not recorded


def test_recording_a_trial_removes_its_start(store: Backend) -> None:
    store.start_trials([start(n) for n in range(1, 5)])
    store.write_batch(RecordBatch(trials=[trial(1), trial(3, status="interrupted", success=False)]))
    store.write_trial(trial(4, success=False, result=None, result_type="", description="E(x)"))
    assert list(store.load_starts()) == [2]
    assert [(t.trial_id, t.status) for t in store.load_trials()] == [
        (1, "finished"), (3, "interrupted"), (4, "failed")
    ]


def test_heartbeats_update_started_trials_only(store: Backend) -> None:
    store.start_trials([start(1), start(2), start(3)])
    store.write_trial(trial(2))
    store.beat_trials([1, 2, 3, 99], 1_800_000_000.25)
    store.beat_trials([], 1_900_000_000.0)
    loaded = store.load_starts()
    assert list(loaded) == [1, 3]  # the recorded trial and an unknown id get no start back
    assert [s.heartbeat for s in loaded.values()] == [1_800_000_000.25] * 2
    assert loaded[1].started == start(1).started
    store.beat_trials([3], 1_800_000_010.5)
    assert [s.heartbeat for s in store.load_starts().values()] == [1_800_000_000.25, 1_800_000_010.5]


def test_a_start_that_cannot_be_serialized_reserves_nothing(store: Backend) -> None:
    with pytest.raises(TypeError):
        store.start_trials([start(1), start(2, parameters={"a": threading.Lock()})])
    with pytest.raises(ValueError, match="non-empty sequence of TrialStart"):
        store.start_trials([])
    with pytest.raises(ValueError, match="non-empty sequence of TrialStart"):
        store.start_trials([trial(1)])  # type: ignore[list-item]
    assert store.load_starts() == {}
    assert store.start_trials([start(1)]) == range(1, 2)


def test_a_trial_status_round_trips_and_older_records_follow_success(store: Backend) -> None:
    records = [
        trial(1),
        trial(2, success=False, result=None, result_type="", description="E(x)"),
        trial(3, success=False, result=None, result_type="", description="KeyboardInterrupt()", status="interrupted"),
    ]
    store.write_batch(RecordBatch(trials=records))
    assert [t.status for t in store.load_trials()] == ["finished", "failed", "interrupted"]
    assert store.load_trials() == records


def _start_blocks(store: Backend, seed: int) -> list[tuple[int, range]]:
    sizes = random.Random(seed).choices(range(1, 6), k=STARTS_PER_WORKER)
    blocks = []
    for number, size in enumerate(sizes):
        if number % 4 == 3:  # allocations without start share the counter
            blocks.append((-size, store.allocate_trial_ids(size)))
        else:
            blocks.append((size, store.start_trials([start(seed * 1000 + number)] * size)))
    return blocks


STARTS_PER_WORKER = 24


def test_trials_started_at_once_by_threads_and_processes_get_every_id_once(store: Backend) -> None:
    in_threads: list[tuple[int, range]] = []

    def start_in_threads() -> None:
        threads = [
            threading.Thread(target=lambda s=seed: in_threads.extend(_start_blocks(store, s)))
            for seed in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    in_processes = run_in_processes(
        _start_blocks, [(store, seed) for seed in range(4, 8)], alongside=start_in_threads
    )
    blocks = in_threads + [block for blocks in in_processes for block in blocks]
    assert len(blocks) == 8 * STARTS_PER_WORKER
    assert all(len(ids) == abs(size) for size, ids in blocks)
    total = sum(abs(size) for size, _ in blocks)
    assert sorted(i for _, ids in blocks for i in ids) == list(range(1, total + 1))
    started = sorted(i for size, ids in blocks if size > 0 for i in ids)
    assert list(store.load_starts()) == started


def test_trials_round_trip(store: Backend) -> None:
    records = [trial(1), trial(2, success=False, result=None, result_type="", description="E(x)")]
    store.write_batch(RecordBatch(trials=records))
    assert store.load_trials() == records
    assert store.load_trials([2, 7]) == [records[1]]
    assert store.last_trial_id() == 2


def test_sweep_and_worker_environments_round_trip(store: Backend) -> None:
    workers = ("a" * 64, "b" * 64)
    records = [trial(1), trial(2, sweep_id="sweep-7", worker_environment_digests=workers)]
    store.write_batch(RecordBatch(trials=records))
    loaded = store.load_trials()
    assert loaded == records
    assert loaded[0].sweep_id is None and loaded[0].worker_environment_digests == ()
    assert loaded[1].sweep_id == "sweep-7" and loaded[1].worker_environment_digests == workers
    assert all(type(t.worker_environment_digests) is tuple for t in loaded)


def test_a_trial_written_again_is_replaced_locally_and_kept_on_servers(store: Backend) -> None:
    store.write_trial(trial(1))
    store.write_trial(trial(1, result=99))
    if store.is_local:
        assert [t.result for t in store.load_trials()] == [99]
    else:  # a server keeps the first trial: the second (maybe spooled before a loss) gets a new id
        assert [(t.trial_id, t.result) for t in store.load_trials()] == [(1, trial(1).result), (2, 99)]


def test_metrics_are_ordered_by_trial_then_epoch(store: Backend) -> None:
    store.write_metrics([MetricPoint(2, "loss", 1, 0.5), MetricPoint(2, "loss", 0, 1.0)])
    store.write_batch(
        RecordBatch(metrics=[MetricPoint(1, "loss", 0, 2.0), MetricPoint(1, "acc", 0, 0.1)])
    )
    assert store.load_metrics("loss", [2, 1]) == [
        MetricPoint(1, "loss", 0, 2.0),
        MetricPoint(2, "loss", 0, 1.0),
        MetricPoint(2, "loss", 1, 0.5),
    ]
    assert store.load_metrics("loss", [3]) == []
    assert store.metric_keys() == ["acc", "loss"]


def test_persisted_values(store: Backend) -> None:
    store.write_batch(RecordBatch(persisted=[PersistedValue(1, "prep", b"one")]))
    store.write_batch(RecordBatch(persisted=[PersistedValue(1, "prep", b"two")]))
    assert store.load_persisted("prep", 1) == PersistedValue(1, "prep", b"two")
    assert store.load_persisted("prep", 2) is None
    assert store.load_persisted("other", 1) is None


def test_blobs_are_stored_once(store: Backend) -> None:
    blob = Blob.of(b"def f(): pass\n")
    store.write_batch(RecordBatch(blobs=[blob]))
    store.write_batch(RecordBatch(blobs=[blob]))
    assert store.load_blob(blob.digest) == blob
    assert store.load_blob("0" * 64) is None


def test_step_outputs_keep_the_latest(store: Backend) -> None:
    assert store.write_batch(RecordBatch(step_outputs=[StepOutput("k1", "h1")])) == {}
    # the write returns what the store held for the batch's input keys before it
    assert store.write_batch(
        RecordBatch(step_outputs=[StepOutput("k1", "h2"), StepOutput("k2", "h3")])
    ) == {"k1": "h1"}
    assert store.load_step_outputs(["k1", "k2", "k3"]) == {"k1": "h2", "k2": "h3"}
    assert store.write_batch(
        RecordBatch(step_outputs=[StepOutput("k2", "h4"), StepOutput("k2", "h5")])
    ) == {"k2": "h3"}
    assert store.load_step_outputs(["k1", "k2"]) == {"k1": "h2", "k2": "h5"}
    assert store.load_step_outputs([]) == {}
    assert store.write_batch(RecordBatch(trials=[trial(1)], blobs=[Blob.of(b"x")])) == {}


def test_a_write_returns_the_outputs_it_replaced_row_by_row(store: Backend) -> None:
    """Many keys, some held before with the same hash, some with another, some new."""
    store.write_batch(RecordBatch(step_outputs=[StepOutput(f"in{i}", f"out{i}") for i in range(0, 60, 2)]))
    batch = [StepOutput(f"in{i}", f"out{i}" if i % 4 == 0 else f"new{i}") for i in range(60)]
    previous = store.write_batch(RecordBatch(step_outputs=batch, trials=[trial(i) for i in range(1, 31)]))
    assert previous == {f"in{i}": f"out{i}" for i in range(0, 60, 2)}
    stored = store.load_step_outputs([f"in{i}" for i in range(60)])
    for i in range(60):
        assert stored[f"in{i}"] == (f"out{i}" if i % 4 == 0 else f"new{i}"), i


def test_a_batch_that_cannot_be_serialized_writes_nothing(store: Backend) -> None:
    store.write_trial(trial(1))
    bad = RecordBatch(
        trials=[trial(2, result=threading.Lock())],
        metrics=[MetricPoint(2, "loss", 0, 1.0)],
        blobs=[Blob.of(b"x")],
    )
    with pytest.raises(TypeError, match="cannot serialize"):
        store.write_batch(bad)
    assert [t.trial_id for t in store.load_trials()] == [1]
    assert store.load_metrics("loss", [2]) == []
    assert store.load_blob(Blob.of(b"x").digest) is None


def test_a_store_pickles_as_the_same_store(store: Backend) -> None:
    store.write_trial(trial(1))
    copy = pickle.loads(pickle.dumps(store))
    assert copy == store
    assert copy.load_trials() == store.load_trials()


def test_empty_store(store: Backend) -> None:
    assert store.load_trials() == []
    assert store.last_trial_id() == 0
    assert store.metric_keys() == []


def test_metric_values_saved_again_come_after_earlier_ones(store: Backend) -> None:
    store.write_metrics([MetricPoint(1, "loss", 0, 3.0), MetricPoint(1, "loss", 1, 2.0)])
    store.write_metrics([MetricPoint(1, "loss", 0, 1.0)])
    store.write_metrics([MetricPoint(1, "loss", 0, 0.5), MetricPoint(1, "loss", 0, 0.25)])
    assert [p.value for p in store.load_metrics("loss", [1])] == [3.0, 1.0, 0.5, 0.25, 2.0]


def test_stores_remember_which_metrics_got_only_ints(store: Backend) -> None:
    store.write_metrics([MetricPoint(1, "steps", 0, 3), MetricPoint(1, "loss", 0, 2)])
    store.write_metrics([MetricPoint(2, "steps", 0, 4), MetricPoint(2, "loss", 0, 0.5)])
    store.write_metrics([MetricPoint(3, "loss", 0, 1)])  # an int after a float: not all ints
    assert store.load_metrics("steps", [1, 2]).integer is True
    assert store.load_metrics("steps", [2]).integer is True
    assert store.load_metrics("loss", [1]).integer is False  # trial 2 saved a float under the key
    assert [p.value for p in store.load_metrics("steps", [1, 2])] == [3, 4]


def test_metric_special_values_round_trip(store: Backend) -> None:
    points = [
        MetricPoint(1, "odd key: with/characters", -5, float("inf")),
        MetricPoint(1, "odd key: with/characters", 2**40, -0.0),
        MetricPoint(1, "odd key: with/characters", 2**40 + 1, float("nan")),
    ]
    store.write_metrics(points)
    loaded = store.load_metrics("odd key: with/characters", [1])
    assert [(p.epoch, p.value) for p in loaded[:2]] == [(-5, float("inf")), (2**40, -0.0)]
    assert loaded[2].epoch == 2**40 + 1 and loaded[2].value != loaded[2].value  # NaN
    assert store.load_metrics("odd key: with/characters", []) == []
    assert store.metric_keys() == ["odd key: with/characters"]


def test_many_metric_points_in_one_batch(store: Backend) -> None:
    points = [MetricPoint(t, "loss", e, e / 7) for t in (1, 2) for e in range(20_000)]
    store.write_metrics(points)
    assert store.load_metrics("loss", [1, 2]) == points


def test_points_of_one_epoch_in_a_large_batch_keep_their_write_order(store: Backend) -> None:
    points = [MetricPoint(1, "loss", e % 3, float(e)) for e in range(20_000)]
    store.write_metrics(points)
    expected = sorted(points, key=lambda p: p.epoch)  # a stable sort: write order within an epoch
    assert list(store.load_metrics("loss", [1])) == expected


def test_a_full_batch_round_trips(store: Backend) -> None:
    blob = Blob.of(bytes(range(256)) * 10)
    batch = RecordBatch(
        trials=[trial(1, parameters={"x": None, "y": {"nested": (1, 2.5)}}, seed=None,
                      environment_digest=None)],
        metrics=[MetricPoint(1, "acc", 0, 0.5)],
        persisted=[PersistedValue(1, "prep", b"\x00payload\xff")],
        step_outputs=[StepOutput("in", "out")],
        blobs=[blob],
    )
    store.write_batch(batch)
    assert store.load_trials([1]) == batch.trials
    assert store.load_metrics("acc", [1]) == batch.metrics
    assert store.load_persisted("prep", 1) == batch.persisted[0]
    assert store.load_step_outputs(["in"]) == {"in": "out"}
    assert store.load_blob(blob.digest) == blob
    assert store.load_trials([]) == []


def test_last_trial_id_is_the_largest_recorded(store: Backend) -> None:
    store.write_batch(RecordBatch(trials=[trial(3), trial(11), trial(2)]))
    assert store.last_trial_id() == 11
    assert [t.trial_id for t in store.load_trials()] == [2, 3, 11]


def test_stores_of_two_experiments_are_separate(store: Backend) -> None:
    other = type(store)(*store.reopen_arguments()[:-1], "contract-other")
    try:
        store.write_batch(RecordBatch(trials=[trial(1)], metrics=[MetricPoint(1, "loss", 0, 1.0)]))
        store.save_setting("objective", '"minimize"')
        assert other.load_trials() == [] and other.metric_keys() == []
        assert other.load_setting("objective") is None
        assert other.allocate_trial_id() == 1
        other.save_setting("objective", '"maximize"')
        assert store.load_setting("objective") == '"minimize"'
        assert other.load_setting("objective") == '"maximize"'
    finally:
        other.close()


def test_settings_round_trip_and_the_last_write_wins(store: Backend) -> None:
    odd = "odd name: with/slash.dot$dollar é"
    assert store.load_setting("objective") is None
    store.save_setting("objective", '"minimize"')
    store.save_setting(odd, '{"a": [1, 2.5]}')
    store.save_setting("empty", "")
    store.save_setting("objective", '"maximize"')
    assert store.load_setting("objective") == '"maximize"'
    assert store.load_setting(odd) == '{"a": [1, 2.5]}'
    assert store.load_setting("empty") == ""
    assert store.load_setting("other") is None
    reopened = type(store)(*store.reopen_arguments())  # another connection sees them
    try:
        assert reopened.load_setting("objective") == '"maximize"'
    finally:
        reopened.close()


def test_settings_are_no_records_and_list_no_experiment(store: Backend) -> None:
    store.save_setting("objective", '"minimize"')
    store.save_setting("experiments", "[]")
    assert store.load_trials() == [] and store.last_trial_id() == 0
    assert store.metric_keys() == []
    assert store.allocate_trial_id() == 1
    assert experiment_ids(location_of(store)) == ["contract"]


@pytest.mark.parametrize(
    ("name", "value", "error", "message"),
    [
        ("", '"x"', ValueError, r"a setting name must not be empty; give it a name"),
        (None, '"x"', TypeError, r"a setting name must be a str, got NoneType None; name it"),
        (3, '"x"', TypeError, r"a setting name must be a str, got int 3"),
        ("objective", 5, TypeError, r"value of setting 'objective' must be a str, got int; .*json"),
        ("objective", b'"x"', TypeError, r"value of setting 'objective' must be a str, got bytes"),
        ("objective", None, TypeError, r"must be a str, got NoneType; save a text"),
    ],
)
def test_a_bad_setting_is_refused_before_the_store_is_used(
    store: Backend, name: object, value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        store.save_setting(name, value)  # type: ignore[arg-type]
    if not isinstance(name, str) or not name:
        with pytest.raises(error, match=message):
            store.load_setting(name)  # type: ignore[arg-type]
    assert experiment_ids(location_of(store)) == []  # not even opened
    assert store.load_setting("objective") is None


@pytest.mark.parametrize("scheme", ["redis", "mongodb"])
def test_a_setting_is_not_spooled_when_the_server_is_unreachable(scheme: str) -> None:
    port = free_port()
    uri = f"redis://127.0.0.1:{port}/0"
    if scheme == "mongodb":
        uri = f"mongodb://127.0.0.1:{port}/db?serverSelectionTimeoutMS=300"
    backend = open_backend(uri, "contract")
    with pytest.raises(
        BackendError,
        match=rf"cannot reach the \w+ server {scheme}://127.0.0.1:{port}/\S* to save the setting "
        r"'objective' of experiment 'contract' \(settings are not spooled: save it again once "
        r"the server is reachable\)",
    ):
        backend.save_setting("objective", '"minimize"')
    assert backend.spool.pending() == [] and not backend.spool.directory.exists()
    with pytest.raises(BackendError, match=r"cannot reach .* to read the setting 'objective'"):
        backend.load_setting("objective")


def test_metrics_read_back_as_columns(store: Backend) -> None:
    store.write_metrics([MetricPoint(2, "m", 1, 0.5), MetricPoint(1, "m", 7, 1.5), MetricPoint(2, "m", 0, 2.5)])
    series = store.load_metrics("m", [1, 2])
    assert series.key == "m" and len(series) == 3
    assert series.trial_ids.tolist() == [1, 2, 2]
    assert series.epochs.tolist() == [7, 0, 1]
    assert series.values.tolist() == [1.5, 2.5, 0.5]
    assert str(series.values.dtype) == "float64" and str(series.epochs.dtype) == "int64"
    assert series[1] == MetricPoint(2, "m", 0, 2.5) and series[-1] == MetricPoint(2, "m", 1, 0.5)


# -- step cache ---------------------------------------------------------------------------
def cache_entry(key: str, **changes: object) -> CacheEntry:
    """An entry held in the store, last used at 100.0 unless ``changes`` say otherwise."""
    entry = CacheEntry(
        key=key,
        step="prepare",
        trial_id=1,
        size=12,
        payload=b"payload " + key.encode(),
        location=None,
        metrics=(("loss", 0, 0.5), ("loss", 1, 0.25)),
        created=100.0,
        last_used=100.0,
    )
    return replace(entry, **changes)


def listed(entry: CacheEntry) -> CacheEntry:
    """``entry`` as the store lists it: without payload."""
    return replace(entry, payload=None)


def test_cache_entries_are_read_without_their_payload(store: Backend) -> None:
    held = cache_entry("k1", payload=b"\x00payload\xff")
    elsewhere = cache_entry(
        "k2", step="train", trial_id=2, size=5 * 2**20, payload=None, location="d" * 64,
        metrics=(), created=200.5, last_used=201.25,
    )
    store.write_batch(RecordBatch(cache_entries=[held, elsewhere]))
    assert store.load_cache_entries(["k2", "k1", "absent"]) == {
        "k1": listed(held),
        "k2": elsewhere,
    }
    assert store.load_cache_entries(["absent"]) == {} and store.load_cache_entries([]) == {}
    assert store.load_cache_payload("k1") == b"\x00payload\xff"
    assert store.load_cache_payload("k2") is None  # kept in the artifact store
    assert store.load_cache_payload("absent") is None
    assert store.cache_entries() == [listed(held), elsewhere]
    assert all(type(e.metrics) is tuple for e in store.cache_entries())


def test_a_cache_entry_written_again_is_replaced(store: Backend) -> None:
    store.write_batch(RecordBatch(cache_entries=[cache_entry("k"), cache_entry("other")]))
    again = cache_entry("k", trial_id=5, payload=b"new", size=3, created=300.0, last_used=300.0)
    store.write_batch(RecordBatch(cache_entries=[again]))
    assert store.load_cache_entries(["k"]) == {"k": listed(again)}
    assert store.load_cache_payload("k") == b"new"
    moved = cache_entry("k", payload=None, location="f" * 64, created=400.0, last_used=400.0)
    store.write_batch(RecordBatch(cache_entries=[moved]))
    assert store.load_cache_entries(["k"]) == {"k": moved}
    assert store.load_cache_payload("k") is None  # the earlier payload is gone
    assert [e.key for e in store.cache_entries()] == ["other", "k"]


def test_touched_entries_are_the_most_recently_used(store: Backend) -> None:
    entries = [cache_entry(key, last_used=used) for key, used in (("a", 1.0), ("b", 2.0), ("c", 3.0))]
    store.write_batch(RecordBatch(cache_entries=entries))
    assert [e.key for e in store.cache_entries()] == ["a", "b", "c"]
    store.touch_cache_entries(["a", "absent"], 10.5)
    store.touch_cache_entries([], 20.0)
    assert [(e.key, e.last_used) for e in store.cache_entries()] == [
        ("b", 2.0), ("c", 3.0), ("a", 10.5)
    ]
    assert store.load_cache_entries(["a"]) == {"a": listed(replace(entries[0], last_used=10.5))}
    assert store.load_cache_payload("a") == b"payload a"  # touching keeps the payload
    store.touch_cache_entries(["c", "b"], 11.0)
    assert [e.key for e in store.cache_entries()][0] == "a"
    assert store.load_cache_entries(["absent"]) == {}  # touching adds nothing


def test_deleted_entries_are_gone_with_their_payload(store: Backend) -> None:
    entries = [cache_entry("a", last_used=1.0), cache_entry("b", last_used=2.0),
               cache_entry("c", payload=None, location="d" * 64, last_used=3.0)]
    store.write_batch(RecordBatch(cache_entries=entries))
    store.delete_cache_entries(["a", "c", "absent"])
    store.delete_cache_entries([])
    assert store.load_cache_entries(["a", "b", "c"]) == {"b": listed(entries[1])}
    assert store.cache_entries() == [listed(entries[1])]
    assert store.load_cache_payload("a") is None
    assert store.load_cache_payload("b") == b"payload b"
    store.write_batch(RecordBatch(cache_entries=[entries[0]]))  # written again after deletion
    assert store.load_cache_payload("a") == b"payload a"


def test_many_cache_entries_are_read_in_one_call(store: Backend) -> None:
    entries = [cache_entry(f"key-{n:04d}", trial_id=n, last_used=float(n)) for n in range(500)]
    store.write_batch(RecordBatch(cache_entries=entries))
    keys = [e.key for e in entries] + [f"absent-{n}" for n in range(100)]
    assert store.load_cache_entries(keys) == {e.key: listed(e) for e in entries}
    assert store.cache_entries() == [listed(e) for e in entries]
    store.touch_cache_entries(keys[:250], 1000.0)
    assert [e.key for e in store.cache_entries()][:250] == keys[250:500]
    store.delete_cache_entries(keys[:400])
    assert store.cache_entries() == [listed(e) for e in entries[400:]]


def test_cache_entry_metrics_keep_special_values(store: Backend) -> None:
    metrics = (
        ("loss", 0, float("nan")),
        ("loss", 1, float("inf")),
        ("odd key: with/characters é", -3, float("-inf")),
        ("acc", 2**40, -0.0),
        ("acc", 2**40, 1e-300),
    )
    store.write_batch(RecordBatch(cache_entries=[cache_entry("k", metrics=metrics)]))
    for loaded in (store.load_cache_entries(["k"])["k"], store.cache_entries()[0]):
        assert len(loaded.metrics) == len(metrics)
        assert loaded.metrics[0][:2] == ("loss", 0) and math.isnan(loaded.metrics[0][2])
        assert loaded.metrics[1:] == metrics[1:]
        assert math.copysign(1.0, loaded.metrics[3][2]) == -1.0  # -0.0 stays negative
        assert all(type(m) is tuple and type(m[1]) is int and type(m[2]) is float
                   for m in loaded.metrics)


def test_cache_entry_metrics_keep_ints(store: Backend) -> None:
    metrics = (("steps", 0, 3), ("steps", 1, 2**53 + 1), ("loss", 0, 3.0))
    store.write_batch(RecordBatch(cache_entries=[cache_entry("k", metrics=metrics)]))
    loaded = store.load_cache_entries(["k"])["k"].metrics
    assert loaded == metrics and [type(value) for _, _, value in loaded] == [int, int, float]


# -- artifacts ----------------------------------------------------------------------------------
def artifact(trial_id: int, name: str, path: str, **changes: object) -> ArtifactRecord:
    record = ArtifactRecord(trial_id, name, path, digest="a" * 64, size=10, step="train")
    return replace(record, **changes)


def test_artifact_records_are_read_by_name_then_path(store: Backend) -> None:
    records = [
        artifact(1, "weights", "layer/b.bin"),
        artifact(1, "output", "", step="", size=0),
        artifact(1, "weights", "a.bin", digest="b" * 64),
        artifact(2, "weights", "a.bin"),
        artifact(1, "Weights", "é.txt", size=2**40),
    ]
    store.write_batch(RecordBatch(artifacts=records[:3]))
    store.write_batch(RecordBatch(artifacts=records[3:]))
    assert store.load_artifacts(1) == [records[4], records[1], records[2], records[0]]
    assert store.load_artifacts(2) == [records[3]]
    assert store.load_artifacts(3) == []


def test_an_artifact_record_written_again_is_replaced(store: Backend) -> None:
    store.write_batch(RecordBatch(artifacts=[artifact(1, "weights", "a.bin"),
                                             artifact(1, "weights", "b.bin")]))
    again = artifact(1, "weights", "a.bin", digest="c" * 64, size=99, step="retrain")
    store.write_batch(RecordBatch(artifacts=[again]))
    assert store.load_artifacts(1) == [again, artifact(1, "weights", "b.bin")]


def test_the_artifact_root_is_next_to_a_local_store_only(store: Backend, tmp_path: Path) -> None:
    expected = str(tmp_path / "store" / "artifacts") if isinstance(store, LocalBackend) else None
    assert store.artifact_root() == expected


def test_cached_steps_round_trip(store: Backend) -> None:
    records = [trial(1), trial(3, cached_steps=(("prepare", 1), ("train", 2), ("é step", 1)))]
    store.write_batch(RecordBatch(trials=records))
    loaded = store.load_trials()
    assert loaded == records
    assert loaded[0].cached_steps == ()
    assert all(type(t.cached_steps) is tuple for t in loaded)
    assert all(type(pair) is tuple for pair in loaded[1].cached_steps)


def test_a_batch_that_cannot_be_serialized_writes_no_cache_entry_or_artifact(
    store: Backend,
) -> None:
    bad = RecordBatch(
        trials=[trial(2, result=threading.Lock(), cached_steps=(("prepare", 1),))],
        cache_entries=[cache_entry("k")],
        artifacts=[artifact(2, "weights", "a.bin")],
    )
    with pytest.raises(TypeError, match="cannot serialize"):
        store.write_batch(bad)
    assert store.load_trials() == []
    assert store.load_cache_entries(["k"]) == {} and store.cache_entries() == []
    assert store.load_cache_payload("k") is None
    assert store.load_artifacts(2) == []


def test_a_full_batch_with_cache_entries_and_artifacts_round_trips(store: Backend) -> None:
    batch = RecordBatch(
        trials=[trial(1, cached_steps=(("prepare", 1),))],
        metrics=[MetricPoint(1, "acc", 0, 0.5)],
        cache_entries=[cache_entry("k")],
        artifacts=[artifact(1, "output", "", step="")],
    )
    store.write_batch(batch)
    assert store.load_trials() == batch.trials
    assert store.load_cache_entries(["k"]) == {"k": listed(batch.cache_entries[0])}
    assert store.load_artifacts(1) == batch.artifacts


def test_cache_entries_and_artifacts_of_two_experiments_are_separate(store: Backend) -> None:
    other = type(store)(*store.reopen_arguments()[:-1], "contract-other")
    try:
        store.write_batch(RecordBatch(cache_entries=[cache_entry("k")],
                                      artifacts=[artifact(1, "weights", "a.bin")]))
        assert other.load_cache_entries(["k"]) == {} and other.cache_entries() == []
        assert other.load_cache_payload("k") is None and other.load_artifacts(1) == []
        other.delete_cache_entries(["k"])
        assert store.load_cache_payload("k") == b"payload k"
    finally:
        other.close()


def plain_values() -> list[object]:
    """Every kind of plain data a store keeps as data (not pickled), with edge values."""
    return [
        None, True, False, 0, -7, 2**63 - 1, -(2**63), 2**63, -(2**64) - 5, 10**400,
        0.1, -0.0, 1e308, float("nan"), float("inf"), float("-inf"), "", "text é ✓", "@tuple", "$x",
        b"", b"\x00\xffbytes", datetime.datetime(2024, 2, 29, 23, 59, 59, 999999),
        datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc), datetime.date(1999, 12, 31),
        (), (1, "a", (2.5, None)), [1, [2, (3,)], {"k": (4,)}], {"a": 1, "b": [1.5, "x"]},
        {1: "int key", (1, 2): "tuple key", None: 0, 2.5: "float key"}, {"@tag": 1, "$set": 2, "": 3},
        np.float32(0.1), np.float64(-2.5), np.float16(0.5), np.int8(-3), np.int64(2**62), np.uint64(2**64 - 1),
        np.bool_(True), np.float64("nan"), np.complex128(1 - 2j), np.longdouble("0.1"),
        np.datetime64("2024-01-02T03:04"), np.str_("numpy text"),
        np.arange(12, dtype=np.float32).reshape(3, 4), np.array([], dtype=np.int16),
        np.array(["a", "bc"]), np.array([[True, False]]), np.zeros(3, dtype=[("x", "<i4"), ("y", "<f8")]),
    ]


def same_value(expected: object, actual: object) -> bool:
    """Whether ``actual`` is ``expected`` read back: same type, same value (NaN equal to NaN)."""
    if type(expected) is not type(actual):
        return False
    if isinstance(expected, np.ndarray):
        return expected.dtype == actual.dtype and expected.shape == actual.shape and expected.tobytes() == actual.tobytes()
    if isinstance(expected, (float, np.floating)) and math.isnan(expected):
        return math.isnan(actual)
    if isinstance(expected, (list, tuple)):
        return len(expected) == len(actual) and all(map(same_value, expected, actual))
    if isinstance(expected, dict):
        return list(expected) == list(actual) and all(same_value(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, float):
        return expected == actual and math.copysign(1, expected) == math.copysign(1, actual)
    return bool(expected == actual)


def test_plain_values_round_trip_exactly_as_parameters_and_results(store: Backend) -> None:
    values = plain_values()
    trials = [
        trial(number, parameters={"value": value, "number": number, "pair": (number, value)}, result=value)
        for number, value in enumerate(values, start=1)
    ]
    store.write_batch(RecordBatch(trials=trials[:20]))
    for record in trials[20:]:
        store.write_trial(record)
    loaded = store.load_trials()
    assert [t.trial_id for t in loaded] == list(range(1, len(values) + 1))
    for expected, actual in zip(trials, loaded):
        assert list(actual.parameters) == ["value", "number", "pair"], actual.trial_id
        assert same_value(expected.parameters["value"], actual.parameters["value"]), (expected, actual)
        assert same_value(expected.parameters["pair"], actual.parameters["pair"]), (expected, actual)
        assert same_value(expected.result, actual.result), (expected.result, actual.result)


def test_other_objects_round_trip_signed_with_the_users_key(store: Backend) -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    store.write_batch(
        RecordBatch(
            trials=[trial(1, parameters={"frame": frame, "a": 1}, result=frame)],
            persisted=[PersistedValue(1, "prepare", serialization.dumps(frame))],
        )
    )
    (loaded,) = store.load_trials()
    assert loaded.parameters["frame"].equals(frame) and loaded.parameters["a"] == 1
    assert loaded.result.equals(frame)
    assert serialization.load_value(store.load_persisted("prepare", 1).payload).equals(frame)


# -- notes and tags (issue 12) ----------------------------------------------------------
def test_annotations_are_edited_and_read_back(store: Backend) -> None:
    from daskperiment.records import Annotation, AnnotationEdit

    assert store.load_annotations() == {} and store.load_annotations([1, 2]) == {}
    store.edit_annotations([
        AnnotationEdit(1, note="first\nline two\t✓", add_tags=frozenset({"a", "b"})),
        AnnotationEdit(2, add_tags=frozenset({"only-tags"})),
        AnnotationEdit(3, note="only a note"),
        AnnotationEdit(1, remove_tags=frozenset({"b", "never-there"})),  # after the edit above, same batch
    ])
    expected = {
        1: Annotation(1, "first\nline two\t✓", frozenset({"a"})),
        2: Annotation(2, "", frozenset({"only-tags"})),
        3: Annotation(3, "only a note", frozenset()),
    }
    assert store.load_annotations() == expected
    assert store.load_annotations([3, 1, 99]) == {1: expected[1], 3: expected[3]}
    store.edit_annotations([AnnotationEdit(2, note="", tags=frozenset({"x", "y"}), add_tags=frozenset({"z"}))])
    assert store.load_annotations([2]) == {2: Annotation(2, "", frozenset({"x", "y", "z"}))}
    # emptied annotations are gone from what is read
    store.edit_annotations([AnnotationEdit(3, note=""), AnnotationEdit(2, tags=frozenset())])
    assert store.load_annotations() == {1: expected[1]}
    store.edit_annotations([])
    assert store.load_annotations() == {1: expected[1]}


def test_annotations_of_two_experiments_are_separate(store: Backend) -> None:
    from daskperiment.records import AnnotationEdit

    other = type(store)(*store.reopen_arguments()[:-1], "contract-other")
    try:
        store.edit_annotations([AnnotationEdit(1, note="mine")])
        assert other.load_annotations() == {}
        other.edit_annotations([AnnotationEdit(1, note="theirs")])
        assert store.load_annotations()[1].note == "mine"
    finally:
        other.close()


def _add_tags_one_by_one(store: Backend, worker: int, count: int) -> int:
    from daskperiment.records import AnnotationEdit

    for number in range(count):
        store.edit_annotations([AnnotationEdit(number % 3 + 1, add_tags=frozenset({f"w{worker}-{number}"}))])
        if number % 5 == 0:
            store.edit_annotations([AnnotationEdit(number % 3 + 1, note=f"from {worker}")])
    return count


def test_concurrent_tag_edits_from_threads_and_processes_are_all_kept(store: Backend) -> None:
    """Each edit applies to what the store holds: no tag added by another writer is lost."""
    per_worker = 30
    threads = [threading.Thread(target=_add_tags_one_by_one, args=(store, w, per_worker)) for w in (0, 1)]

    def in_threads() -> None:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    run_in_processes(_add_tags_one_by_one, [(store, w, per_worker) for w in (2, 3)], alongside=in_threads)
    loaded = store.load_annotations()
    assert sorted(loaded) == [1, 2, 3]
    for trial_id, annotation in loaded.items():
        assert annotation.tags == {
            f"w{w}-{n}" for w in range(4) for n in range(per_worker) if n % 3 + 1 == trial_id
        }
        assert annotation.note in {f"from {w}" for w in range(4)}


# -- deleting trials and experiments (issue 12) -------------------------------------------
def hexdigest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


CODES = {group: Blob.of(f"code {group}".encode()) for group in "ABC"}
ENVIRONMENT, WORKER = Blob.of(b"environment"), Blob.of(b"worker environment")


def populated(store: Backend, count: int = 30) -> dict[int, RecordBatch]:
    """``count`` trials with metrics, persisted values, artifacts, notes and tags; their batches by id.

    Trials 1-10 run code A, 11-20 code B, 21-30 code C; all share one environment, trial 5 also
    ran on a worker of another environment. Metric ``loss`` is in every trial, ``rare`` in trials
    11-20 only; artifact file ``shared`` is kept by every trial, each trial keeps one of its own.
    """
    from daskperiment.records import AnnotationEdit

    assert store.allocate_trial_ids(count) == range(1, count + 1)
    batches = {}
    for trial_id in range(1, count + 1):
        code = CODES["ABC"[(trial_id - 1) // 10]]
        batch = RecordBatch(
            trials=[trial(
                trial_id, code_digest=code.digest, environment_digest=ENVIRONMENT.digest,
                worker_environment_digests=(WORKER.digest,) if trial_id == 5 else (),
                success=trial_id % 7 != 0,
            )],
            metrics=[MetricPoint(trial_id, "loss", epoch, trial_id + epoch / 10) for epoch in range(5)]
            + ([MetricPoint(trial_id, "rare", 0, trial_id)] if 11 <= trial_id <= 20 else []),
            persisted=[PersistedValue(trial_id, "prepare", serialization.dumps(trial_id))],
            blobs=[code, ENVIRONMENT, WORKER],
            artifacts=[
                artifact(trial_id, "shared", "", digest=hexdigest("shared")),
                artifact(trial_id, "own", "", digest=hexdigest(f"own {trial_id}")),
            ],
        )
        store.write_batch(batch)
        store.edit_annotations([AnnotationEdit(trial_id, note=f"note {trial_id}", add_tags=frozenset({f"t{trial_id % 3}"}))])
        batches[trial_id] = batch
    return batches


def check_trials_are_whole(store: Backend, batches: dict[int, RecordBatch], kept: set[int]) -> None:
    """Trials of ``kept`` have every record of their batch; the others none of theirs."""
    ids = sorted(batches)
    assert [t.trial_id for t in store.load_trials()] == sorted(kept)
    assert store.load_trials() == [batches[t].trials[0] for t in sorted(kept)]
    loss = store.load_metrics("loss", ids)
    assert sorted(set(loss.trial_ids.tolist())) == sorted(kept)
    assert list(loss) == [p for t in sorted(kept) for p in batches[t].metrics if p.key == "loss"]
    for trial_id in ids:
        persisted = store.load_persisted("prepare", trial_id)
        annotation = store.load_annotations([trial_id]).get(trial_id)
        if trial_id in kept:
            assert persisted == batches[trial_id].persisted[0]
            assert store.load_artifacts(trial_id) == sorted(batches[trial_id].artifacts, key=lambda a: a.name)
            assert annotation is not None and annotation.note == f"note {trial_id}"
        else:
            assert persisted is None and store.load_artifacts(trial_id) == [] and annotation is None
    assert store.persisted_keys() == [(t, "prepare") for t in sorted(kept)]
    assert sorted(store.load_annotations()) == sorted(kept)


def test_deleted_trials_go_whole_and_the_others_stay(store: Backend) -> None:
    batches = populated(store)
    deleted = {1, 3, 5, 7, 9, *range(11, 21), 25, 30}
    assert store.deletions() == 0
    deletion = store.delete_trials([*sorted(deleted), 99, 3])  # unknown ids and repeats are ignored
    assert store.deletions() == 1  # readers holding trials read earlier reload them
    kept = set(batches) - deleted
    assert deletion.trial_ids == tuple(sorted(deleted))
    assert deletion.artifact_digests == tuple(sorted(hexdigest(f"own {t}") for t in deleted))
    check_trials_are_whole(store, batches, kept)
    # blobs no remaining trial uses are gone: code B (trials 11-20) and the worker's (trial 5)
    assert store.load_blob(CODES["B"].digest) is None and store.load_blob(WORKER.digest) is None
    for kept_blob in (CODES["A"], CODES["C"], ENVIRONMENT):
        assert store.load_blob(kept_blob.digest) == kept_blob
    assert store.metric_keys() == ["loss"]  # "rare" was only in deleted trials
    assert store.load_metrics("rare", list(batches)) == []
    assert store.last_trial_id() == 29
    assert store.allocate_trial_id() == 31  # deleted ids are never given again
    assert store.delete_trials([]).trial_ids == () and store.delete_trials([1, 11]).trial_ids == ()
    assert store.deletions() == 1  # nothing was removed: not counted
    # the rest can be deleted too; the shared file goes with the last trial using it
    rest = store.delete_trials(sorted(kept))
    assert rest.trial_ids == tuple(sorted(kept))
    assert set(rest.artifact_digests) == {hexdigest("shared")} | {hexdigest(f"own {t}") for t in kept}
    check_trials_are_whole(store, batches, set())
    assert store.deletions() == 2
    assert all(store.load_blob(b.digest) is None for b in (*CODES.values(), ENVIRONMENT, WORKER))
    assert store.metric_keys() == [] and store.last_trial_id() == 0
    assert store.allocate_trial_id() == 32
    assert experiment_ids(location_of(store)) == ["contract"]  # an empty experiment is still there


def test_artifact_digests_are_those_of_the_remaining_records(store: Backend) -> None:
    assert store.artifact_digests() == []
    batches = populated(store)
    owned = {t: hexdigest(f"own {t}") for t in batches}
    assert store.artifact_digests() == sorted({hexdigest("shared"), *owned.values()})
    store.delete_trials([2, 4, 6])
    assert store.artifact_digests() == sorted({hexdigest("shared")} | {d for t, d in owned.items() if t not in {2, 4, 6}})


def test_a_writer_sends_blobs_again_once_a_deletion_removed_them(store: Backend) -> None:
    """Another process deleted every trial using the code this process sent: its next trial sends it again."""
    code = CODES["A"]
    store.write_batch(RecordBatch(trials=[trial(1, code_digest=code.digest)], blobs=[code, ENVIRONMENT]))
    other = type(store)(*store.reopen_arguments())  # as another process would
    try:
        other.delete_trials([1])
    finally:
        other.close()
    assert store.load_blob(code.digest) is None
    generation = store.generation
    store.write_batch(RecordBatch(trials=[trial(2, code_digest=code.digest)]))  # the writer left the blobs out
    assert store.generation == generation + 1  # the writer now sends its blobs again
    store.write_batch(RecordBatch(blobs=[code, ENVIRONMENT]))
    store.write_batch(RecordBatch(trials=[trial(3, code_digest=code.digest)]))
    assert store.generation == generation + 1 and store.load_blob(code.digest) == code
    # a deletion in this process says so at once
    store.delete_trials([2, 3])
    assert store.generation == generation + 2


def test_deleting_an_experiment_removes_everything_and_only_it(store: Backend) -> None:
    other = type(store)(*store.reopen_arguments()[:-1], "contract-other")
    try:
        batches = populated(store, 12)
        store.write_batch(RecordBatch(cache_entries=[cache_entry("k"), cache_entry("big", payload=None, location="f" * 64)]))
        store.save_setting("objective", '"minimize"')
        other.write_batch(RecordBatch(trials=[trial(1)], metrics=[MetricPoint(1, "loss", 0, 1.0)]))
        assert experiment_ids(location_of(store)) == ["contract", "contract-other"]
        deletion = store.delete_experiment()
        assert deletion.trial_ids == tuple(range(1, 13))
        assert deletion.artifact_digests == tuple(sorted({hexdigest("shared")} | {hexdigest(f"own {t}") for t in batches}))
        assert deletion.cache_digests == ("f" * 64,)
        assert experiment_ids(location_of(store)) == ["contract-other"]
        assert other.load_trials() == [trial(1)] and list(other.load_metrics("loss", [1])) == [MetricPoint(1, "loss", 0, 1.0)]
        # opened again, it is a new, empty experiment: ids start from 1
        assert store.load_trials() == [] and store.metric_keys() == [] and store.cache_entries() == []
        assert store.load_annotations() == {} and store.load_setting("objective") is None
        assert store.load_blob(ENVIRONMENT.digest) is None and store.persisted_keys() == []
        assert store.allocate_trial_id() == 1
        store.write_trial(trial(1))
        assert store.load_trials() == [trial(1)]
    finally:
        other.close()


def test_every_setting_is_listed(store: Backend) -> None:
    assert store.load_settings() == {}
    store.save_setting("objective", '"minimize"')
    store.save_setting("cache é limit", "1024")
    store.save_setting("objective", '"maximize"')
    assert store.load_settings() == {"cache é limit": "1024", "objective": '"maximize"'}
    other = type(store)(*store.reopen_arguments()[:-1], "contract-other")
    try:
        assert other.load_settings() == {}
    finally:
        other.close()


def test_trials_only_started_are_deleted_with_their_records(store: Backend) -> None:
    """A killed trial (its start recorded, its end never) goes like a recorded one."""
    from daskperiment.records import AnnotationEdit, TrialStart

    begun = TrialStart({"a": 1}, 3, 1_700_000_000.0, 1_700_000_000.0, 10.0, "host:1")
    killed, other = store.start_trials([begun, begun])
    assert store.allocate_trial_id() == killed + 2
    store.write_trial(trial(killed + 2))
    for trial_id in (killed, killed + 2):
        store.write_batch(RecordBatch(
            metrics=[MetricPoint(trial_id, "loss", 0, 1.0)],
            persisted=[PersistedValue(trial_id, "prepare", b"value")],
            artifacts=[artifact(trial_id, "output", "", digest=f"{trial_id:064x}")],
        ))
        store.edit_annotations([AnnotationEdit(trial_id, note="gone")])
    deletion = store.delete_trials([killed, killed + 2])
    assert deletion.trial_ids == (killed, killed + 2)
    assert set(deletion.artifact_digests) == {f"{killed:064x}", f"{killed + 2:064x}"}
    assert store.load_starts() == {other: begun} and store.load_trials() == []
    assert store.load_metrics("loss", [killed, killed + 2]) == [] and store.load_annotations() == {}
    assert store.load_persisted("prepare", killed) is None and store.load_artifacts(killed) == []
    assert store.allocate_trial_id() == killed + 3
