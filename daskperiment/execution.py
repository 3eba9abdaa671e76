"""The tasks of a trial graph, as they run wherever the scheduler puts them.

Nothing here writes to a store: each task returns its output with its records
(:mod:`daskperiment.outcome`), and the trial's last task gathers them for the
process that started the trial. A step that raises does not stop the graph: its
outcome carries the error, the steps after it are skipped, and the trial's
outcome (made by its result step's task) reports it, with the records of every
step that ran.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask

from daskperiment import seeding, serialization
from daskperiment.arguments import fill
from daskperiment.context import (
    StepRecorder,
    on_origin_host,
    TrialContext,
    active_step,
    process_identity,
)
from daskperiment.envblob import environment_blob, environment_fingerprint
from daskperiment.console import CapturedOutput
from daskperiment.errors import ArtifactError, CacheError, PersistError, UntrackedComputeError
from daskperiment.metricpoints import clock
from daskperiment.outcome import StepOutcome, StepRecords, TrialOutcome
from daskperiment.parameter import UnavailableParameter
from daskperiment.purity import call_arguments, hash_call
from daskperiment.records import CacheEntry
from daskperiment.stepcache import StepCache

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StepSpec:
    """What a task needs to run one step: the function and how to record it.

    ``cache`` steps load their output from the step cache when their code and
    inputs match an earlier call's; ``seeded`` ones include the trial seed in
    that match (they draw random numbers).
    """

    name: str
    func: Callable
    persist: bool
    code_digest: str
    is_result: bool = False
    cache: bool = False
    seeded: bool = False


@dataclass(frozen=True, slots=True)
class StepTask:
    """A step call as a task: the step, its argument templates and their sources.

    ``sources`` has one entry per input: a parameter's name, or the position
    of the upstream outcome that fills it.
    """

    spec: StepSpec
    args: Any
    kwargs: Any
    sources: tuple[int | str, ...]

    def run(
        self, context: TrialContext, parameters: Mapping[str, Any], upstream: Sequence[StepOutcome],
        cache: "CacheSlot | None" = None,
    ) -> StepOutcome:
        """Run the step on the values of its inputs (keeping its output in ``cache`` if given)."""
        values = _input_values(self.sources, parameters, upstream)
        return run_step(self.spec, context, fill(self.args, values), fill(self.kwargs, values), cache)


@dataclass(frozen=True, slots=True)
class ForeignTask:
    """Plain dask work between steps (``dask.delayed`` functions, operators on parameters).

    ``graph`` is that work's own graph, cut at the step calls and parameters
    it uses; their keys in it (``boundary``) are filled with their values and
    the graph is computed in the task, with dask's synchronous scheduler.
    """

    graph: dict[Any, Any]
    key: Any
    boundary: tuple[Any, ...]
    sources: tuple[int | str, ...]

    def run(
        self, context: TrialContext, parameters: Mapping[str, Any], upstream: Sequence[StepOutcome],
        cache: "CacheSlot | None" = None,
    ) -> StepOutcome:
        """Compute the work on the values of its inputs (plain dask work is never cached)."""
        graph = dict(self.graph)
        for key, value in zip(self.boundary, _input_values(self.sources, parameters, upstream)):
            graph[key] = as_graph_data(value)
        try:
            return StepOutcome(output=dask.get(graph, self.key))
        except Exception as exc:
            return StepOutcome(error=exc)


@dataclass(frozen=True, slots=True)
class CacheSlot:
    """Where a cached step's task keeps its output: the cache, and the call's cache key."""

    cache: StepCache
    key: str


@dataclass(frozen=True, slots=True)
class Invocation:
    """A node of one trial (or of several trials sharing it): task, parameter values, context.

    ``cache`` is set for a cached step computed in this trial.
    """

    task: StepTask | ForeignTask
    parameters: Mapping[str, Any]
    context: TrialContext
    cache: CacheSlot | None = None


def execute(invocation: Invocation, upstream: list[StepOutcome]) -> StepOutcome:
    """The function of every node's task: skip it if an input failed, else run it."""
    return _run(invocation.task, invocation.context, invocation.parameters, upstream, invocation.cache)


def _run(
    task: StepTask | ForeignTask, context: TrialContext, parameters: Mapping[str, Any],
    upstream: list[StepOutcome], cache: CacheSlot | None = None,
) -> StepOutcome:
    failed = next((outcome for outcome in upstream if outcome.error is not None), None)
    if failed is not None:
        return StepOutcome(error=failed.error)
    return task.run(context, parameters, upstream, cache)


