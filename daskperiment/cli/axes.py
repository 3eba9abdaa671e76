"""The values of a sweep axis on the command line: ``lr=0.01,0.1``, ``n=1:10:2``, ``lr=logspace(-4,-1,4)``.

Each value is read as script mode reads one (:func:`daskperiment.script.parse_value`):
a Python literal, never evaluated; a bare word is a string.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from daskperiment.script import UsageError, parse_value, split_assignment

VALUE_FORMS = """\
values of name=values (the sweep runs every combination of the values given):
  a=1,2,3               a comma list of Python literals; a bare word is a string (s=x,y)
  a=[1, 2]              a Python list literal (a=[[1, 2], [3]]: two list values)
  a=1:10  a=1:10:2      integers from 1 to 10 excluded, by 2 (as Python's range)
  lr=linspace(0,1,5)    5 evenly spaced floats from 0 to 1 (numpy.linspace)
  lr=logspace(-4,-1,4)  4 floats from 10**-4 to 10**-1 (numpy.logspace)
  a=1                   one value"""

_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_RANGE = re.compile(rf"\s*({_NUMBER})?\s*:\s*({_NUMBER})?\s*(?::\s*({_NUMBER})?\s*)?")
_SPACING = re.compile(r"\s*(linspace|logspace)\s*\(")
_CLOSING = {"(": ")", "[": "]", "{": "}"}


def parse_axis_argument(arg: str) -> tuple[str, list[Any]]:
    """The parameter name and the values of a ``name=values`` argument.

    Raises
    ------
    UsageError
        When the argument or its values are malformed.
    """
    name, text = split_assignment(arg)
    try:
        return name, parse_axis(text)
    except UsageError as exc:
        raise UsageError(f"invalid values of parameter {name!r}: {exc}") from None


def parse_axis(text: str) -> list[Any]:
    """The values ``text`` denotes, in one of the forms of :data:`VALUE_FORMS`.

    Raises
    ------
    UsageError
        For a malformed value, an empty list, or a bad range or spacing.
    """
    spacing = _SPACING.match(text)
    if spacing:
        return _spaced(spacing.group(1), text[spacing.end():])
    bounds = _RANGE.fullmatch(text)
    if bounds:
        return _integer_range(text, bounds.groups())
    pieces = split_top_level(text)
    if len(pieces) > 1:
        return [parse_value(piece) for piece in pieces]
    value = parse_value(text)
    if not isinstance(value, list):
        return [value]
    if not value:
        raise UsageError("the list [] is empty: give at least one value, e.g. [1, 2]")
    return value


def split_top_level(text: str) -> list[str]:
    """``text`` split at its commas outside brackets and quotes."""
    pieces: list[str] = []
    expected: list[str] = []
    quote = None
    start = index = 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in _CLOSING:
            expected.append(_CLOSING[char])
        elif expected and char == expected[-1]:
            expected.pop()
        elif char == "," and not expected:
            pieces.append(text[start:index])
            start = index + 1
        index += 1
    pieces.append(text[start:])
    return pieces


def _integer_range(text: str, bounds: tuple[str | None, ...]) -> list[int]:
    start, stop, step = bounds
    example = "use start:stop or start:stop:step with integers, e.g. 1:10 or 0:100:10 (stop excluded)"
    if start is None or stop is None or (step is None and text.count(":") == 2):
        raise UsageError(f"bad range {text!r}: {example}")
    try:
        numbers = [int(part) for part in (start, stop, step or "1")]
    except ValueError:
        raise UsageError(f"bad range {text!r}: its bounds are not integers; {example}") from None
    if numbers[2] == 0:
        raise UsageError(f"bad range {text!r}: the step is 0; {example}")
    values = list(range(*numbers))
    if not values:
        raise UsageError(f"bad range {text!r}: it holds no integer (stop is excluded); {example}")
    return values


def _spaced(function: str, rest: str) -> list[float]:
    import numpy as np

    example = f"use {function}(start, stop, num) with numbers and a positive integer num, e.g. {function}(0, 1, 5)"
    try:
        if not rest.rstrip().endswith(")"):
            raise ValueError
        arguments = ast.literal_eval(f"({rest.rstrip()[:-1]},)")
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise UsageError(f"malformed {function}({rest}: {example}") from None
    if len(arguments) != 3 or not all(_real(a) for a in arguments[:2]) or not _count(arguments[2]):
        raise UsageError(f"bad {function}{tuple(arguments)!r}: {example}")
    start, stop, num = arguments
    return [float(value) for value in getattr(np, function)(start, stop, num)]


def _real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
