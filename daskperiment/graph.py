"""The calls of an experiment's steps, and the dask graphs of its trials.

Calling a step records a :class:`StepCall`: the step, its arguments, and
what they come from (other step calls, parameters, other dask collections).
The call also has an ordinary ``dask.delayed`` graph, used when it is computed
outside a trial (a dry run), drawn or wrapped by plain dask code.

A trial does not compute that graph: :func:`trial_graph` builds a new one per
trial or sweep, in dask's documented graph format, whose keys belong to that
computation only (a dask cluster keeps and reuses results by key, so a key must
never name two different computations). In a sweep, a step call whose code,
inputs and seed are the same in several trials gets one key, built from those
inputs (content-addressed), so it is computed once for all of them.
"""

from __future__ import annotations

import itertools
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from dask.base import normalize_token
from dask.core import get_dependencies
from dask.delayed import Delayed, delayed

from daskperiment.arguments import template
from daskperiment.context import TrialContext
from daskperiment.execution import (
    CacheSlot,
    ForeignTask,
    Invocation,
    StepTask,
    TrialChain,
    as_graph_data,
    cached_records,
    dry_run,
    execute,
    execute_chain,
    execute_result,
    gather_trial,
    load_cached,
    records_of,
)
from daskperiment.hashing import combine, value_token
from daskperiment.outcome import StepOutcome
from daskperiment.records import CacheEntry
from daskperiment.stepcache import StepCache

if TYPE_CHECKING:
    from daskperiment.step import StepSpec


@dataclass(frozen=True, slots=True)
class ParameterInput:
    """An argument filled with the value of parameter ``name`` in each trial."""

    name: str


Input = Union["StepCall", "ForeignCall", ParameterInput]
ParameterLookup = Callable[[object], "str | None"]
"""Name of the experiment's parameter an object (or graph key) stands for, else None."""

_calls: "weakref.WeakValueDictionary[str, StepCall]" = weakref.WeakValueDictionary()


class StepCall:
    """One call of a step: the node of the experiment's graph it adds.

    Parameters
    ----------
    spec : StepSpec
        The step.
    args, kwargs : tuple, dict
        Arguments of the call; dask collections among them (other steps'
        outputs, parameters, any delayed value) are its inputs.
    parameter_of : callable
        Name of the experiment's parameter an object or graph key stands for.
    """

    __slots__ = ("spec", "key", "label", "inputs", "task", "graph", "_plan", "__weakref__")

    def __init__(
        self, spec: "StepSpec", args: tuple, kwargs: dict[str, Any], parameter_of: ParameterLookup
    ) -> None:
        self.spec = spec
        self.label = spec.name
        self.key = f"{spec.name}-{uuid.uuid4().hex}"
        inputs: list[Input] = []
        input_of = lambda value: _input_of(value, parameter_of)  # noqa: E731
        arguments = template(args, inputs, input_of), template(kwargs, inputs, input_of)
        self.inputs = tuple(inputs)
        self.task = StepTask(spec, *arguments, _sources(self.inputs))
        self.graph = delayed(dry_run, pure=False)(self, *args, dask_key_name=self.key, **kwargs).dask
        self._plan: Plan | None = None
        _calls[self.key] = self

    def plan(self) -> "Plan":
        """The calls this one depends on, in an order that computes each after its inputs."""
        if self._plan is None:
            self._plan = Plan.of(self)
        return self._plan

    def __repr__(self) -> str:
        return f"StepCall({self.key!r})"


class StepDelayed(Delayed):
    """The output of a step call: a ``dask.delayed`` object that knows its call."""

    __slots__ = ("_call",)

    def __init__(self, call: StepCall) -> None:
        super().__init__(call.key, call.graph)
        self._call = call

    @property
    def call(self) -> StepCall:
        """The step call this is the output of."""
        return self._call


class ForeignCall:
    """A dask collection other than steps and parameters among a step's arguments.

    Its graph, cut where it reaches the experiment's step calls and parameters
    (its inputs), runs as one task of the trial (:class:`ForeignTask`).
    """

    __slots__ = ("key", "label", "inputs", "task")

    def __init__(self, value: Any, parameter_of: ParameterLookup) -> None:
        collection = value if isinstance(value, Delayed) else delayed(value)
        graph = dict(collection.__dask_graph__())
        self.key = str(collection.key)
        self.label = self.key.rsplit("-", 1)[0] or "value"
        inputs: list[Input] = []
        boundary: list[Any] = []
        subgraph: dict[Any, Any] = {}
        pending, seen = [collection.key], set()
        while pending:
            key = pending.pop()
            if key in seen:
                continue
            seen.add(key)
            known = _calls.get(key) if isinstance(key, str) else None
            name = parameter_of(key)
            if known is not None or name is not None:
                inputs.append(known if known is not None else ParameterInput(name))  # type: ignore[arg-type]
                boundary.append(key)
                continue
            subgraph[key] = graph[key]
            pending.extend(get_dependencies(graph, key))
        self.inputs = tuple(inputs)
        self.task = ForeignTask(subgraph, collection.key, tuple(boundary), _sources(self.inputs))


