"""Kill test: a process deleting trials, SIGKILLed at random moments, leaves every trial whole or gone."""

from __future__ import annotations

import pickle
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from daskperiment import serialization
from daskperiment.backend import Backend, LocalBackend
from daskperiment.backend.mongo import MongoBackend
from daskperiment.backend.redis import RedisBackend
from daskperiment.records import (
    Annotation,
    AnnotationEdit,
    ArtifactRecord,
    Blob,
    MetricPoint,
    PersistedValue,
    RecordBatch,
    TrialRecord,
)

BLOCK = 200
"""Trials written at a time: at first, and again whenever fewer than half a block is left."""
KILLS = 12
KEYS = ("loss", "accuracy", "lr")
ENVIRONMENT = Blob.of(b"environment")

DELETER = """
import pickle, random, sys
backend = pickle.loads(bytes.fromhex(sys.argv[1]))
chooser = random.Random(int(sys.argv[2]))
backend.last_trial_id()
print("ready", flush=True)
while True:
    ids = [t.trial_id for t in backend.load_trials()]
    if not ids:
        break
    deletion = backend.delete_trials(chooser.sample(ids, min(8, len(ids))))
    print("deleted", *deletion.trial_ids, flush=True)
print("done", flush=True)
"""


@pytest.fixture(params=["local", "redis", "mongo"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "local":
        backend: Backend = LocalBackend(tmp_path / "store", "killed")
    elif request.param == "redis":
        backend = RedisBackend(request.getfixturevalue("redis_uri"), "killed")
    else:
        backend = MongoBackend(request.getfixturevalue("mongo_uri"), "killed")
    yield backend
    backend.close()


def code_of(trial_id: int) -> Blob:
    return Blob.of(f"code of group {(trial_id - 1) // 10}".encode())


def records_of(trial_id: int) -> RecordBatch:
    """Everything trial ``trial_id`` records, as a function of its id."""
    return RecordBatch(
        trials=[TrialRecord(
            trial_id=trial_id, parameters={"a": trial_id, "b": [trial_id, "x"]}, result=trial_id / 3,
            result_type="float", success=trial_id % 9 != 0, finished=1.7e9 + trial_id, process_time=0.5,
            description=None if trial_id % 9 else "ValueError('nine')", seed=trial_id,
            code_digest=code_of(trial_id).digest, environment_digest=ENVIRONMENT.digest,
        )],
        metrics=[MetricPoint(trial_id, key, epoch, trial_id * 1000 + epoch * 10 + k)
                 for k, key in enumerate(KEYS) for epoch in range(10)],
        persisted=[PersistedValue(trial_id, "prepare", serialization.dumps({"id": trial_id}))],
        blobs=[code_of(trial_id), ENVIRONMENT],
        artifacts=[
            ArtifactRecord(trial_id, "output", "", f"{trial_id % 50:064x}", 10, ""),
            ArtifactRecord(trial_id, "weights", "w.bin", f"{trial_id + 10_000:064x}", 99, "train"),
        ],
    )


def annotation_of(trial_id: int) -> Annotation:
    return Annotation(trial_id, f"note of {trial_id}", frozenset({f"t{trial_id % 4}", "all"}))


def populate(store: Backend) -> int:
    """Write :data:`BLOCK` new trials; return the last id."""
    ids = store.allocate_trial_ids(BLOCK)
    for first in range(ids[0], ids[-1] + 1, 50):
        batch = RecordBatch()
        for trial_id in range(first, first + 50):
            batch.extend(records_of(trial_id))
        store.write_batch(batch)
    store.edit_annotations([AnnotationEdit(a.trial_id, note=a.note, tags=a.tags) for a in map(annotation_of, ids)])
    return ids[-1]


def marked_trials(store: Backend) -> set[int]:
    """Trials a MongoDB deletion marked but did not finish (none on the other stores)."""
    if not isinstance(store, MongoBackend):
        return set()
    import pymongo

    client = pymongo.MongoClient(store.reopen_arguments()[0])
    try:
        collection = client.get_default_database()[f"daskperiment_{store.experiment_id}"]
        return {int(d["trial_id"]) for d in collection.find({"kind": "deleted_trial"}, {"trial_id": 1})}
    finally:
        client.close()


def check_consistent(store: Backend, last: int) -> set[int]:
    """Each trial is whole (every record as written) or gone (no record left); return the trials there.

    Records of a trial MongoDB marked deleted may remain until the next deletion finishes it.
    """
    ids = list(range(1, last + 1))
    present = {t.trial_id: t for t in store.load_trials()}
    marked = marked_trials(store)
    assert not present.keys() & marked
    series = {key: store.load_metrics(key, ids) for key in KEYS}
    annotations = store.load_annotations()
    for trial_id in ids:
        expected = records_of(trial_id)
        points = [p for key in KEYS for p in series[key] if p.trial_id == trial_id]
        persisted = store.load_persisted("prepare", trial_id)
        artifacts = store.load_artifacts(trial_id)
        if trial_id in present:
            assert present[trial_id] == expected.trials[0]
            assert points == expected.metrics, trial_id
            assert persisted == expected.persisted[0] and artifacts == expected.artifacts
            assert annotations[trial_id] == annotation_of(trial_id)
            assert store.load_blob(code_of(trial_id).digest) == code_of(trial_id)
        elif trial_id not in marked:
            assert points == [] and persisted is None and artifacts == [], trial_id
            assert trial_id not in annotations
    if present:
        assert store.load_blob(ENVIRONMENT.digest) == ENVIRONMENT
    if isinstance(store, LocalBackend):
        with sqlite3.connect(store.database_path) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        connection.close()
    return set(present)


def test_a_process_killed_while_deleting_leaves_each_trial_whole_or_gone(store: Backend, tmp_path: Path, child_env) -> None:
    last = populate(store)
    check_consistent(store, last)
    chooser = random.Random(12)
    kills, reported, cut_short, longest = 0, set(), 0, 0.3
    while kills < KILLS:
        child = subprocess.Popen(
            [sys.executable, "-c", DELETER, pickle.dumps(store).hex(), str(kills)],
            cwd=tmp_path, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert child.stdout.readline() == "ready\n", child.stderr.read()
        time.sleep(chooser.uniform(0.0, longest))
        child.send_signal(signal.SIGKILL)
        output, errors = child.communicate(timeout=60)
        reported.update(int(t) for line in output.splitlines() if line.startswith("deleted") for t in line.split()[1:])
        marked = marked_trials(store)
        if len(check_consistent(store, last)) < BLOCK // 2:
            last = populate(store)
        if "done" in output:  # every trial was deleted before the kill: kill sooner
            longest /= 2
            continue
        assert child.returncode == -signal.SIGKILL, errors
        kills += 1
        cut_short += bool(marked)
        if "deleted" not in output:  # killed during the first deletion: let some finish next time
            longest = min(3.0, longest * 1.5)
    # the next deletion finishes what a killed one left (MongoDB), and never reuses an id
    store.delete_trials([])
    assert marked_trials(store) == set()
    remaining = check_consistent(store, last)
    deleted = set(range(1, last + 1)) - remaining
    assert remaining and reported <= deleted
    assert store.allocate_trial_id() == last + 1
    print(f"{type(store).__name__}: {kills} kills; {len(deleted)} trials deleted, {len(deleted - reported)} "
          f"of them by deletions the kill cut off before they reported; {cut_short} kills left "
          "marked trials (MongoDB), finished by the next deletion")

