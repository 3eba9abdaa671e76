"""Plain value objects that travel between an experiment and its store.

A store only ever receives and returns these objects; it never sees dask
graphs, parameters or experiments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Mapping, NamedTuple

from daskperiment.status import ENDED, FAILED, FINISHED, INTERRUPTED, KILLED, RUNNING, is_stale


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """Everything recorded about one finished trial.

    Attributes
    ----------
    trial_id : int
        Identifier allocated by the store, unique within the experiment.
    parameters : Mapping[str, Any]
        Parameter values the trial ran with, in definition order.
    result : Any
        Output of the ``@ex.result`` step (``None`` when the trial failed).
    result_type : str
        Qualified type name of ``result`` (empty when the trial failed).
    success : bool
        Whether the graph computed without raising.
    finished : float
        POSIX timestamp of the end of the trial.
    process_time : float
        Wall-clock seconds the computation took.
    description : str or None
        The error as ``ExceptionType(message)`` for a failed trial.
    seed : int or None
        Seed given to ``random`` and ``numpy.random`` before the trial.
    code_digest : str
        Digest of the code blob of the trial's steps.
    environment_digest : str or None
        Digest of the environment blob, ``None`` if it could not be captured.
    sweep_id : str or None
        Id of the sweep the trial belongs to, ``None`` for a trial run alone.
    worker_environment_digests : tuple of str
        Digests of the environment blobs of the dask worker processes the
        trial's steps ran in, where they differ from the client's
        (``environment_digest``); sorted, unique, empty when none differ.
    cached_steps : tuple of (str, int)
        Steps whose output was taken from the step cache instead of being
        computed, each with the id of the trial that computed it; in graph
        order, empty when every step ran.
    status : str
        How the trial ended: ``"finished"``, ``"failed"`` or ``"interrupted"``
        (see :mod:`daskperiment.status`). Given empty (a trial recorded before
        statuses), it follows from ``success``.
    """

    trial_id: int
    parameters: Mapping[str, Any]
    result: Any
    result_type: str
    success: bool
    finished: float
    process_time: float
    description: str | None
    seed: int | None
    code_digest: str
    environment_digest: str | None
    sweep_id: str | None = None
    worker_environment_digests: tuple[str, ...] = ()
    cached_steps: tuple[tuple[str, int], ...] = ()
    status: str = ""

    def __post_init__(self) -> None:
        if not self.status:
            object.__setattr__(self, "status", FINISHED if self.success else FAILED)
        elif (self.status, bool(self.success)) not in _ENDINGS:
            raise _status_error(self.trial_id, self.status, self.success)

    def blob_digests(self) -> set[str]:
        """Digests of the blobs the trial refers to: its code and environments."""
        digests = {self.code_digest, *self.worker_environment_digests}
        if self.environment_digest:
            digests.add(self.environment_digest)
        return digests


_ENDINGS = frozenset({(FINISHED, True), (FAILED, False), (INTERRUPTED, False)})
"""The (status, success) pairs a recorded trial may end with."""


def _status_error(trial_id: int, status: str, success: object) -> ValueError:
    return ValueError(
        f"trial {trial_id} cannot end with status {status!r} and success={success!r}: "
        f"a successful trial is {FINISHED!r}, another one {FAILED!r} or {INTERRUPTED!r}"
    )


@dataclass(slots=True)
class TrialColumns:
    """Trials as columns: one list per field, one entry per trial, in trial id order.

    What a history table is made of. A store reads its whole history into
    columns (see :meth:`daskperiment.backend.base.Backend.load_trial_columns`)
    without making a :class:`TrialRecord` per trial; :meth:`of` gives the
    columns of records. Each list holds, for each trial, the value of the
    :class:`TrialRecord` field of the same name (singular there); the
    digests of code and environments are left out.

    Attributes
    ----------
    trial_ids : list of int
    parameters : list of Mapping[str, Any]
    results : list
    result_types : list of str
    success : list of bool
    finished : list of float or None
        None for a trial that has not ended (a start shown in a history).
    process_times : list of float
    descriptions : list of str or None
    seeds : list of int or None
    sweep_ids : list of str or None
    cached_steps : list of tuple of (str, int)
    statuses : list of str
    """

    trial_ids: list[int]
    parameters: list[Mapping[str, Any]]
    results: list[Any]
    result_types: list[str]
    success: list[bool]
    finished: list[float | None]
    process_times: list[float]
    descriptions: list[str | None]
    seeds: list[int | None]
    sweep_ids: list[str | None]
    cached_steps: list[tuple[tuple[str, int], ...]]
    statuses: list[str]

    @classmethod
    def of(cls, trials: Sequence[TrialRecord]) -> "TrialColumns":
        """The columns of ``trials`` (records ordered by id)."""
        def field(name: str) -> list:  # by C-level attribute reads
            return list(map(attrgetter(name), trials))

        return cls(*map(field, _COLUMN_FIELDS))

    def __len__(self) -> int:
        return len(self.trial_ids)

    def merged(self, other: "TrialColumns") -> "TrialColumns":
        """The trials of both, in trial id order (``other``'s ids are not among this one's)."""
        mine, theirs = self._lists(), other._lists()
        if not self.trial_ids or not other.trial_ids or self.trial_ids[-1] < other.trial_ids[0]:
            return TrialColumns(*(a + b for a, b in zip(mine, theirs)))
        ids = self.trial_ids + other.trial_ids
        order = sorted(range(len(ids)), key=ids.__getitem__)
        return TrialColumns(*([(a + b)[i] for i in order] for a, b in zip(mine, theirs)))

    def _lists(self) -> tuple[list, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)


_COLUMN_FIELDS = (
    "trial_id", "parameters", "result", "result_type", "success", "finished", "process_time",
    "description", "seed", "sweep_id", "cached_steps", "status",
)
"""The TrialRecord fields of the columns of :class:`TrialColumns`, in its order."""


def ended_statuses(trial_ids: Sequence[int], statuses: Sequence[str], success: Sequence[bool]) -> list[str]:
    """The statuses of recorded trials, as their :class:`TrialRecord` would hold them.

    An empty status (a trial recorded before statuses) follows from
    ``success``: ``finished`` or ``failed``.

    Raises
    ------
    ValueError
        When a trial's status does not agree with its success (as :class:`TrialRecord` does).
    """
    ended = list(statuses)
    if "" in ended or None in ended:
        ended = [status or (FINISHED if ok else FAILED) for status, ok in zip(statuses, success)]
    if not set(ended) <= set(ENDED) or list(map(FINISHED.__eq__, ended)) != list(map(bool, success)):
        for trial_id, status, ok in zip(trial_ids, ended, success):
            if (status, bool(ok)) not in _ENDINGS:
                raise _status_error(trial_id, status, ok)
    return ended


@dataclass(frozen=True, slots=True)
class TrialStart:
    """A trial as recorded when it starts, until the record of its end replaces it.

    Stores keep it under the trial's id (allocated with it, see
    :meth:`daskperiment.backend.base.Backend.start_trials`).

    Attributes
    ----------
    parameters : Mapping[str, Any]
        Parameter values the trial runs with.
    seed : int or None
        Its seed.
    started : float
        POSIX time it started.
    heartbeat : float
        POSIX time its process last marked it alive (its start at first).
    interval : float
        Seconds between the heartbeats of its process.
    process : str
        The process running it: host and process id.
    sweep_id : str or None
        The sweep it belongs to.
    """

    parameters: Mapping[str, Any]
    seed: int | None
    started: float
    heartbeat: float
    interval: float
    process: str
    sweep_id: str | None = None

    def status(self, now: float) -> str:
        """``"running"``, or ``"killed"`` once its heartbeat is stale at POSIX time ``now``."""
        return KILLED if is_stale(self.heartbeat, self.interval, now) else RUNNING


class MetricPoint(NamedTuple):
    """One value of a metric at one epoch of one trial.

    A named tuple rather than a dataclass: trials save metrics by the hundred
    thousand, and tuples are several times cheaper to make and to read.
    """

    trial_id: int
    key: str
    epoch: int
    value: float
    """The value as saved: an ``int`` stays an ``int`` (see :attr:`MetricSeries.integer`)."""
    time: float | None = None
    """POSIX time (UTC seconds) of the ``save_metric`` call; None when unknown (a point saved
    before daskperiment recorded times)."""


@dataclass(frozen=True, slots=True)
class PersistedValue:
    """The serialized output of an ``@ex.persist`` step in one trial."""

    trial_id: int
    step: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class StepOutput:
    """Hash of a step's output for one hash of its code and inputs (purity)."""

    input_key: str
    output_hash: str


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """The output of one step call, kept so that later trials load it instead of computing it.

    Attributes
    ----------
    key : str
        Cache key of the call: a hash of the step's code, of the cache keys of
        its upstream steps and of the parameter values (and seed) it used.
    step : str
        Name of the step.
    trial_id : int
        Trial that computed the output.
    size : int
        Size in bytes of the serialized output.
    payload : bytes or None
        The serialized output when the store holds it; ``None`` when it is in
        the artifact store (``location``), and in entries read without payload.
    location : str or None
        Digest of the serialized output in the artifact store, for outputs too
        large for the store; ``None`` when ``payload`` holds it.
    metrics : tuple of (str, int, float)
        Metric points the step saved when it computed the output, in order.
    created : float
        POSIX time the entry was written.
    last_used : float
        POSIX time the entry was last written or read for a trial (eviction
        removes the least recently used entries first).
    """

    key: str
    step: str
    trial_id: int
    size: int
    payload: bytes | None
    location: str | None
    metrics: tuple[tuple[str, int, float], ...]
    created: float
    last_used: float


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """One file a trial kept: where it sits in the artifact and its content's digest.

    Attributes
    ----------
    trial_id : int
        Trial that made the file.
    name : str
        Name of the artifact (``"weights"``, ``"output"``, ...); an artifact is
        one file or a folder of files.
    path : str
        Path of the file inside the artifact, with ``/`` separators; empty for
        an artifact that is a single file.
    digest : str
        BLAKE3 hash of the file's content (hexadecimal), its address in the artifact store.
    size : int
        Size of the file in bytes.
    step : str
        Step that made the file (``""`` for the trial's captured output).
    """

    trial_id: int
    name: str
    path: str
    digest: str
    size: int
    step: str = ""