Node = Union[StepCall, ForeignCall]


def _input_of(value: Any, parameter_of: ParameterLookup) -> Input:
    if isinstance(value, StepDelayed):
        return value.call
    name = parameter_of(value)
    if name is not None:
        return ParameterInput(name)
    return ForeignCall(value, parameter_of)


def _sources(inputs: Sequence[Input]) -> tuple[int | str, ...]:
    """Per input: its parameter's name, or its position among the call's upstream nodes."""
    positions = itertools.count()
    return tuple(
        item.name if isinstance(item, ParameterInput) else next(positions) for item in inputs
    )


@dataclass(frozen=True, slots=True, weakref_slot=True, eq=False)
class Plan:
    """The nodes a result depends on, inputs first, the result last.

    Attributes
    ----------
    nodes : tuple
        Step and foreign calls in a topological order.
    upstream : tuple of tuple of int
        For each node, the positions in ``nodes`` of its upstream nodes.
    parameters : tuple of str
        Names of the parameters the nodes use, in the order first met.
    """

    nodes: tuple[Node, ...]
    upstream: tuple[tuple[int, ...], ...]
    parameters: tuple[str, ...]

    @classmethod
    def of(cls, root: StepCall) -> "Plan":
        """The plan of everything ``root`` depends on."""
        order: list[Node] = []
        position: dict[int, int] = {}
        names: dict[str, None] = {}
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in position:
                continue
            if expanded:
                position[id(node)] = len(order)
                order.append(node)
                continue
            stack.append((node, True))
            for item in reversed(node.inputs):
                if isinstance(item, ParameterInput):
                    names[item.name] = None
                elif id(item) not in position:
                    stack.append((item, False))
        upstream = tuple(
            tuple(position[id(i)] for i in node.inputs if not isinstance(i, ParameterInput))
            for node in order
        )
        return cls(tuple(order), upstream, tuple(names))


@dataclass(frozen=True, slots=True)
class TrialSpec:
    """One trial to put in a graph: its id, parameter values and seed.

    ``seed_given`` is False when the seed was generated for the trial (see
    :class:`~daskperiment.context.TrialContext`).
    """

    trial_id: int
    parameters: Mapping[str, Any]
    seed: int
    seed_given: bool = True


@dataclass(frozen=True, slots=True)
class GraphSettings:
    """How to build a trial graph.

    Attributes
    ----------
    experiment_id, origin, environment, session : str
        What every step's :class:`TrialContext` says of where the trial started.
    share : bool
        Give identical step calls of several trials one content-addressed key.
    records_apart : bool
        Send each step's records to the trial's last task on their own (a
        cluster then moves records, not the steps' outputs, between workers).
    """

    experiment_id: str
    origin: str
    environment: str
    session: str
    share: bool = False
    records_apart: bool = False


@dataclass(frozen=True, slots=True)
class CacheUse:
    """The step cache in a trial graph: each node's cache key, and the entries found.

    Attributes
    ----------
    cache : StepCache
        Where cached steps keep their outputs.
    keys : mapping of int to list
        Per trial id, the cache key of each node of the plan (None for none).
    found : mapping of str to CacheEntry
        Entries stored under those keys, loaded instead of computing their
        step (empty when recomputation is forced).
    """

    cache: StepCache
    keys: Mapping[int, list[str | None]]
    found: Mapping[str, CacheEntry]

    def entries(self, plan: Plan, trial_id: int) -> list[CacheEntry | None]:
        """Per node of ``trial_id``: the entry its output is loaded from, None if it is computed."""
        return [
            self.found.get(key) if key is not None and _cached(node) else None
            for node, key in zip(plan.nodes, self.keys[trial_id])
        ]

    def loaded_keys(self, plan: Plan, node_keys: Mapping[int, Sequence[str]]) -> set[str]:
        """The graph keys (from ``node_keys``, per trial) of the nodes loaded from the cache."""
        return {
            node_keys[trial_id][index]
            for trial_id in self.keys
            for index, entry in enumerate(self.entries(plan, trial_id))
            if entry is not None
        }

    def slot(self, plan: Plan, trial_id: int, index: int) -> CacheSlot | None:
        """Where node ``index`` of ``trial_id`` keeps its output when computed, if cached."""
        key = self.keys[trial_id][index]
        return CacheSlot(self.cache, key) if key is not None and _cached(plan.nodes[index]) else None


