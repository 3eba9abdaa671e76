"""Writing an experiment's contents into a store and its artifact location.

The target must hold no trial, or be replaced (``replace=True``: none of its
trials running). The import is staged: everything is written into a new
experiment of the target store (its id starts with :data:`STAGING_PREFIX`), then
:meth:`~daskperiment.backend.Backend.adopt` puts it in the target's place in
one atomic step. An import cut short (an error, a killed process) leaves the
target as it was: what a killed import staged is removed by the next import
into that experiment, and its artifact files, written into the target's
location first, are only space until then (files are shared by content).
Replacing, the adoption drops the target's records in the same atomic step;
the files of the old records that the new ones do not use are removed after
(records first, files after, as in :mod:`daskperiment.deletion`).

In the staging experiment, the trial id counter is raised first, past every
imported id (new trials of the target never take one); then blobs, artifact
files and step output hashes are written, then the trials in batches with
their metrics, persisted values and artifact records, then the starts of the
trials running or killed when exported, notes, tags, settings and the step cache.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

from daskperiment import serialization
from daskperiment.artifactstore import ArtifactStore
from daskperiment.backend.base import Backend
from daskperiment.backend.codec import start_from_document, trial_from_document
from daskperiment.deletion import remove_files
from daskperiment.errors import BackendError, TransferError, TrialRunningError
from daskperiment.records import (
    Annotation,
    AnnotationEdit,
    ArtifactRecord,
    Blob,
    MetricPoint,
    PersistedValue,
    RecordBatch,
    StepOutput,
    TrialRecord,
    TrialStart,
)
from daskperiment.status import RUNNING
from daskperiment.transfer.contents import CACHE_FOLDER, Contents

logger = logging.getLogger(__name__)

TRIALS_PER_BATCH = 100
"""Trials written per batch (one transaction or round trip each)."""
BLOB_BATCH_BYTES = 16 * 2**20
STAGING_PREFIX = "staged-import-"
"""Start of the ids of the experiments an import is staged in (then the target's hash, then a random part)."""


@dataclass(frozen=True)
class TransferReport:
    """What was moved into a store.

    Attributes
    ----------
    experiment_id : str
        The experiment written.
    trials, metric_points, persisted, artifact_files, annotations, cache_entries : int
        How many of each were written.
    started : int
        How many trials running or killed when exported were written (their starts).
    """

    experiment_id: str
    trials: int
    metric_points: int
    persisted: int
    artifact_files: int
    annotations: int
    cache_entries: int
    started: int = 0


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
        Replace whatever the target experiment holds: its records give way to
        the imported ones in the atomic step putting them in place (cut short,
        the target keeps its old records), then the files of the old records
        the new ones do not use are removed.

    Raises
    ------
    TransferError
        When the target holds trials (and ``replace`` is False), or the
        contents are malformed; nothing is written then.
    TrialRunningError
        When ``replace`` and a trial of the target is still running; nothing is written.
    BackendError, ArtifactError
        When the target cannot be written.
    """
    moving = _Moving.read(contents)  # everything read (and checked) first: a malformed file writes nothing
    if not replace:
        _refuse_held(backend)
    replaced = _ReplacedFiles.read(backend) if replace else None
    prefix = _staging_prefix(backend.experiment_id)
    left = backend.discard_stagings(prefix)
    if left:
        logger.info("removed %s, staged by imports into %r cut short", left, backend.experiment_id)
    staging = backend.staging(prefix + uuid.uuid4().hex[:12])
    try:
        points = moving.write(staging, artifacts, contents)
        cached = _write_cache(contents, staging, artifacts)
        backend.adopt(staging)
    except BaseException:
        _discard_quietly(backend, staging.experiment_id)
        raise
    if replaced is not None:
        replaced.remove_unused(backend, artifacts)
    report = TransferReport(
        backend.experiment_id, len(moving.trials), points, moving.values, len(moving.files),
        len(moving.annotations), cached, len(moving.starts),
    )
    logger.info("imported experiment %r into %r: %s", contents.experiment_id, backend, report)
    return report


@dataclass
class _Moving:
    """What an import writes, read from the contents (the step cache is read as it is written)."""

    trials: list[TrialRecord]
    starts: dict[int, TrialStart]
    metrics: dict[int, list[MetricPoint]]
    persisted: dict[int, list[PersistedValue]]
    records: dict[int, list[ArtifactRecord]]
    blobs: list[Blob]
    outputs: list[StepOutput]
    files: list[str]
    annotations: list[Annotation]
    settings: dict[str, str]

    @classmethod
    def read(cls, contents: Contents) -> "_Moving":
        """Read and check ``contents``.

        Raises
        ------
        TransferError
            When they are malformed.
        """
        documents = contents.trial_documents()
        start_documents = contents.start_documents()
        with serialization.keeping_data():
            trials = [trial_from_document(document) for document in documents]
            starts = {t: start_from_document(document) for t, document in start_documents.items()}
        ids = [trial.trial_id for trial in trials]
        if len(set(ids)) != len(ids) or set(ids) & set(starts):
            raise TransferError(f"the trials of experiment {contents.experiment_id!r} to import repeat ids")
        moving = set(ids) | set(starts)
        persisted: dict[int, list[PersistedValue]] = defaultdict(list)
        records: dict[int, list[ArtifactRecord]] = defaultdict(list)
        for value in contents.persisted():
            if value.trial_id in moving:
                persisted[value.trial_id].append(value)
        for record in contents.artifact_records():
            if record.trial_id in moving:
                records[record.trial_id].append(record)
        return cls(
            trials, starts, _points_by_trial(contents, moving), persisted, records, list(contents.blobs()),
            [StepOutput(key, output) for key, output in contents.step_outputs().items()],
            contents.file_digests(), [a for a in contents.annotations() if a.trial_id in moving],
            contents.settings(),
        )

    @property
    def values(self) -> int:
        """How many persisted values move."""
        return sum(len(group) for group in self.persisted.values())

    def write(self, staging: Backend, artifacts: ArtifactStore, contents: Contents) -> int:
        """Write everything but the step cache into ``staging`` and the files into ``artifacts``; the points written."""
        if self.trials or self.starts:
            _raise_counter(staging, max([t.trial_id for t in self.trials] + list(self.starts)))
        _write_blobs(self.blobs, self.outputs, staging)
        contents.put_files(self.files, artifacts)
        points = 0
        for first in range(0, len(self.trials), TRIALS_PER_BATCH):
            chunk = self.trials[first : first + TRIALS_PER_BATCH]
            batch = self._records_of(chunk, [trial.trial_id for trial in chunk])
            points += len(batch.metrics)
            staging.write_batch(batch)
        started = self._records_of([], list(self.starts))  # no trial record: only started
        if started:
            points += len(started.metrics)
            staging.write_batch(started)
        staging.import_starts(self.starts)
        if self.annotations:
            staging.edit_annotations([AnnotationEdit(a.trial_id, note=a.note, tags=a.tags) for a in self.annotations])
        for name, value in self.settings.items():
            staging.save_setting(name, value)
        return points

    def _records_of(self, trials: list[TrialRecord], trial_ids: list[int]) -> RecordBatch:
        batch = RecordBatch(trials=trials)
        for trial_id in trial_ids:
            batch.metrics.extend(self.metrics.get(trial_id, ()))
            batch.persisted.extend(self.persisted.get(trial_id, ()))
            batch.artifacts.extend(self.records.get(trial_id, ()))
        return batch


def _staging_prefix(experiment_id: str) -> str:
    """Start of the ids of the experiments imports into ``experiment_id`` are staged in."""
    return f"{STAGING_PREFIX}{hashlib.sha256(experiment_id.encode()).hexdigest()[:16]}-"


def _discard_quietly(backend: Backend, staging_id: str) -> None:
    """Remove a staged experiment after a failed import; a failure to is logged (the next import removes it)."""
    try:
        backend.discard_stagings(staging_id)
    except Exception as exc:  # the import's own error is the one to raise
        logger.warning("the staged import %r was not removed: %s", staging_id, exc)


def _refuse_held(backend: Backend) -> None:
    """Refuse a target holding records (without ``replace``)."""
    held = backend.last_trial_id()
    if held or backend.load_starts() or backend.cache_entries() or backend.load_annotations() or backend.load_settings():
        what = f"trials (up to id {held})" if held else "records (running or killed trials, cache entries, notes or settings)"
        raise TransferError(
            f"experiment {backend.experiment_id!r} of {backend!r} holds {what} already: nothing was "
            "imported. Import under another id (--as NEWID, experiment_id=...), or replace what it "
            "holds (--replace, replace=True: its trials and records give way to the imported ones)"
        )


@dataclass(frozen=True)
class _ReplacedFiles:
    """The files of the experiment an import replaces: its artifact files and the step cache's large outputs."""

    artifacts: frozenset[str]
    cache: frozenset[str]

    @classmethod
    def read(cls, backend: Backend) -> "_ReplacedFiles":
        """Read them from ``backend`` before the import, once sure no trial of it runs.

        Raises
        ------
        TrialRunningError
            When a trial of the target is still running (nothing is written).
        """
        now = time.time()
        running = [t for t, start in backend.load_starts().items() if start.status(now) == RUNNING]
        if running:
            raise TrialRunningError(
                f"cannot replace experiment {backend.experiment_id!r} of {backend!r}: trial"
                f"{'s' if len(running) > 1 else ''} {', '.join(map(str, running))} "
                f"{'are' if len(running) > 1 else 'is'} still running (marked alive by "
                f"{'their processes' if len(running) > 1 else 'its process'}); replace it once "
                f"{'they have' if len(running) > 1 else 'it has'} ended or "
                f"{'show' if len(running) > 1 else 'shows'} as killed, or "
                "import under another id (--as NEWID, experiment_id=...); nothing was imported"
            )
        cached = {entry.location for entry in backend.cache_entries() if entry.location is not None}
        return cls(frozenset(backend.artifact_digests()), frozenset(cached))

    def remove_unused(self, backend: Backend, artifacts: ArtifactStore) -> None:
        """Remove the files no record of ``backend`` uses any more, once the import is in place.

        The records went first (with the atomic :meth:`~daskperiment.backend.Backend.adopt`):
        a process stopped here leaves files no record refers to, only space.
        """
        try:
            used = set(backend.artifact_digests())
            held = {entry.location for entry in backend.cache_entries()}
        except BackendError as exc:  # the import is in place: the old files are only space
            logger.warning("the files of the experiment %r replaced were not removed: %s", backend.experiment_id, exc)
            return
        remove_files(artifacts, sorted(self.artifacts - used), "of the replaced experiment")
        remove_files(artifacts.subfolder(CACHE_FOLDER), sorted(self.cache - held), "of the replaced step cache")


def _raise_counter(backend: Backend, last: int) -> None:
    """Make the next trial id of ``backend`` greater than ``last``."""
    first = backend.allocate_trial_id()
    if first < last:
        backend.allocate_trial_ids(last - first)


def _write_blobs(blobs: list[Blob], outputs: list[StepOutput], backend: Backend) -> None:
    batch, size = RecordBatch(step_outputs=outputs), 0
    for blob in blobs:
        batch.blobs.append(blob)
        size += len(blob.content)
        if size >= BLOB_BATCH_BYTES:
            backend.write_batch(batch)
            batch, size = RecordBatch(), 0
    if batch:
        backend.write_batch(batch)


def _points_by_trial(contents: Contents, moving: set[int]) -> dict[int, list[MetricPoint]]:
    """The metric points of each trial (of ``moving``), key by key, each key's points in order.

    A metric whose every value was an int is written with int values again.
    """
    points: dict[int, list[MetricPoint]] = defaultdict(list)
    for columns in contents.metrics():
        values = columns.values.astype("int64").tolist() if columns.integer else columns.values.tolist()
        times = [None] * len(values) if columns.times is None else [
            None if t != t else t for t in columns.times.tolist()  # NaN: unknown
        ]
        for trial_id, epoch, value, when in zip(columns.trial_ids.tolist(), columns.epochs.tolist(), values, times):
            if trial_id in moving:
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
