"""Writing an experiment's contents into a store and its artifact location.

The target must hold no trial (or be emptied first, ``replace=True``). The
trial id counter is raised first, past every imported id (new trials of the
target never take one); then blobs and artifact files are written, then the
trials in batches with their metrics, persisted values and artifact records
(each batch as the store writes any batch: atomically, trial records last),
then notes, tags, settings and the step cache. An import cut short leaves
the trials written so far: import again with ``replace=True``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from daskperiment import serialization
from daskperiment.artifactstore import ArtifactStore
from daskperiment.backend.base import Backend
from daskperiment.backend.codec import trial_from_document
from daskperiment.deletion import delete_experiment
from daskperiment.errors import TransferError
from daskperiment.records import AnnotationEdit, Blob, MetricPoint, RecordBatch
from daskperiment.transfer.contents import CACHE_FOLDER, Contents

logger = logging.getLogger(__name__)

TRIALS_PER_BATCH = 100
"""Trials written per batch (one transaction or round trip each)."""
BLOB_BATCH_BYTES = 16 * 2**20


@dataclass(frozen=True)
class TransferReport:
    """What was moved into a store.

    Attributes
    ----------
    experiment_id : str
        The experiment written.
    trials, metric_points, persisted, artifact_files, annotations, cache_entries : int
        How many of each were written.
    """

    experiment_id: str
    trials: int
    metric_points: int
    persisted: int
    artifact_files: int
    annotations: int
    cache_entries: int


def load_contents(
    contents: Contents, backend: Backend, artifacts: ArtifactStore, *, replace: bool = False,
) -> TransferReport:
    """Write ``contents`` into the experiment of ``backend`` and its artifact location ``artifacts``.

    Parameters
    ----------
    contents : Contents
        What to write (of a store, or of an export file).
    backend : Backend
        The target experiment's store.
    artifacts : ArtifactStore
        The target experiment's artifact location.
    replace : bool, default False
        Delete whatever the target experiment holds first.

    Raises
    ------
    TransferError
        When the target holds trials (and ``replace`` is False), or the
        contents are malformed; nothing is written then.
    BackendError, ArtifactError
        When the target cannot be written.
    """
    # read (and check) everything first: a malformed file writes nothing
    documents = contents.trial_documents()
    with serialization.keeping_data():
        trials = [trial_from_document(document) for document in documents]
    ids = [trial.trial_id for trial in trials]
    if len(set(ids)) != len(ids):
        raise TransferError(f"the trials of experiment {contents.experiment_id!r} to import repeat ids")
    recorded = set(ids)
    metrics = _points_by_trial(contents, recorded)
    persisted, records = defaultdict(list), defaultdict(list)
    for value in contents.persisted():
        if value.trial_id in recorded:
            persisted[value.trial_id].append(value)
    for record in contents.artifact_records():
        if record.trial_id in recorded:
            records[record.trial_id].append(record)
    blobs = list(contents.blobs())
    files = contents.file_digests()
    annotations = [a for a in contents.annotations() if a.trial_id in recorded]
    settings = contents.settings()
    values = sum(len(group) for group in persisted.values())
    # then write, the counter first
    _make_room(backend, artifacts, replace)
    if ids:
        _raise_counter(backend, max(ids))
    _write_blobs(blobs, backend)
    contents.put_files(files, artifacts)
    points = 0
    for first in range(0, len(trials), TRIALS_PER_BATCH):
        chunk = trials[first : first + TRIALS_PER_BATCH]
        batch = RecordBatch(trials=chunk)
        for trial in chunk:
            batch.metrics.extend(metrics.pop(trial.trial_id, ()))
            batch.persisted.extend(persisted.pop(trial.trial_id, ()))
            batch.artifacts.extend(records.pop(trial.trial_id, ()))
        points += len(batch.metrics)
        backend.write_batch(batch)
    if annotations:
        backend.edit_annotations([AnnotationEdit(a.trial_id, note=a.note, tags=a.tags) for a in annotations])
    for name, value in settings.items():
        backend.save_setting(name, value)
    cached = _write_cache(contents, backend, artifacts)
    report = TransferReport(
        backend.experiment_id, len(trials), points, values, len(files), len(annotations), cached,
    )
    logger.info("imported experiment %r into %r: %s", contents.experiment_id, backend, report)
    return report


def _make_room(backend: Backend, artifacts: ArtifactStore, replace: bool) -> None:
    """Refuse a target holding records, or empty it when ``replace``."""
    if replace:
        delete_experiment(backend, artifacts)
        return
    held = backend.last_trial_id()
    if held or backend.cache_entries() or backend.load_annotations() or backend.load_settings():
        what = f"trials (up to id {held})" if held else "records (cache entries, notes or settings)"
        raise TransferError(
            f"experiment {backend.experiment_id!r} of {backend!r} holds {what} already: nothing was "
            "imported. Import under another id (--as NEWID, experiment_id=...), or replace what it "
            "holds (--replace, replace=True: its trials and records are deleted first)"
        )


def _raise_counter(backend: Backend, last: int) -> None:
    """Make the next trial id of ``backend`` greater than ``last``."""
    first = backend.allocate_trial_id()
    if first < last:
        backend.allocate_trial_ids(last - first)


def _write_blobs(blobs: list[Blob], backend: Backend) -> None:
    batch, size = RecordBatch(), 0
    for blob in blobs:
        batch.blobs.append(blob)
        size += len(blob.content)
        if size >= BLOB_BATCH_BYTES:
            backend.write_batch(batch)
            batch, size = RecordBatch(), 0
    if batch:
        backend.write_batch(batch)


def _points_by_trial(contents: Contents, recorded: set[int]) -> dict[int, list[MetricPoint]]:
    """The metric points of each trial (of ``recorded``), key by key, each key's points in order.

    A metric whose every value was an int is written with int values again.
    """
    points: dict[int, list[MetricPoint]] = defaultdict(list)
    for columns in contents.metrics():
        values = columns.values.astype("int64").tolist() if columns.integer else columns.values.tolist()
        times = [None] * len(values) if columns.times is None else [
            None if t != t else t for t in columns.times.tolist()  # NaN: unknown
        ]
        for trial_id, epoch, value, when in zip(columns.trial_ids.tolist(), columns.epochs.tolist(), values, times):
            if trial_id in recorded:
                points[trial_id].append(MetricPoint(trial_id, columns.key, epoch, value, when))
    return points


def _write_cache(contents: Contents, backend: Backend, artifacts: ArtifactStore) -> int:
    written, batch = 0, RecordBatch()
    for entry in contents.cache_entries():
        if entry.location is not None:
            contents.put_files([entry.location], artifacts.subfolder(CACHE_FOLDER), cache=True)
        batch.cache_entries.append(entry)
        if len(batch.cache_entries) >= TRIALS_PER_BATCH:
            backend.write_batch(batch)
            written += len(batch.cache_entries)
            batch = RecordBatch()
    if batch:
        backend.write_batch(batch)
        written += len(batch.cache_entries)
    return written