def _cached(node: Node) -> bool:
    return isinstance(node, StepCall) and node.spec.cache


def _is_chain(plan: Plan) -> bool:
    """Whether each node of ``plan`` takes the one before it as an input (their order is then the only one)."""
    return all(index - 1 in upstream for index, upstream in enumerate(plan.upstream) if index)


def _needed(plan: Plan, entries: Sequence[CacheEntry | None]) -> tuple[set[int], set[int]]:
    """Nodes a trial puts in its graph, and the loaded ones whose output is used.

    Computed nodes are those the result needs, or a needed computed node
    needs; the inputs of a loaded node are not needed (a fully cached trial
    loads its result and runs nothing). Every loaded node is in the graph,
    for its records (metrics, persisted value), if not for its output.
    """
    last = len(plan.nodes) - 1
    needed, outputs = {last}, set()
    if entries[last] is not None:
        outputs.add(last)
    for index in range(last, -1, -1):
        if index in needed and entries[index] is None:
            needed.update(plan.upstream[index])
            outputs.update(u for u in plan.upstream[index] if entries[u] is not None)
    needed.update(index for index, entry in enumerate(entries) if entry is not None)
    return needed, outputs


@normalize_token.register(Invocation)
def _invocation_token(invocation: Invocation) -> tuple[Any, ...]:
    """What names a node of a trial graph when dask hashes the graph (``Client.get`` does, per trial).

    The trials it belongs to, in this client session, and the step it runs
    (name and code digest) or the plain dask work (its key) identify it:
    hashing it field by field pickled the step's function (milliseconds per
    trial on a cluster).
    """
    task = invocation.task
    what = (task.spec.name, task.spec.code_digest) if isinstance(task, StepTask) else (str(task.key),)
    context = invocation.context
    slot = invocation.cache.key if invocation.cache is not None else None
    return ("daskperiment.Invocation", *what, context.trial_ids, context.session, context.seed, slot)


@normalize_token.register(TrialChain)
def _chain_token(chain: TrialChain) -> tuple[Any, ...]:
    """What names a chained trial's task when dask hashes the graph: as for :func:`_invocation_token`."""
    what = tuple(
        (task.spec.name, task.spec.code_digest) if isinstance(task, StepTask) else (str(task.key),)
        for task in chain.tasks
    )
    context = chain.context
    return ("daskperiment.TrialChain", *what, context.trial_ids, context.session, context.seed)


@dataclass(frozen=True, slots=True)
class TrialGraph:
    """A graph computing trials, and the key of each trial's outcome (its result step's key)."""

    graph: dict[str, Any]
    trial_keys: dict[int, str]


def node_keys_of(plan: Plan, trials: Iterable[TrialSpec], token: str, share: bool) -> dict[int, list[str]]:
    """The key of every node of every trial; shared nodes get content-addressed keys.

    The result step is never shared: each trial computes its own.
    """
    keys: dict[int, list[str]] = {}
    last = len(plan.nodes) - 1
    for trial in trials:
        names: list[str] = []
        for index, node in enumerate(plan.nodes):
            if share and index != last:
                used = [trial.parameters[i.name] for i in node.inputs if isinstance(i, ParameterInput)]
                upstream = [names[u] for u in plan.upstream[index]]
                content = combine([node.key, *upstream, *(value_token(v, False) for v in used), str(trial.seed)])
                names.append(f"{node.label}-{content}-{token}")
            else:
                names.append(f"{node.label}-{token}-{trial.trial_id}-{index}")
        keys[trial.trial_id] = names
    return keys


