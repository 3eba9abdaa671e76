"""The store contract every backend implements.

The contract is small and batch-first: every write is one :class:`RecordBatch`
written atomically by :meth:`Backend.write_batch`; single writes are batches of
one. Reads return the plain value objects of :mod:`daskperiment.records`.
"""

from __future__ import annotations

import logging
import numbers
import os
import threading
from abc import ABC, abstractmethod
from typing import Any, Hashable, Mapping, Sequence

from daskperiment.records import (
    Annotation,
    AnnotationEdit,
    ArtifactRecord,
    Blob,
    CacheEntry,
    Deletion,
    MetricPoint,
    MetricSeries,
    PersistedValue,
    RecordBatch,
    TrialColumns,
    TrialRecord,
    TrialStart,
)

logger = logging.getLogger(__name__)


class Backend(ABC):
    """Stores the trials of one experiment.

    Parameters
    ----------
    experiment_id : str
        Id of the experiment whose records this store holds.

    Notes
    -----
    A backend is picklable: it pickles as the arguments that re-open it (see
    :meth:`reopen_arguments`), so dask workers in other processes write to the
    same store. Within one process re-opened backends are shared.
    """

    def __init__(self, experiment_id: str) -> None:
        self.experiment_id = experiment_id
        self.generation = 0
        """How many times this backend found that its store had lost the experiment's records.

        Records a writer remembers having stored (code and environment blobs)
        must be sent again once it increases. It also increases when blobs
        were removed because the trials using them were deleted (by this
        process, or found missing when a trial referring to them was written).
        """
        self._blobs_found_missing: set[str] = set()

    # -- writes -------------------------------------------------------------
    @abstractmethod
    def allocate_trial_ids(self, count: int) -> range:
        """Atomically reserve ``count`` consecutive new trial ids, in one round trip.

        The ids are unique across all writers of the experiment, in every
        process (like :meth:`allocate_trial_id`).

        Parameters
        ----------
        count : int
            How many ids to reserve, at least 1.

        Returns
        -------
        range
            The reserved ids, ``count`` consecutive integers.

        Raises
        ------
        ValueError
            When ``count`` is not a positive int (nothing is reserved).
        """

    def allocate_trial_id(self) -> int:
        """Atomically reserve the next trial id, unique across all writers."""
        return self.allocate_trial_ids(1)[0]

    @abstractmethod
    def start_trials(self, starts: Sequence[TrialStart]) -> range:
        """Allocate a trial id for each of ``starts`` and record them as running, atomically.

        One transaction or round trip: either every id is reserved with its
        start recorded, or nothing is, so no allocated id is ever lost (a
        trial whose process dies reads as killed, see :meth:`load_starts`).
        The ids are consecutive and unique across all writers of the
        experiment, as those of :meth:`allocate_trial_ids`.

        Parameters
        ----------
        starts : sequence of TrialStart
            One start per trial, at least one.

        Returns
        -------
        range
            The ids, ``starts[i]`` stored under ``ids[i]``.

        Raises
        ------
        ValueError
            When ``starts`` is empty (nothing is reserved).
        TypeError
            When parameters cannot be serialized (nothing is reserved).
        """

    @abstractmethod
    def beat_trials(self, trial_ids: Sequence[int], when: float) -> None:
        """Set the heartbeat of started trials to the POSIX time ``when``, in one round trip.

        Ids of trials recorded since (or never started) are ignored: a late
        heartbeat never brings a start record back.
        """

    @abstractmethod
    def load_starts(self, trial_ids: Sequence[int] | None = None) -> dict[int, TrialStart]:
        """The starts of trials whose end is not recorded: all of them, or those of ``trial_ids``.

        A batch recording a trial removes its start (see :meth:`write_batch`);
        a reader still ignores a start whose trial is recorded (a server that
        died half-way through a batch may hold both until it is re-sent).

        Returns
        -------
        dict of int to TrialStart
            By trial id, in id order.
        """

    @abstractmethod
    def write_batch(self, batch: RecordBatch) -> dict[str, str]:
        """Write every record of ``batch`` atomically: all of it or none of it.

        Blobs already stored are kept as they are (first write wins). A trial
        written again by another batch replaces the earlier one in the local
        store; a server store keeps the earlier one and records the new one
        under a new id (with a WARNING: after a server lost its data, a trial
        spooled before never overwrites a newer trial of the same id). A
        persisted value, step output (same input key: the latest output is
        what the purity check compares with), cache entry (same ``key``) or
        artifact record (same trial, name and path) written again replaces the
        earlier one. Recording a trial removes its start (:meth:`start_trials`).

        Returns
        -------
        dict of str to str
            The output hashes the batch's step outputs replace: for each input
            key of ``batch.step_outputs`` the store held, the hash it held
            before the batch (read with the write, in the same transaction or
            round trip where the store allows it), so that the purity check
            needs no read of its own.
        """

    def write_trial(self, trial: TrialRecord) -> None:
        """Write one trial record (a batch of one)."""
        self.write_batch(RecordBatch(trials=[trial]))

    def rewrite_trials(self, trials: Sequence[TrialRecord]) -> None:
        """Replace stored trials by these records of the same ids, atomically.

        For re-encoding a store's own trials (``daskperiment migrate``): unlike
        :meth:`write_batch`, a server store overwrites them in place instead
        of recording them under new ids. The local store replaces trials
        written again in any case.
        """
        self.write_batch(RecordBatch(trials=list(trials)))

    def write_metrics(self, points: Sequence[MetricPoint]) -> None:
        """Write metric points (a batch of them)."""
        self.write_batch(RecordBatch(metrics=list(points)))

    # -- reads --------------------------------------------------------------
    @abstractmethod
    def last_trial_id(self) -> int:
        """Largest id of a recorded trial, ``0`` when there is none."""

    @abstractmethod
    def load_trials(self, trial_ids: Sequence[int] | None = None) -> list[TrialRecord]:
        """Recorded trials ordered by id: all of them, or those of ``trial_ids`` that exist."""

    @abstractmethod
    def load_trial_columns(self) -> TrialColumns:
        """Every recorded trial as columns, ordered by id (what a history table is made of).

        The same values as ``TrialColumns.of(self.load_trials())``, decoded
        column by column without a record per trial: a history of 100,000
        trials reads several times faster.
        """

    @abstractmethod
    def load_metrics(self, key: str, trial_ids: Sequence[int]) -> MetricSeries:
        """Points of metric ``key`` of the given trials, ordered by trial, epoch, then write order."""

    @abstractmethod
    def metric_keys(self) -> list[str]:
        """Sorted keys of every metric saved in this experiment."""

    @abstractmethod
    def load_persisted(self, step: str, trial_id: int) -> PersistedValue | None:
        """The persisted output of ``step`` in trial ``trial_id``, if stored."""

    @abstractmethod
    def persisted_keys(self) -> list[tuple[int, str]]:
        """``(trial id, step)`` of the persisted values of recorded trials, sorted (``daskperiment migrate`` re-encodes them)."""

    @abstractmethod
    def load_blob(self, digest: str) -> Blob | None:
        """The blob stored under ``digest``, if any."""

    @abstractmethod
    def load_step_outputs(self, input_keys: Sequence[str]) -> dict[str, str]:
        """Known output hashes of the given step input keys (absent keys are left out)."""

    # -- step cache -------------------------------------------------------------
    @abstractmethod
    def load_cache_entries(self, keys: Sequence[str]) -> dict[str, CacheEntry]:
        """The cache entries stored under ``keys`` (absent keys left out), in one round trip.

        Entries are returned without their payload (``payload`` is None, see
        :meth:`load_cache_payload`); reading them does not mark them used.
        """

    @abstractmethod
    def load_cache_payload(self, key: str) -> bytes | None:
        """The payload of the cache entry ``key``, None when the entry is absent or kept elsewhere."""

    @abstractmethod
    def touch_cache_entries(self, keys: Sequence[str], when: float) -> None:
        """Set the ``last_used`` time of the entries under ``keys`` to ``when`` (absent keys ignored)."""

    @abstractmethod
    def cache_entries(self) -> list[CacheEntry]:
        """Every cache entry of the experiment, without payloads, least recently used first."""

    @abstractmethod
    def delete_cache_entries(self, keys: Sequence[str]) -> None:
        """Remove the entries under ``keys`` atomically (absent keys ignored)."""

    # -- artifacts ------------------------------------------------------------------
    @abstractmethod
    def load_artifacts(self, trial_id: int) -> list[ArtifactRecord]:
        """The files kept by trial ``trial_id``, ordered by artifact name then path."""

    @abstractmethod
    def artifact_digests(self) -> list[str]:
        """Digests of the files the experiment's artifact records use, sorted (read without one round trip per trial).

        An import replacing the experiment reads them first, to remove the
        files the new contents no longer use once they are in place.
        """

    # -- notes and tags (issue 12) --------------------------------------------------
    @abstractmethod
    def load_annotations(self, trial_ids: Sequence[int] | None = None) -> dict[int, Annotation]:
        """Notes and tags of the given trials (of every trial when None), in one round trip.

        Trials with neither a note nor a tag are left out. The dashboard
        shows what this returns; :meth:`edit_annotations` changes it.

        Parameters
        ----------
        trial_ids : sequence of int, optional
            The trials; by default all of them.

        Returns
        -------
        dict of int to Annotation
            By trial id.
        """

    @abstractmethod
    def edit_annotations(self, edits: Sequence[AnnotationEdit]) -> None:
        """Apply ``edits`` to the notes and tags the store holds, each atomically.

        Each edit is applied to the trial's annotation as stored at that
        moment (two processes adding tags at once both get theirs); on the
        local store and Redis the whole batch is one transaction. The store
        does not check the text (see :mod:`daskperiment.annotations`) nor that
        the trials are recorded: a running trial may be annotated before its
        record is written. Annotations go when their trial is deleted.

        Parameters
        ----------
        edits : sequence of AnnotationEdit
            The changes, e.g. ``[AnnotationEdit(3, note="diverged", add_tags=frozenset({"bad"}))]``;
            an edit giving ``note`` and ``tags`` sets both (what an editor of
            the note and tags of a trial saves).

        Raises
        ------
        BackendError
            When the store cannot be written (nothing is changed).
        """

    # -- deleting trials and experiments (issue 12) --------------------------------------
    @abstractmethod
    def delete_trials(self, trial_ids: Sequence[int]) -> Deletion:
        """Delete trials with everything recorded for them; a trial is never half deleted.

        Removed with each trial: its record (or its start, for a trial not
        recorded yet: a killed one), metric points, persisted values,
        artifact records, note and tags. Code and environment blobs no
        remaining trial refers to are removed too (and, locally, the trials'
        code files). Kept: the step cache (``ex.clear_cache``), the step output
        hashes of the purity check, settings, and the trial id counter:
        deleted ids are never given to new trials.

        The local store deletes in one transaction, Redis in one Lua script;
        MongoDB marks the trials deleted first (readers no longer see them),
        then removes their records, the trial documents last: a deletion cut
        short leaves marked trials, which the next call finishes (any call,
        ``delete_trials([])`` included).

        Parameters
        ----------
        trial_ids : sequence of int
            The trials; ids of no recorded or started trial are ignored. The
            store does not check that a started trial is dead (see
            :meth:`daskperiment.Experiment.delete_trials`, which refuses running ones).

        Returns
        -------
        Deletion
            The ids deleted, and the digests of artifact-store objects that
            no remaining artifact record uses (the caller removes the files).

        Raises
        ------
        BackendError
            When the store cannot be written (nothing is deleted).
        """

    @abstractmethod
    def deletions(self) -> int:
        """How many times trials were deleted from the experiment (0: never).

        Each :meth:`delete_trials` that removes a trial counts once, in the
        same step as the removal. A reader holding records read earlier reads
        them all again when this changes (the dashboard does): trial ids
        alone cannot tell it a trial went.

        Raises
        ------
        BackendError
            When the store cannot be read.
        """

    @abstractmethod
    def delete_experiment(self) -> Deletion:
        """Delete every record of the experiment; the store no longer lists it.

        Trials, metrics, persisted values, artifact records, notes, tags,
        blobs, the step cache, settings and the trial id counter go: an
        experiment created again with this id starts from trial 1. Other
        processes that have it open see that the store lost its records (an
        ERROR), and go on recording from the ids they had reached.

        Returns
        -------
        Deletion
            The ids deleted, the digests of every object the experiment's
            artifact records and cache entries referred to (the caller removes
            the files).

        Raises
        ------
        BackendError
            When the store cannot be written.
        """

    # -- moving experiments (issue 12) ---------------------------------------------------------
    @abstractmethod
    def load_settings(self) -> dict[str, str]:
        """Every setting of the experiment (see :meth:`save_setting`), by name.

        Exporting an experiment reads them all, whatever their names.
        """

    @abstractmethod
    def step_outputs(self) -> dict[str, str]:
        """Every step output hash of the purity check, by step input key (an export moves them all)."""

    @abstractmethod
    def import_starts(self, starts: Mapping[int, TrialStart]) -> None:
        """Record ``starts`` (running or killed trials of an exported experiment) under their own ids.

        For imports only: the trial id counter is not moved (the importer
        raises it past every imported id); a start whose trial is recorded
        is not written.

        Raises
        ------
        BackendError
            When the store cannot be written (nothing is written).
        """

    @abstractmethod
    def staging(self, experiment_id: str) -> "Backend":
        """Experiment ``experiment_id`` of this same store, where an import is written before :meth:`adopt`."""

    @abstractmethod
    def adopt(self, staging: "Backend") -> None:
        """Replace this experiment's records by those of ``staging`` (see :meth:`staging`) in one atomic step.

        Readers see the experiment as it was, or with every record of
        ``staging``; ``staging`` is gone afterwards. The local store copies
        the staged database in one transaction, Redis renames its keys in one
        Lua script, MongoDB renames its collection over this one.

        Raises
        ------
        BackendError
            When the store cannot be written (nothing is changed).
        """

    @abstractmethod
    def discard_stagings(self, prefix: str) -> list[str]:
        """Remove the staged experiments (see :meth:`staging`) whose ids start with ``prefix``; return their ids.

        What imports cut short (a killed process) left behind.
        """

    def _blobs_removed(self, digests: Sequence[str]) -> None:
        """Note that blobs this process may have sent are gone: writers send them again."""
        if digests:
            self._blobs_found_missing.difference_update(digests)
            self.generation += 1

    def _blobs_missing(self, batch: RecordBatch, digests: Sequence[str]) -> None:
        """Note that trials of ``batch``, just written, refer to blobs the store lacks.

        They were removed since the writer sent them (the trials using them
        were deleted): :attr:`generation` increases, so writers send them
        again. A blob that is never sent increases it once only.
        """
        self._blobs_found_missing.difference_update(blob.digest for blob in batch.blobs)
        new = set(digests) - self._blobs_found_missing
        if new:
            logger.info("blobs %s were removed from the store since they were sent: sending them again", sorted(new))
            self._blobs_found_missing.update(new)
            self.generation += 1

    def epoch(self) -> str | None:
        """A token of the store's records: it changes when the store loses them (None: no token).

        A reader holding records it read earlier reads them all again when the
        token changes (the dashboard does).

        Raises
        ------
        BackendError
            When the store cannot be read.
        """
        return None

    is_local = False
    """Whether the store lives on this machine's disk (processes elsewhere cannot reach it)."""

    def artifact_root(self) -> str | None:
        """Default location of this store's artifacts (a folder next to its data), if it has one.

        Server stores have none: their artifacts default to a folder of the
        user's data directory unless a location is given.
        """
        return None

    # -- settings -------------------------------------------------------------
    @abstractmethod
    def save_setting(self, name: str, value: str) -> None:
        """Attach the text ``value`` to the experiment under ``name``; the last write wins.

        Settings are small values of the experiment as a whole (the objective
        direction, ...), as texts the caller chooses (JSON). The settings of an
        experiment are never seen from another one.

        Parameters
        ----------
        name : str
            Name of the setting, not empty.
        value : str
            Its value, e.g. ``json.dumps("minimize")``.

        Raises
        ------
        TypeError
            When ``name`` or ``value`` is not a str (nothing is written).
        ValueError
            When ``name`` is empty (nothing is written).
        """

    @abstractmethod
    def load_setting(self, name: str) -> str | None:
        """The value last saved under ``name`` by :meth:`save_setting`.

        Parameters
        ----------
        name : str
            Name of the setting, not empty.

        Returns
        -------
        str or None
            The value, ``None`` when the setting was never saved.

        Raises
        ------
        TypeError
            When ``name`` is not a str.
        ValueError
            When ``name`` is empty.
        """

    # -- identity -------------------------------------------------------------
    @abstractmethod
    def reopen_arguments(self) -> tuple[Hashable, ...]:
        """Constructor arguments that open this same store in another process."""

    def close(self) -> None:
        """Release connections; the backend re-opens them when used again."""

    def __reduce__(self) -> tuple[Any, ...]:
        return reopen_backend, (type(self), self.reopen_arguments())

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and (
            self.reopen_arguments() == other.reopen_arguments()  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return hash((type(self), self.reopen_arguments()))


def describe_batch(batch: RecordBatch) -> str:
    """What ``batch`` records, for messages: ``"the record of trial 3"``, ``"a step's records of trial 3"``, …"""
    if batch.trials:
        return "the record of trial " + ", ".join(str(t.trial_id) for t in batch.trials)
    parts = (batch.metrics, batch.persisted, batch.cache_entries, batch.artifacts)
    trial_ids = sorted({record.trial_id for records in parts for record in records})
    if trial_ids:
        return "a step's records of trial " + ", ".join(map(str, trial_ids))
    return "a batch of step hashes and blobs"


def check_trial_id_count(count: object) -> int:
    """``count`` of :meth:`Backend.allocate_trial_ids` as an int, once checked.

    Raises
    ------
    ValueError
        When ``count`` is not a positive int (``True`` and ``2.0`` are not).
    """
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
        raise ValueError(
            f"count must be a positive int, the number of trial ids to reserve; got {count!r}. "
            "Pass an int of 1 or more, e.g. allocate_trial_ids(10)"
        )
    return int(count)


def check_starts(starts: Sequence[TrialStart]) -> list[TrialStart]:
    """The ``starts`` of :meth:`Backend.start_trials` as a list, once checked to be non-empty TrialStarts."""
    listed = list(starts)
    if not listed or not all(isinstance(start, TrialStart) for start in listed):
        raise ValueError(
            f"start_trials() takes a non-empty sequence of TrialStart records, got {starts!r}"
        )
    return listed


def trial_id_block(last: int, count: int) -> range:
    """The ``count`` consecutive trial ids ending with ``last``."""
    return range(last - count + 1, last + 1)


def check_setting_name(name: object) -> str:
    """``name`` of a setting, once checked: TypeError if not a str, ValueError if empty."""
    if not isinstance(name, str):
        raise TypeError(
            f"a setting name must be a str, got {type(name).__name__} {name!r}; "
            "name it with text, e.g. 'objective'"
        )
    if not name:
        raise ValueError("a setting name must not be empty; give it a name, e.g. 'objective'")
    return name


def check_setting(name: object, value: object) -> None:
    """Check the arguments of :meth:`Backend.save_setting`; raise as it documents."""
    check_setting_name(name)
    if not isinstance(value, str):
        raise TypeError(
            f"the value of setting {name!r} must be a str, got {type(value).__name__}; "
            "save a text, e.g. json.dumps(value)"
        )


_reopened: dict[tuple[int, type, tuple], Backend] = {}
_reopened_lock = threading.Lock()


def reopen_backend(kind: type[Backend], arguments: tuple[Hashable, ...]) -> Backend:
    """Open (once per process) the backend ``kind(*arguments)``; used by unpickling."""
    key = (os.getpid(), kind, arguments)
    with _reopened_lock:
        backend = _reopened.get(key)
        if backend is None:
            backend = _reopened[key] = kind(*arguments)
        return backend
