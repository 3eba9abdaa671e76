"""Purity check: a step given the same code and inputs should return the same output."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from daskperiment.context import describe_arguments
from daskperiment.hashing import combine, value_token
from daskperiment.records import StepOutput

logger = logging.getLogger(__name__)

_IMMUTABLE = frozenset({int, float, complex, bool, str, bytes, type(None)})


class CallArguments:
    """A step call's arguments as a purity warning names them, rendered only when one is shown.

    Holds immutable values only (see :func:`call_arguments`), so the text is
    the same whenever it is rendered; pickled (to the process recording the
    trial) as that text.
    """

    __slots__ = ("args", "kwargs")

    def __init__(self, args: tuple, kwargs: dict[str, Any]) -> None:
        self.args = args
        self.kwargs = kwargs

    def __str__(self) -> str:
        return describe_arguments(self.args, self.kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return str, (str(self),)


def call_arguments(args: tuple, kwargs: dict[str, Any]) -> str | CallArguments:
    """How a purity warning names a call: its arguments, rendered now unless none of them can change.

    Rendering them (:func:`describe_arguments`) costs more than the rest of
    the purity check of a step of a few numbers, and a warning is rare.
    """
    if all(type(value) in _IMMUTABLE for value in args) and all(
        type(value) in _IMMUTABLE for value in kwargs.values()
    ):
        return CallArguments(args, kwargs)
    return describe_arguments(args, kwargs)


@dataclass(frozen=True, slots=True)
class StepCall:
    """One call of a step: hashes of (code, inputs) and of the output, and how to name it
    (``arguments``: see :func:`call_arguments`)."""

    step: str
    arguments: str | CallArguments
    input_key: str
    output_hash: str

    def record(self) -> StepOutput:
        """The store record of this call."""
        return StepOutput(self.input_key, self.output_hash)


def hash_call(
    step: str, code_digest: str, args: tuple, kwargs: dict[str, Any], output: Any,
    arguments: str | CallArguments,
    seed: int | None = None,
) -> StepCall | None:
    """Hash a step call, or None when its inputs or output have no deterministic hash.

    ``seed`` is part of the inputs when given: a step seeded on purpose may
    return another output for another seed. Each value is hashed by
    :func:`daskperiment.hashing.value_token` (plain numbers and strings from
    their ``repr``, anything else by dask's ``tokenize``), so a step of plain
    inputs and output is hashed in microseconds.
    """
    try:
        inputs = [
            step, code_digest, value_token(seed), str(len(args)), *map(value_token, args),
            *(f"{name}={value_token(kwargs[name])}" for name in sorted(kwargs)),
        ]
        input_key, output_hash = combine(inputs), combine([value_token(output)])
    except Exception as exc:  # objects dask cannot hash deterministically
        logger.debug("purity of step %s not checked: %s", step, exc)
        return None
    return StepCall(step, arguments, input_key, output_hash)


def warn_impure(calls: Iterable[StepCall], known: Mapping[str, str]) -> None:
    """Log a WARNING for each call whose output differs from the latest one.

    ``known`` maps input keys to the output hashes stored before these calls
    were (the store returns them from the write that replaced them, see
    :meth:`Backend.write_batch`); calls of the same batch are checked against
    each other too, in order. A step is thus compared with its latest output,
    not its first.
    """
    latest = dict(known)
    for call in calls:
        previous = latest.get(call.input_key)
        if previous is not None and previous != call.output_hash:
            logger.warning(
                "Experiment step result is changed with the same input: (step: %s, %s) — the step "
                "is not pure: it returned a different output for the same code and inputs "
                "(and seed, when one was given: unseeded randomness, global state or I/O?)",
                call.step,
                call.arguments,
            )
        latest[call.input_key] = call.output_hash