@dataclass(frozen=True, slots=True)
class Blob:
    """Content stored once under its own digest (code texts, environments)."""

    digest: str
    content: bytes

    @classmethod
    def of(cls, content: bytes) -> "Blob":
        """Make the blob of ``content``, addressed by its SHA-256 digest."""
        return cls(hashlib.sha256(content).hexdigest(), content)


# -- notes, tags and deletions (issue 12) ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class Annotation:
    """The note and tags people gave one trial.

    Attributes
    ----------
    trial_id : int
        The trial.
    note : str
        Free text, ``""`` when there is none.
    tags : frozenset of str
        Its tags, empty when there is none.
    """

    trial_id: int
    note: str = ""
    tags: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.note or self.tags)


@dataclass(frozen=True, slots=True)
class AnnotationEdit:
    """A change of one trial's note and tags, applied atomically to what the store holds.

    Attributes
    ----------
    trial_id : int
        The trial.
    note : str or None
        The new note (``""`` clears it); None leaves it as it is.
    tags : frozenset of str or None
        Tags replacing all of the trial's tags; None keeps them.
    add_tags, remove_tags : frozenset of str
        Tags added, then tags removed (after ``tags`` replaced them, if given).
    """

    trial_id: int
    note: str | None = None
    tags: frozenset[str] | None = None
    add_tags: frozenset[str] = frozenset()
    remove_tags: frozenset[str] = frozenset()

    def apply(self, current: Annotation) -> Annotation:
        """The annotation ``current`` becomes with this edit."""
        tags = current.tags if self.tags is None else self.tags
        return Annotation(
            self.trial_id,
            current.note if self.note is None else self.note,
            frozenset((tags | self.add_tags) - self.remove_tags),
        )