def load_cached(cache: StepCache, entry: CacheEntry, persist: bool, output: bool) -> StepOutcome:
    """The task of a step found in the cache: its output (if ``output``) and copied records.

    The records are those of the trial that computed it: its metrics, and the
    persisted value of an ``@ex.persist`` step.
    """
    records = cached_records(entry)
    started = time.perf_counter()
    try:
        payload = cache.payload(entry)
        value = cache.output(payload, entry) if output else None
    except CacheError as exc:
        return StepOutcome(error=exc, records=records)
    records.persisted = payload if persist else None
    records.duration = time.perf_counter() - started
    return StepOutcome(output=value, records=records)


def cached_records(entry: CacheEntry) -> StepRecords:
    """The records of a step taken from the cache, before its payload is read.

    Its metric points are those the step saved in the trial that computed
    it, with the time they are taken now (when this trial got them).
    """
    now = clock()
    return StepRecords(
        entry.step, metrics=[(key, epoch, value, now) for key, epoch, value in entry.metrics],
        cached_from=entry.trial_id,
    )


def records_of(outcome: StepOutcome) -> StepRecords | None:
    """A step's records without its output (what crosses the cluster to the trial's last task)."""
    return outcome.records


def execute_result(
    trial_id: int, invocation: Invocation, upstream: list[StepOutcome],
    parts: list[StepOutcome | StepRecords | None],
) -> TrialOutcome:
    """The function of a trial's result step: run it, and gather the trial's outcome.

    ``parts`` are the outcomes (or, sent apart on a cluster, the records) of
    every other step of the trial, all of them upstream of the result.
    """
    return gather_trial(trial_id, execute(invocation, upstream), parts)


@dataclass(frozen=True, slots=True)
class TrialChain:
    """A trial whose steps can only run one after the other, as one task.

    ``upstream[i]`` are the positions of the inputs of ``tasks[i]`` among the
    tasks before it; the last task is the result step's. Every step runs with
    the trial's ``parameters`` and ``context``.
    """

    trial_id: int
    tasks: tuple[StepTask | ForeignTask, ...]
    upstream: tuple[tuple[int, ...], ...]
    parameters: Mapping[str, Any]
    context: TrialContext


def execute_chain(chain: TrialChain) -> TrialOutcome:
    """The one task of a :class:`TrialChain`: run each step as its own task would, then gather.

    An input that failed skips a step, as in a graph of a task per step; the
    steps run in the only order any scheduler could run them. A step's
    output is let go once the last step taking it has run, as a scheduler
    lets go of a task's result (a large data set loaded by the first step is
    not held while the last one trains).
    """
    last_use = {i: j for j, inputs in enumerate(chain.upstream) for i in inputs}
    outcomes: list[StepOutcome] = []
    for j, (task, inputs) in enumerate(zip(chain.tasks, chain.upstream)):
        outcomes.append(_run(task, chain.context, chain.parameters, [outcomes[i] for i in inputs]))
        for i in inputs:
            if last_use[i] == j:
                outcomes[i].output = None
    root = outcomes.pop()
    return gather_trial(chain.trial_id, root, outcomes)


def gather_trial(
    trial_id: int, root: StepOutcome, parts: Sequence[StepOutcome | StepRecords | None]
) -> TrialOutcome:
    """A trial's outcome: its result step's ``root`` outcome with the records of ``parts``."""
    steps = [part.records if isinstance(part, StepOutcome) else part for part in parts]
    steps.append(root.records)
    return TrialOutcome(
        trial_id=trial_id,
        result=root.output if root.error is None else None,
        error=root.error,
        steps=[records for records in steps if records is not None],
    )


def _input_values(
    sources: tuple[int | str, ...], parameters: Mapping[str, Any], upstream: Sequence[StepOutcome]
) -> list[Any]:
    return [
        parameters[source] if isinstance(source, str) else upstream[source].output
        for source in sources
    ]


def run_step(
    spec: StepSpec, context: TrialContext, args: tuple, kwargs: dict[str, Any],
    cache: CacheSlot | None = None,
) -> StepOutcome:
    """Run one step of a trial and return its output with what it recorded.

    Exceptions are caught into the outcome (``KeyboardInterrupt`` and other
    non-``Exception`` errors propagate). A cached step is seeded on its own,
    whatever ran before it: from its cache key (its draws follow from its code
    and inputs, as its output must), or for a ``seeded`` step from the trial
    seed and its name; its output is kept in the cache as soon as it returns.
    """
    records = StepRecords(spec.name)
    records.environment, records.environment_blob = worker_environment(context)
    if cache is not None and not spec.seeded:
        # its randomness follows from its inputs (the cache key), as its output must
        seeding.seed_everything(seeding.step_seed(int(cache.key[:8], 16), spec.name))
    elif context.reseed or spec.cache or context.origin != process_identity():
        seeding.seed_everything(seeding.step_seed(context.seed, spec.name))
    recorder = StepRecorder(context, spec.name)
    started = time.perf_counter()
    reset = active_step.set(recorder)
    try:
        with CapturedOutput() as printed:
            output = spec.func(*args, **kwargs)
        if spec.persist:
            records.persisted = _persisted(spec.name, output)
    except Exception as exc:
        _finish(records, recorder, started, printed)
        return StepOutcome(error=_kept_anyway(records, recorder, exc), records=records)
    finally:
        active_step.reset(reset)
    records.call = hash_call(
        spec.name, spec.code_digest, args, kwargs, output, call_arguments(args, kwargs),
        context.seed if context.seed_given else None,
    )
    _finish(records, recorder, started, printed)
    if recorder.artifacts is not None:
        try:
            records.artifacts = recorder.artifacts.collect()
        except ArtifactError as exc:
            return StepOutcome(error=exc, records=records)
    if cache is not None:
        _keep(spec, context, cache, output, records)
    return StepOutcome(output=output, records=records)


