"""The history table's filter: conditions such as ``lr<0.1, model=cnn``, read and applied.

A condition compares a column with a number, a word or a quoted text; the
kinds must match: a number is compared with the numbers of a column, a text
with its texts, a date with its dates. A comparison no cell of the column can
make (``model>3`` on a column of names) is an error, never a comparison of texts.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from daskperiment.board.cells import cell_text, column_of, is_missing, is_number, numeric
from daskperiment.history import column_title

if TYPE_CHECKING:
    import pandas as pd

FILTER_HELP = (
    "write conditions such as lr<0.1, model=cnn, Description~Error, separated by commas (all must hold); "
    'quote a text with spaces or commas: model="big cnn"'
)
_CONDITION = re.compile(r"^\s*(?P<name>[^=!<>~\"']+?)\s*(?P<op>==|!=|<=|>=|=|<|>|~)\s*(?P<value>.*?)\s*$")
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_BOOLEANS = {"yes": True, "true": True, "no": False, "false": False}


class FilterError(ValueError):
    """A filter expression cannot be understood, or compares values of different kinds."""


@dataclass(frozen=True)
class Condition:
    """One condition on a column: ``name op value``.

    ``op`` is one of ``= == != < <= > >=`` (``value`` a number, compared with
    the column's numbers, or a text, compared with its texts) or ``~`` (the
    cell's text contains ``value``, ignoring case).
    """

    name: str
    op: str
    value: float | str


def _parts(text: str) -> list[str]:
    """The comma-separated parts of ``text``; commas inside quotes are text."""
    parts, current, quote = [], [], None
    for char in text:
        if quote is None and char == ",":
            parts.append("".join(current))
            current = []
            continue
        if quote is None and char in "\"'":
            quote = char
        elif char == quote:
            quote = None
        current.append(char)
    if quote is not None:
        raise FilterError(f"a quote {quote} is not closed in {text.strip()!r}: {FILTER_HELP}")
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def _value(part: str, op: str, text: str) -> float | str:
    """The value of condition ``part`` from its ``text``: a number, or a text."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if op == "~":
        return text
    if not text:
        raise FilterError(f"the condition {part.strip()!r} has no value: {FILTER_HELP}")
    words = text.split()
    if len(words) > 1:
        joined = {"and", "or", "&", "&&", "|", "||"} & {word.lower() for word in words}
        hint = f" (join conditions with commas, not {sorted(joined)[0]!r})" if joined else ""
        raise FilterError(f"cannot read the value {text!r} of {part.strip()!r}{hint}: {FILTER_HELP}")
    if text[0] in "=!<>~":
        raise FilterError(f"cannot read the operator of {part.strip()!r}: use one of = != < <= > >= ~")
    try:
        number = float(text)
    except ValueError:
        return text
    if number != number:  # NaN: no cell equals it
        raise FilterError(f"cannot compare with NaN in {part.strip()!r}: empty cells never match a condition")
    return number


def parse_filter(text: str, columns: list[str]) -> tuple[Condition, ...]:
    """Conditions of a filter expression such as ``"lr<0.1, model=cnn"``.

    Parameters
    ----------
    text : str
        Conditions separated by commas; an empty text has none. A value is a
        number, a word, or a text in quotes (``model="big cnn"``).
    columns : list of str
        Columns of the table; names match them or their titles (``Process Time (s)``), ignoring case.

    Raises
    ------
    FilterError
        For a part that is not ``name op value``, a value that is not one
        number, word or quoted text (``lr>0.5 and``), or a name of no column.
    """
    by_name = {column_title(column).lower(): column for column in columns}
    by_name.update({column.lower(): column for column in columns})
    conditions = []
    for part in _parts(text):
        match = _CONDITION.match(part)
        if match is None:
            raise FilterError(f"cannot read the condition {part.strip()!r}: {FILTER_HELP}")
        name = by_name.get(match["name"].lower())
        if name is None:
            raise FilterError(
                f"no column {match['name']!r} in the history; columns: {', '.join(map(column_title, columns))}"
            )
        conditions.append(Condition(name, match["op"], _value(part, match["op"], match["value"])))
    return tuple(conditions)


def _described(condition: Condition) -> str:
    value = condition.value
    shown = cell_text(value) if isinstance(value, float) else repr(value)
    return f"{column_title(condition.name)}{condition.op}{shown}"


def condition_mask(frame: pd.DataFrame, condition: Condition) -> pd.Series:
    """Which rows of the history ``frame`` satisfy ``condition`` (empty cells never do, but for ``!=``).

    Raises
    ------
    FilterError
        When the value's kind is not one the column holds: a number for a
        column of texts, a text for a column of numbers, something that is
        not a date for a column of dates.
    """
    import pandas as pd

    column = column_of(frame, condition.name)
    title = column_title(condition.name)
    if condition.op == "~":
        return column.map(cell_text).str.contains(str(condition.value), case=False, regex=False)
    compare = _OPERATORS[condition.op]
    value = condition.value
    if pd.api.types.is_datetime64_any_dtype(column):
        try:
            when = pd.Timestamp(str(value))
        except ValueError:
            raise FilterError(
                f"{_described(condition)}: {title} holds dates; compare it with a date, e.g. {title}>2024-05-01"
            ) from None
        return compare(column, when).fillna(False) & column.notna()
    if pd.api.types.is_bool_dtype(column):
        wanted = _BOOLEANS.get(str(value).lower()) if isinstance(value, str) else {0: False, 1: True}.get(value)
        if wanted is None:
            raise FilterError(f"{_described(condition)}: {title} holds yes or no; compare it with yes or no")
        return compare(column.astype(bool), wanted)
    if isinstance(value, float):
        numbers = numeric(column)
        if not numbers.notna().any() and column.notna().any():
            raise FilterError(
                f"{_described(condition)}: {title} holds texts, not numbers; compare it with a text "
                f"({title}=cnn), or quote the number to compare texts ({title}=\"{cell_text(value)}\")"
            )
        return compare(numbers, value).fillna(False) & numbers.notna()
    texts = column.map(cell_text)
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_timedelta64_dtype(column):
        is_text = pd.Series(False, index=column.index)
    else:
        is_text = column.map(lambda cell: not is_missing(cell) and not is_number(cell)).astype(bool)
    if not is_text.any() and column.notna().any():
        raise FilterError(
            f"{_described(condition)}: {title} holds numbers, not texts; compare it with a number, "
            f"e.g. {title}<0.1"
        )
    return compare(texts, value) & is_text
