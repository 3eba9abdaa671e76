"""The store contract: every backend passes the same tests."""

from __future__ import annotations

import pickle
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from daskperiment.backend import Backend, LocalBackend
from daskperiment.records import Blob, MetricPoint, PersistedValue, RecordBatch, StepOutput, TrialRecord


@pytest.fixture(params=["local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A new, empty store of each kind."""
    backend = LocalBackend(tmp_path / "store", "contract")
    yield backend
    backend.close()


def trial(trial_id: int, **changes: object) -> TrialRecord:
    record = TrialRecord(
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
    return replace(record, **changes)


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


def test_trials_round_trip(store: Backend) -> None:
    records = [trial(1), trial(2, success=False, result=None, result_type="", description="E(x)")]
    store.write_batch(RecordBatch(trials=records))
    assert store.load_trials() == records
    assert store.load_trials([2, 7]) == [records[1]]
    assert store.last_trial_id() == 2


def test_a_trial_written_again_is_replaced(store: Backend) -> None:
    store.write_trial(trial(1))
    store.write_trial(trial(1, result=99))
    assert [t.result for t in store.load_trials()] == [99]


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


def test_step_outputs_keep_the_first(store: Backend) -> None:
    store.write_batch(RecordBatch(step_outputs=[StepOutput("k1", "h1")]))
    store.write_batch(RecordBatch(step_outputs=[StepOutput("k1", "h2"), StepOutput("k2", "h3")]))
    assert store.load_step_outputs(["k1", "k2", "k3"]) == {"k1": "h1", "k2": "h3"}
    assert store.load_step_outputs([]) == {}


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
