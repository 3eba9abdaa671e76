"""Running one trial: fill the graph's placeholders, compute it, hand the outcome on."""

from __future__ import annotations

import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

import dask
from dask.delayed import Delayed

from daskperiment import seeding
from daskperiment.parameter import parameter_key_prefix
from daskperiment.context import TrialContext, close_buffer, open_buffer
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


class _FilledGraph:
    """A trial's graph with its placeholders filled: a minimal dask collection."""

    def __init__(self, graph: dict, key: Any) -> None:
        self._graph = graph
        self._key = key

    def __dask_graph__(self) -> dict:
        return self._graph

    def __dask_keys__(self) -> list:
        return [self._key]

    def __dask_postcompute__(self) -> tuple:
        return _first, ()

    def __dask_tokenize__(self) -> Any:
        return self._key

    __dask_scheduler__ = staticmethod(dask.threaded.get)

    @staticmethod
    def __dask_optimize__(graph: dict, keys: list, **kwargs: Any) -> dict:
        return graph


def _first(results: list) -> Any:
    return results[0]


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
            Passed to :func:`dask.compute` (e.g. ``scheduler="processes"``);
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

    if "scheduler" not in kwargs and "distributed" not in sys.modules and not dask.config.get(
        "scheduler", None
    ):
        # No dask.distributed client can exist: skip dask's look-up for one,
        # which imports distributed (0.4 s) on the first computation.
        kwargs = {**kwargs, "scheduler": dask.threaded.get}
    buffer = open_buffer(context.token)
    error: BaseException | None = None
    result: Any = None
    started = time.perf_counter()
    try:
        seeding.seed_everything(chosen_seed)
        result = dask.compute(_FilledGraph(graph, task.key), **kwargs)[0]
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

