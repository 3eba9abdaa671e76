"""Where a running step finds its trial: the trial context and the step recorder.

A :class:`TrialContext` travels inside every task of a trial, so a step knows
its trial wherever it runs (a thread of this process, a process of the
``"processes"`` scheduler, a ``dask.distributed`` worker). While a step runs,
its :class:`StepRecorder` is the active one in its thread (a context
variable), so ``save_metric`` and ``current_trial_id`` never mix two trials.
"""

from __future__ import annotations

import contextvars
import os
import platform
import reprlib
from dataclasses import dataclass
from typing import Any

from daskperiment.errors import TrialIDNotFoundError

SavedPoint = tuple[str, int, float, float]
"""A metric point as a step saves it: key, epoch, value (an int stays an int) and the POSIX
time of the ``save_metric`` call."""


@dataclass(frozen=True, slots=True)
class TrialContext:
    """What a step of a trial is told about it.

    Attributes
    ----------
    experiment_id : str
        Id of the experiment.
    trial_ids : tuple of int
        The trials this step belongs to: one, or several when a sweep shares
        the step between trials with the same inputs.
    seed : int
        Seed of the trial(s).
    origin : str
        The process that started the trial (host and process id).
    environment : str
        Fingerprint of that process's environment (see :mod:`daskperiment.execution`).
    session : str
        Id of the client session: workers send their environment once per session.
    reseed : bool
        Seed ``random`` and ``numpy.random`` at the start of each step (sweeps,
        where shared steps must not depend on what ran before them).
    seed_given : bool
        Whether the seed was asked for (given, the experiment's default, or a
        sweep's) rather than generated for the trial: only then is it part of
        the inputs the purity check compares.
    """

    experiment_id: str
    trial_ids: tuple[int, ...]
    seed: int
    origin: str
    environment: str
    session: str
    reseed: bool = False
    seed_given: bool = True

    @property
    def trial_id(self) -> int:
        """The id of the one trial this step belongs to.

        Raises
        ------
        TrialIDNotFoundError
            When a sweep shares the step between several trials.
        """
        if len(self.trial_ids) != 1:
            raise TrialIDNotFoundError(
                f"this step is shared by trials {', '.join(map(str, self.trial_ids))} of a sweep "
                "(same code and inputs), so it has no single trial id: read ex.current_trial_id "
                "in the @ex.result step, or run the sweep with share=False"
            )
        return self.trial_ids[0]


_identity: tuple[int, str] = (0, "")
"""This process's id and identity (another id: a forked child, whose identity is made anew)."""


def process_identity() -> str:
    """This process, as named in a trial context: host and process id."""
    global _identity
    pid = os.getpid()
    if _identity[0] != pid:
        _identity = (pid, f"{platform.node()}:{pid}")
    return _identity[1]


def on_origin_host(context: TrialContext) -> bool:
    """Whether this process runs on the machine that started the trial."""
    return context.origin.rsplit(":", 1)[0] == platform.node()


class StepRecorder:
    """Collects what one running step saves (metrics, artifacts) for its trial(s).

    ``metrics`` holds the points the step saved, in order, as
    ``(key, epoch, value, time)`` (:data:`SavedPoint`).
    ``artifacts`` is set by the first artifact the step keeps (a
    :class:`daskperiment.capture.StepArtifacts`); ``stream`` by the first
    metric point, when the points are written while the step runs (a
    :class:`daskperiment.metricstream.MetricStream`, which is told when the
    step ends).
    """

    __slots__ = ("context", "step", "metrics", "artifacts", "stream")

    def __init__(self, context: TrialContext | None, step: str = "") -> None:
        self.context = context
        self.step = step
        self.metrics: list[SavedPoint] = []
        self.artifacts: Any = None
        self.stream: Any = None


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
            "Current Trial ID only exists during a trial execution: "  # 0.5's words, then ours
            f"{what} is only available inside a step of experiment {experiment_id!r} while a "
            "trial runs (a .compute() of an @ex.result step); outside of one, use ex.trial_id "
            "for the last recorded trial"
        )
    return context


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 6
_NUMBERS = frozenset({int, float, bool, type(None)})
_LONGEST_INT = 10**30  # ints reprlib renders whole (it abbreviates those of over 40 characters)


def _only_short_numbers(args: tuple, kwargs: dict[str, Any]) -> bool:
    """Whether ``reprlib`` would render these arguments as ``repr`` does (few numbers, short keys)."""
    if len(args) > _short.maxtuple or len(kwargs) > _short.maxdict:
        return False
    values = (*args, *kwargs.values())
    return all(
        type(value) in _NUMBERS and (type(value) is not int or -_LONGEST_INT < value < _LONGEST_INT)
        for value in values
    ) and all(type(name) is str and len(name) < 50 and name.isidentifier() for name in kwargs)


def describe_arguments(args: tuple, kwargs: dict[str, Any], limit: int = 200) -> str:
    """A short, readable rendering of call arguments for log messages, as 0.5 wrote them.

    ``args: (1, 2), kwargs: {'k': 3}``; containers are abbreviated as they are
    rendered (``reprlib``), so a large argument costs no more than a small one.
    A few numbers (the common case, on the path of every step) are rendered
    directly, as ``reprlib`` renders them.
    """
    if _only_short_numbers(args, kwargs):
        shown = ", ".join(f"{name!r}: {kwargs[name]!r}" for name in sorted(kwargs))
        text = f"args: {tuple(args)!r}, kwargs: {{{shown}}}"
    else:
        text = f"args: {_short.repr(tuple(args))}, kwargs: {_short.repr(dict(kwargs))}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