def trial_graph(
    plan: Plan,
    trials: Sequence[TrialSpec],
    settings: GraphSettings,
    token: str | None = None,
    node_keys: dict[int, list[str]] | None = None,
    computed: Mapping[str, Any] | None = None,
    cache: CacheUse | None = None,
    fuse: bool = False,
) -> TrialGraph:
    """The graph computing ``trials``, each recorded on its own.

    Parameters
    ----------
    plan : Plan
        What each trial computes.
    trials : sequence of TrialSpec
        The trials.
    settings : GraphSettings
        Context of the steps, and how to build the graph.
    token : str, optional
        Part of every key that makes them unique to this computation.
    node_keys : dict, optional
        Keys from :func:`node_keys_of`. A sweep computes them for all its trials
        at once: a step's context then names every trial sharing it.
    computed : mapping, optional
        Outcomes of nodes already computed, by key: put in the graph as data.
    cache : CacheUse, optional
        The step cache: cached steps found there are loaded (and the steps
        only they need are left out), the others keep their outputs there.
    fuse : bool, default False
        Make each trial one task when its steps form a chain (see
        :func:`_is_chain`), uncached and unshared. Single
        trials do; sweeps keep a task per step (the steps of a sweep run in
        dask's order of those tasks, which their draws follow).
    """
    token = token or uuid.uuid4().hex
    if fuse and cache is None and not settings.share and _is_chain(plan):
        return _chain_graph(plan, trials, settings, token)
    if node_keys is None:
        node_keys = node_keys_of(plan, trials, token, settings.share)
    members: dict[str, list[int]] = {}
    for trial_id, keys in node_keys.items():
        for key in keys:
            members.setdefault(key, []).append(trial_id)
    graph: dict[str, Any] = {}
    trial_keys: dict[int, str] = {}
    last = len(plan.nodes) - 1
    # On a cluster, steps that do not feed the result directly send their records
    # on their own, so only records (not outputs) travel to the result's worker.
    apart = {i for i in range(last) if settings.records_apart and i not in plan.upstream[last]}
    everything = set(range(last + 1))
    with_output: set[str] = set()

    def invocation(index: int, trial: TrialSpec, key: str) -> Invocation:
        context = TrialContext(
            settings.experiment_id, tuple(members[key]), trial.seed, settings.origin,
            settings.environment, settings.session, settings.share, trial.seed_given,
        )
        slot = cache.slot(plan, trial.trial_id, index) if cache is not None else None
        return Invocation(plan.nodes[index].task, trial.parameters, context, slot)

    def loaded(index: int, entry: CacheEntry, output: bool) -> Any:
        persist = plan.nodes[index].spec.persist  # type: ignore[union-attr]
        if not (persist or output):
            return as_graph_data(StepOutcome(records=cached_records(entry)))
        return (load_cached, cache.cache, entry, persist, output)  # type: ignore[union-attr]

    for trial in trials:
        names = node_keys[trial.trial_id]
        entries = cache.entries(plan, trial.trial_id) if cache is not None else [None] * (last + 1)
        needed, outputs = _needed(plan, entries) if cache is not None else (everything, set())
        inline: dict[int, Any] = {}  # loaded steps whose records alone are used: no task of their own
        for index in sorted(needed - {last}):
            key = names[index]
            entry = entries[index]
            if entry is not None and index not in outputs and not plan.nodes[index].spec.persist:  # type: ignore[union-attr]
                inline[index] = loaded(index, entry, False)
                continue
            if key in graph and not (entry is not None and index in outputs and key not in with_output):
                continue  # shared with an earlier trial (which may not have used its output)
            if entry is not None and index in outputs:
                with_output.add(key)
            if entry is not None:  # loaded again rather than carried: a carried one may lack its output
                graph[key] = loaded(index, entry, index in outputs)
            elif computed is not None and key in computed:
                graph[key] = as_graph_data(computed[key])
            else:
                upstream = [names[u] for u in plan.upstream[index]]
                graph[key] = (execute, invocation(index, trial, key), upstream)
            if index in apart:
                graph[f"{key}-records"] = (records_of, key)
        parts = [
            inline[i] if i in inline else f"{names[i]}-records" if i in apart else names[i]
            for i in range(last)
            if i in needed
        ]
        root = trial_keys[trial.trial_id] = names[last]
        if entries[last] is not None:  # a loaded result: one task loads it and gathers the trial
            graph[root] = (gather_trial, trial.trial_id, loaded(last, entries[last], True), parts)
        else:
            upstream = [names[u] for u in plan.upstream[last]]
            graph[root] = (execute_result, trial.trial_id, invocation(last, trial, root), upstream, parts)
    return TrialGraph(graph, trial_keys)


def _chain_graph(plan: Plan, trials: Sequence[TrialSpec], settings: GraphSettings, token: str) -> TrialGraph:
    """The graph of trials whose steps form a chain (see :func:`_is_chain`): one task per trial.

    Its steps could only run one after the other, as separate tasks too: one
    task leaves the scheduler nothing to order or hand over between them.
    Trials share no step (each has its own keys).
    """
    last = len(plan.nodes) - 1
    tasks = tuple(node.task for node in plan.nodes)
    graph: dict[str, Any] = {}
    trial_keys: dict[int, str] = {}
    for trial in trials:
        key = f"{plan.nodes[last].label}-{token}-{trial.trial_id}-{last}"  # as node_keys_of names it
        context = TrialContext(
            settings.experiment_id, (trial.trial_id,), trial.seed, settings.origin,
            settings.environment, settings.session, False, trial.seed_given,
        )
        graph[key] = (execute_chain, TrialChain(trial.trial_id, tasks, plan.upstream, trial.parameters, context))
        trial_keys[trial.trial_id] = key
    return TrialGraph(graph, trial_keys)
