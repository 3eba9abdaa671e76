"""Arguments of a step call as templates: the call's inputs replaced by numbered slots.

A template is built once per call; each run fills its slots with the values of
that run's inputs (other steps' outputs, parameter values).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dask.base import is_dask_collection


@dataclass(frozen=True, slots=True)
class _Slot:
    """Where the ``index``-th input of a call goes in its arguments."""

    index: int


@dataclass(frozen=True, slots=True)
class _Packed:
    """A list, tuple, set or dict of arguments holding inputs."""

    kind: type
    items: tuple


def template(value: Any, inputs: list[Any], input_of: Callable[[Any], Any]) -> Any:
    """``value`` with each dask collection in it replaced by a slot.

    ``input_of(collection)`` is appended to ``inputs`` for each slot, in order.
    """
    if is_dask_collection(value):
        inputs.append(input_of(value))
        return _Slot(len(inputs) - 1)
    kind = type(value)
    if kind in (list, tuple, set, frozenset):
        items = tuple(template(item, inputs, input_of) for item in value)
        if any(isinstance(item, (_Slot, _Packed)) for item in items):
            return _Packed(kind, items)
    elif kind is dict:
        items = tuple((k, template(v, inputs, input_of)) for k, v in value.items())
        if any(isinstance(v, (_Slot, _Packed)) for _, v in items):
            return _Packed(dict, items)
    return value


def fill(template: Any, values: Sequence[Any]) -> Any:
    """The arguments a template stands for, its slots filled with ``values``."""
    if isinstance(template, _Slot):
        return values[template.index]
    if isinstance(template, _Packed):
        if template.kind is dict:
            return {k: fill(v, values) for k, v in template.items}
        return template.kind(fill(item, values) for item in template.items)
    return template