def _kept_anyway(records: StepRecords, recorder: StepRecorder, error: Exception) -> Exception:
    """Keep the artifacts of a step that failed (logs, checkpoints); return the step's error."""
    if recorder.artifacts is not None:
        try:
            records.artifacts = recorder.artifacts.collect()
        except ArtifactError as exc:
            logger.warning("the artifacts of failed step %s were not kept: %s", records.step, exc)
    return error


def _keep(
    spec: StepSpec, context: TrialContext, cache: CacheSlot, output: Any, records: StepRecords
) -> None:
    """Keep a cached step's output: written now, or sent to the client when it cannot be."""
    entry = cache.cache.entry(
        cache.key, spec.name, context.trial_ids[0], output, records.persisted, records.metrics
    )
    if entry is None:
        return
    if cache.cache.backend.is_local and not on_origin_host(context):
        records.cache_entry = entry  # this machine cannot reach a local store: the client writes it
    else:
        cache.cache.store(entry)  # written now: a trial killed later still leaves it


def _finish(records: StepRecords, recorder: StepRecorder, started: float, printed: list[str]) -> None:
    records.duration = time.perf_counter() - started
    records.metrics = recorder.metrics
    if recorder.stream is not None:  # its points were written while it ran: no more from now on
        records.flushed = recorder.stream.release(recorder)
    records.output = "".join(printed)


def _persisted(step: str, output: Any) -> bytes:
    try:
        return serialization.dumps(output)
    except TypeError as exc:
        raise PersistError(
            f"the output of persisted step {step!r} cannot be stored: {exc}. Return a value "
            "pickle or cloudpickle can serialize, or decorate the step with @ex instead of "
            "@ex.persist"
        ) from None


def dry_run(call: Any, *args: Any, **kwargs: Any) -> Any:
    """The task of a step call's own ``dask.delayed`` graph: run it, record nothing.

    That graph is computed when an intermediate step is computed on its own,
    or by plain dask code; a trial never computes it.

    Raises
    ------
    UntrackedComputeError
        For an ``@ex.result`` step: its computation must be a recorded trial.
    ParameterUndefinedError
        When run in a process that does not hold the parameters' values.
    """
    spec: StepSpec = call.spec
    if spec.is_result:
        raise UntrackedComputeError(
            f"the @ex.result step {spec.name!r} was computed by dask itself (dask.compute, "
            "client.compute, persist), which records no trial: call result.compute() or "
            "ex.run(result, ...) to run a trial, ex.submit(result, ...) to run one without "
            "waiting, or ex.sweep(result, ...) for many"
        )
    for value in itertools.chain(args, kwargs.values()):
        if isinstance(value, UnavailableParameter):
            raise value.error()
    reset = active_step.set(StepRecorder(None))
    try:
        return spec.func(*args, **kwargs)
    finally:
        active_step.reset(reset)


class _Literal:
    """A value placed in a graph as data, never mistaken for a key or a task."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _unbox(literal: _Literal) -> Any:
    return literal.value


_SCALARS = (int, float, bool, complex, bytes, type(None))


def as_graph_data(value: Any) -> Any:
    """``value`` as a graph node that dask hands over as is.

    Scalars go in as data; anything else (tuples look like tasks, lists and
    strings may hold keys) is boxed in a one-call task.
    """
    if type(value) in _SCALARS:
        return value
    return (_unbox, _Literal(value))


# -- where a step runs ---------------------------------------------------------------
_sent_lock = threading.Lock()
_sent: set[tuple[str, str]] = set()


def worker_environment(context: TrialContext) -> tuple[str | None, bytes | None]:
    """Digest of this process's environment if it is not the trial starter's, with the blob once.

    The environment is captured once per process (and not at all where the
    fingerprint matches the starter's). Its blob travels with the first step
    records of each client session; later records carry the digest only.
    """
    if environment_fingerprint() == context.environment:
        return None, None
    from daskperiment.collector import environment_future

    blob = environment_blob(environment_future().result())
    with _sent_lock:
        first = (context.session, blob.digest) not in _sent
        _sent.add((context.session, blob.digest))
    return blob.digest, blob.content if first else None
