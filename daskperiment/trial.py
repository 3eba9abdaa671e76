"""Running one trial: fill the graph's placeholders, compute it, hand the outcome on."""

from __future__ import annotations

import sys
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable

import dask
from dask.base import get_scheduler
from dask.delayed import Delayed

from daskperiment import seeding
from daskperiment.context import TrialContext, close_buffer, open_buffer
from daskperiment.parameter import parameter_key_prefix
from daskperiment.step import trial_context_key

if TYPE_CHECKING:
    from daskperiment.experiment import Experiment


class _Literal:
    """A value placed in a graph as data, never mistaken for a key or a task."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _unbox(literal: _Literal) -> Any:
    return literal.value


_SCALARS = (int, float, bool, complex, bytes, type(None))


def as_graph_data(value: Any, graph: dict) -> Any:
    """``value`` as a graph node that dask will hand over as is.

    Scalars (and strings that are not keys) go in as data, which dask does not
    schedule; anything else (tuples look like tasks, lists and strings may
    hold keys) is boxed in a one-call task.
    """
    if type(value) in _SCALARS or (type(value) is str and value not in graph):
        return value
    return (_unbox, _Literal(value))


class TrialResult(Delayed):
    """The output of an ``@ex.result`` step: computing it runs and records one trial.

    It is a ``dask.delayed`` object whose :meth:`compute` runs the graph as a
    trial of its experiment; it can also be passed on to other steps.
    """

    __slots__ = ("_experiment",)

    def __init__(self, experiment: "Experiment", task: Delayed) -> None:
        super().__init__(task.key, task.dask)
        self._experiment = experiment

    def compute(self, seed: int | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """Run one trial and return the result of the ``@ex.result`` step.

        Parameters
        ----------
        seed : int, optional
            Seed for ``random`` and ``numpy.random``; defaults to the
            experiment's seed, else a generated one (logged and recorded).
        **kwargs
            ``scheduler`` (as for :func:`dask.compute`, e.g. ``"processes"``)
            and keyword arguments of that scheduler (e.g. ``num_workers``);
            with a ``dask.distributed`` client active the trial runs on it.

        Raises
        ------
        Exception
            Whatever a step raised: the trial is recorded as failed first.
        """
        return run_trial(self._experiment, self, seed, kwargs)

    def __repr__(self) -> str:
        return f"TrialResult({self.key!r})"


def run_trial(experiment: "Experiment", task: Delayed, seed: int | None, kwargs: dict) -> Any:
    """Compute ``task`` as a new trial of ``experiment`` and record it (also when it fails)."""
    graph = dict(task.__dask_graph__())
    parameters = experiment._parameters.resolve(experiment._parameters.names_in(graph))
    chosen_seed = seeding.choose_seed(seed, experiment.seed)
    code = experiment._code.snapshot()
    trial_id = experiment.backend.allocate_trial_id()
    context = TrialContext(experiment.id, trial_id, chosen_seed, uuid.uuid4().hex, experiment.backend)
    for name, value in parameters.items():
        graph[parameter_key_prefix(experiment.id) + name] = as_graph_data(value, graph)
    graph[trial_context_key(experiment.id)] = context  # plain data: never a key nor a task

    schedule, kwargs = _scheduler(task, kwargs)
    buffer = open_buffer(context.token)
    error: BaseException | None = None
    result: Any = None
    started = time.perf_counter()
    try:
        seeding.seed_everything(chosen_seed)
        result = schedule(graph, [task.key], **kwargs)[0]
    except BaseException as exc:  # recorded as a failed trial, then re-raised
        error = exc
    finally:
        elapsed = time.perf_counter() - started
        close_buffer(context.token)
    experiment._writer.write(
        context=context,
        parameters=parameters,
        result=result,
        error=error,
        process_time=elapsed,
        code=code,
        buffer=buffer,
    )
    if error is not None:
        raise error
    return result


_COMPUTE_ONLY_OPTIONS = ("optimize_graph", "traverse")


def _scheduler(task: Delayed, kwargs: dict[str, Any]) -> tuple[Callable, dict[str, Any]]:
    """The scheduler ``dask.compute(task, **kwargs)`` would use, and its own keyword arguments.

    A trial's graph is already minimal (it is the result step's graph with
    its placeholders filled), so it goes straight to the scheduler: dask's
    collection-level optimization would cost more than the steps of a small
    trial. Without ``dask.distributed`` imported no client can exist, so the
    look-up for one (which imports it, 0.4 s) is skipped.
    """
    options = {k: v for k, v in kwargs.items() if k not in _COMPUTE_ONLY_OPTIONS}
    scheduler = options.pop("scheduler", None)
    if scheduler is None and "distributed" not in sys.modules and not dask.config.get("scheduler", None):
        return dask.threaded.get, options
    return get_scheduler(scheduler=scheduler, collections=[task]), options
