"""What the tasks of a trial hand back: outputs with their records, never written by workers.

A step's task returns a :class:`StepOutcome`: its output (for the steps after
it) and its :class:`StepRecords` (metrics, persisted value, purity hashes,
environment). The trial's last task gathers them into a
:class:`TrialOutcome`, which reaches the process that started the trial with
the result, over the scheduler's own channels; only that process writes to the
store. A task re-run by the scheduler (a worker died) returns a new outcome
and leaves nothing behind, so nothing is recorded twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daskperiment.capture import KeptFile
from daskperiment.context import SavedPoint
from daskperiment.purity import StepCall
from daskperiment.records import CacheEntry


@dataclass(slots=True)
class StepRecords:
    """What one run of one step produced besides its output.

    Attributes
    ----------
    step : str
        Name of the step.
    metrics : list of (key, epoch, value, time)
        Metric points saved by the step, in order, each with the POSIX time
        it was saved (for a step loaded from the cache: the time it was loaded).
    persisted : bytes or None
        Serialized output of an ``@ex.persist`` step that finished.
    call : StepCall or None
        Hashes of the step's code, inputs and output (purity check).
    environment : str or None
        Digest of the environment of the worker process that ran the step,
        None when it is the environment of the process that started the trial.
    environment_blob : bytes or None
        That environment (JSON) the first time the worker sends it in a session.
    duration : float
        Seconds the step took.
    cached_from : int or None
        For an output loaded from the step cache: the trial that computed it
        (``metrics`` and ``persisted`` are then that trial's).
    artifacts : list of KeptFile
        Files the step kept (uploaded to the artifact store).
    output : str
        What the step printed on standard output and error.
    cache_entry : CacheEntry or None
        The step's new cache entry when the process that ran it could not
        write it (a local store on another machine): the client writes it.
    flushed : int
        How many of ``metrics`` (the first ones) were written while the step
        ran (see :mod:`daskperiment.metricstream`); the trial's record writes the others.
    """

    step: str
    metrics: list[SavedPoint] = field(default_factory=list)
    persisted: bytes | None = None
    call: StepCall | None = None
    environment: str | None = None
    environment_blob: bytes | None = None
    duration: float = 0.0
    cached_from: int | None = None
    artifacts: list[KeptFile] = field(default_factory=list)
    output: str = ""
    cache_entry: CacheEntry | None = None
    flushed: int = 0


@dataclass(slots=True)
class StepOutcome:
    """The result of a step's task: its output, or the error that stopped it.

    Attributes
    ----------
    output : Any
        What the step returned (None when it failed or was skipped).
    error : BaseException or None
        What the step (or, for a skipped step, the failed step before it) raised.
    records : StepRecords or None
        What the step saved; None for a step skipped because an earlier one failed.
    """

    output: Any = None
    error: BaseException | None = None
    records: StepRecords | None = None


@dataclass(slots=True)
class TrialOutcome:
    """Everything a trial's computation produced, as the writer records it.

    Attributes
    ----------
    trial_id : int
        Id of the trial.
    result : Any
        Output of the ``@ex.result`` step (None when the trial failed).
    error : BaseException or None
        The first error raised by a step, None for a successful trial.
    steps : list of StepRecords
        Records of every step of the trial that ran, in graph order.
    """

    trial_id: int
    result: Any = None
    error: BaseException | None = None
    steps: list[StepRecords] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Seconds spent in the trial's steps (shared steps counted in full)."""
        return sum(step.duration for step in self.steps)

    def release(self) -> None:
        """Drop the result and records once written (a sweep keeps only what it still needs)."""
        self.result = None
        self.steps = []
