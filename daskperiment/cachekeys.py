"""Cache keys of step calls: a hash chain over code, constants, upstream keys and inputs.

As graphchain does, the key of a call hashes what makes its output what it is
without hashing its inputs' contents: the step's code digest and constant
arguments, the *keys* of the upstream calls it takes outputs from, the values
of the parameters it uses (``dask.base.tokenize``) and, for a seeded step, the
trial seed. A change of code or parameter changes the key of that call and of
every call downstream of it, and of nothing else.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from typing import Any

from dask.base import tokenize

from daskperiment.graph import ForeignCall, ParameterInput, Plan, StepCall, TrialSpec
from daskperiment.hashing import combine, value_token

logger = logging.getLogger(__name__)

_statics: "weakref.WeakKeyDictionary[Plan, tuple[str | None, ...]]" = weakref.WeakKeyDictionary()


def uses_cache(plan: Plan) -> bool:
    """Whether any step of ``plan`` is cached."""
    return any(isinstance(node, StepCall) and node.spec.cache for node in plan.nodes)


def trial_cache_keys(plan: Plan, trial: TrialSpec) -> list[str | None]:
    """The cache key of every node of ``plan`` in ``trial`` (None where it has none).

    A node has no key when something it depends on has no deterministic hash
    (an unhashable constant or parameter value, plain dask work that dask
    cannot tokenize); nodes downstream of it have none either.
    """
    statics = _static_keys(plan)
    keys: list[str | None] = []
    for index, node in enumerate(plan.nodes):
        upstream = [keys[u] for u in plan.upstream[index]]
        static = statics[index]
        if static is None or None in upstream:
            keys.append(None)
            continue
        used = [trial.parameters[i.name] for i in node.inputs if isinstance(i, ParameterInput)]
        seed = trial.seed if isinstance(node, StepCall) and node.spec.seeded else None
        keys.append(_chain_key(node, static, upstream, used, seed))
    return keys


def _static_keys(plan: Plan) -> tuple[str | None, ...]:
    """Per node, the hash of what is the same in every trial (computed once per plan)."""
    statics = _statics.get(plan)
    if statics is None:
        statics = _statics[plan] = tuple(_static_key(node) for node in plan.nodes)
    return statics


def _static_key(node: StepCall | ForeignCall) -> str | None:
    if isinstance(node, StepCall):
        task = node.task
        return _deterministic(node, "step", node.spec.name, node.spec.code_digest, task.args, task.kwargs)
    task = node.task
    return _deterministic(node, "foreign", task.graph, task.key, task.boundary)


_warned: set[str] = set()


def _chain_key(
    node: StepCall | ForeignCall, static: str, upstream: list[str], used: list[Any], seed: int | None
) -> str | None:
    try:
        tokens = [value_token(value) for value in used]
    except Exception as exc:
        _warn_not_cached(node, exc)
        return None
    return combine([static, *upstream, *tokens, repr(seed)])


def _deterministic(node: StepCall | ForeignCall, *parts: Any) -> str | None:
    try:
        return tokenize(*parts, ensure_deterministic=True)
    except Exception as exc:  # dask cannot hash it the same way in every process
        _warn_not_cached(node, exc)
        return None


def _warn_not_cached(node: StepCall | ForeignCall, exc: Exception) -> None:
    if node.label not in _warned:
        _warned.add(node.label)
        logger.warning(
            "the inputs of %s have no deterministic hash (%s): it and the steps after it "
            "are not cached. Pass values dask can hash the same way in every process "
            "(numbers, strings, numpy arrays, pandas objects, dataclasses of those)",
            node.label, exc,
        )


def sweep_cache_keys(plan: Plan, trials: Sequence[TrialSpec]) -> dict[int, list[str | None]]:
    """:func:`trial_cache_keys` of each trial, by trial id."""
    return {trial.trial_id: trial_cache_keys(plan, trial) for trial in trials}