@dataclass(frozen=True, slots=True)
class Deletion:
    """What a store removed when trials (or the whole experiment) were deleted.

    Attributes
    ----------
    trial_ids : tuple of int
        The trials removed (those asked for that were recorded), sorted.
    artifact_digests : tuple of str
        Digests of the artifact-store objects no remaining trial of the
        experiment records: the caller removes these files.
    cache_digests : tuple of str
        Digests of the large cached outputs (in the artifact store's ``cache``
        folder) no remaining cache entry uses; only when the experiment was deleted.
    """

    trial_ids: tuple[int, ...] = ()
    artifact_digests: tuple[str, ...] = ()
    cache_digests: tuple[str, ...] = ()


@dataclass(slots=True)
class RecordBatch:
    """Records written to a store in one atomic operation."""

    trials: list[TrialRecord] = field(default_factory=list)
    metrics: list[MetricPoint] = field(default_factory=list)
    persisted: list[PersistedValue] = field(default_factory=list)
    step_outputs: list[StepOutput] = field(default_factory=list)
    blobs: list[Blob] = field(default_factory=list)
    cache_entries: list[CacheEntry] = field(default_factory=list)
    artifacts: list[ArtifactRecord] = field(default_factory=list)

    def extend(self, other: "RecordBatch") -> None:
        """Append every record of ``other`` to this batch."""
        self.trials.extend(other.trials)
        self.metrics.extend(other.metrics)
        self.persisted.extend(other.persisted)
        self.step_outputs.extend(other.step_outputs)
        self.blobs.extend(other.blobs)
        self.cache_entries.extend(other.cache_entries)
        self.artifacts.extend(other.artifacts)

    def __bool__(self) -> bool:
        return bool(
            self.trials or self.metrics or self.persisted or self.step_outputs or self.blobs
            or self.cache_entries or self.artifacts
        )



