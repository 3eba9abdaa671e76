"""Where a running step finds its trial: the trial context and the step recorder.

A :class:`TrialContext` is placed in the graph of every trial and reaches each
step as an argument, so steps know their trial wherever they run (a thread of
this process or a dask worker process). While a step runs, its
:class:`StepRecorder` is the active one in its thread (a context variable), so
``save_metric`` and ``current_trial_id`` never mix two concurrent trials.
"""

from __future__ import annotations

import contextvars
import os
import reprlib
import threading
from dataclasses import dataclass, field
from typing import Any

from daskperiment.backend.base import Backend
from daskperiment.errors import TrialIDNotFoundError
from daskperiment.records import MetricPoint, RecordBatch


@dataclass(frozen=True, slots=True)
class TrialContext:
    """What every step of one trial is told about it.

    Attributes
    ----------
    experiment_id : str
        Id of the experiment.
    trial_id : int
        Id of the running trial.
    seed : int
        Seed of the trial.
    token : str
        Unique id of this run, naming its in-process :class:`TrialBuffer`.
    backend : Backend
        Store of the experiment: steps running in another process write to it.
    """

    experiment_id: str
    trial_id: int
    seed: int
    token: str
    backend: Backend


@dataclass(slots=True)
class TrialBuffer:
    """Records of steps that ran in the process that started the trial."""

    records: RecordBatch = field(default_factory=RecordBatch)
    step_calls: list = field(default_factory=list)
    pid: int = field(default_factory=os.getpid)
    lock: threading.Lock = field(default_factory=threading.Lock)


_live_buffers: dict[str, TrialBuffer] = {}


def open_buffer(token: str) -> TrialBuffer:
    """Start buffering the records of the trial run ``token`` in this process."""
    buffer = _live_buffers[token] = TrialBuffer()
    return buffer


def close_buffer(token: str) -> TrialBuffer:
    """Stop buffering for ``token`` and return what was buffered."""
    return _live_buffers.pop(token)


def local_buffer(context: TrialContext) -> TrialBuffer | None:
    """The buffer of the trial if it was started by this very process, else None."""
    buffer = _live_buffers.get(context.token)
    if buffer is None or buffer.pid != os.getpid():  # a forked worker sees a stale copy
        return None
    return buffer


class StepRecorder:
    """Collects what one running step saves (metrics) for its trial."""

    __slots__ = ("context", "metrics")

    def __init__(self, context: TrialContext | None) -> None:
        self.context = context
        self.metrics: list[tuple[str, int, float]] = []

    def metric_points(self) -> list[MetricPoint]:
        """The saved metrics as records of the trial (none in a dry run)."""
        if self.context is None:
            return []
        trial_id = self.context.trial_id
        return [MetricPoint(trial_id, key, epoch, value) for key, epoch, value in self.metrics]


active_step: contextvars.ContextVar[StepRecorder] = contextvars.ContextVar("daskperiment_step")


def current_context(experiment_id: str, what: str) -> TrialContext:
    """The context of the trial running the current step, or a clear error.

    Parameters
    ----------
    experiment_id : str
        Experiment asking; a step of another experiment does not count.
    what : str
        What needs the trial, for the error message.
    """
    recorder = active_step.get(None)
    context = recorder.context if recorder is not None else None
    if context is None or context.experiment_id != experiment_id:
        raise TrialIDNotFoundError(
            f"{what} is only available inside a step of experiment {experiment_id!r} while a "
            "trial runs (a .compute() of an @ex.result step); outside of one, use ex.trial_id "
            "for the last recorded trial"
        )
    return context


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 6


def describe_arguments(args: tuple, kwargs: dict[str, Any], limit: int = 200) -> str:
    """A short, readable rendering of call arguments for log messages.

    Containers are abbreviated as they are rendered (``reprlib``), so a large
    argument costs no more than a small one.
    """
    parts = [_short.repr(a) for a in args] + [f"{k}={_short.repr(v)}" for k, v in kwargs.items()]
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."