class MetricSeries(Sequence[MetricPoint]):
    """The points of one metric, read back as columns (what stores return).

    A sequence of :class:`MetricPoint` ordered by trial, epoch, then write
    order; the columns themselves (numpy arrays) are what tables are built
    from, so reading 100,000 points makes no 100,000 Python objects.

    Parameters
    ----------
    key : str
        Metric key.
    trial_ids, epochs, values : array-like
        One entry per point: trial ids and epochs (int64), values (float64).
    integer : bool, default False
        Whether every value ever saved under ``key`` was an integer (tables
        then show the values as int64, as daskperiment 0.5 did).
    times : array-like, optional
        POSIX time of each point's ``save_metric`` call (float64), NaN where
        it is unknown; all NaN when not given.
    """

    __slots__ = ("key", "trial_ids", "epochs", "values", "integer", "times")

    def __init__(
        self, key: str, trial_ids: Any, epochs: Any, values: Any, integer: bool = False, times: Any = None
    ) -> None:
        import numpy as np

        self.key = key
        self.integer = integer
        self.trial_ids = np.asarray(trial_ids, dtype=np.int64)
        self.epochs = np.asarray(epochs, dtype=np.int64)
        self.values = np.asarray(values, dtype=np.float64)
        self.times = (
            np.full(len(self.values), np.nan) if times is None else np.asarray(times, dtype=np.float64)
        )

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return MetricPoint(
            int(self.trial_ids[index]), self.key, int(self.epochs[index]), float(self.values[index]),
            _known(float(self.times[index])),
        )

    def __iter__(self) -> Iterator[MetricPoint]:
        key = self.key
        for trial_id, epoch, value, when in zip(
            self.trial_ids.tolist(), self.epochs.tolist(), self.values.tolist(), self.times.tolist()
        ):
            yield MetricPoint(trial_id, key, epoch, value, _known(when))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def __repr__(self) -> str:
        return f"MetricSeries({self.key!r}, {len(self)} points)"


def _known(when: float) -> float | None:
    """A point's time as :class:`MetricPoint` holds it: None for NaN (unknown)."""
    return None if when != when else when
