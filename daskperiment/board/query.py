"""Server-side filtering, sorting and paging of the history table."""

from __future__ import annotations

import math
import numbers
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from daskperiment.history import column_title, seconds_text

if TYPE_CHECKING:
    import pandas as pd

TRIAL_ID = "Trial ID"
PAGE_SIZES = (25, 50, 100, 200)

_CONDITION = re.compile(r"^\s*(?P<name>[^=!<>~]+?)\s*(?P<op>==|!=|<=|>=|=|<|>|~)\s*(?P<value>.*?)\s*$")
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
FILTER_HELP = "e.g. lr<0.1, model=cnn, Description~Error (conditions separated by commas, all must hold)"


class FilterError(ValueError):
    """A filter expression cannot be understood."""


@dataclass(frozen=True)
class Condition:
    """One condition on a column: ``name op value``.

    ``op`` is one of ``= == != < <= > >=`` (numeric when the value is a
    number, else on the text of the cells) or ``~`` (the text contains the value).
    """

    name: str
    op: str
    value: str


@dataclass(frozen=True)
class TableQuery:
    """What a session asks of the history table."""

    success: Literal["all", "succeeded", "failed"] = "all"
    conditions: tuple[Condition, ...] = ()
    sort_by: str = TRIAL_ID
    descending: bool = True
    page: int = 0
    page_size: int = 100


@dataclass(frozen=True)
class Page:
    """One page of the filtered, sorted history."""

    rows: pd.DataFrame
    """The rows of the page, indexed by trial id."""
    matching: int
    """Number of trials that pass the filters."""
    page: int
    """Index of this page (0-based, clamped to the pages that exist)."""
    pages: int
    """Number of pages (at least 1)."""


def parse_filter(text: str, columns: list[str]) -> tuple[Condition, ...]:
    """Conditions of a filter expression such as ``"lr<0.1, model=cnn"``.

    Parameters
    ----------
    text : str
        Conditions separated by commas; an empty text has none.
    columns : list of str
        Columns of the table; names match them or their titles (``Process Time (s)``), ignoring case.

    Raises
    ------
    FilterError
        For a part that is not ``name op value``, or names no column.
    """
    by_name = {column_title(column).lower(): column for column in columns}
    by_name.update({column.lower(): column for column in columns})
    conditions = []
    for part in filter(str.strip, text.split(",")):
        match = _CONDITION.match(part)
        if match is None:
            raise FilterError(f"cannot read the condition {part.strip()!r}: {FILTER_HELP}")
        name = by_name.get(match["name"].lower())
        if name is None:
            raise FilterError(
                f"no column {match['name']!r} in the history; columns: {', '.join(columns)}"
            )
        conditions.append(Condition(name, match["op"], match["value"]))
    return tuple(conditions)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame.index.to_series() if name == TRIAL_ID else frame[name]


def cell_text(value: Any) -> str:
    """The text a cell shows for a raw history value."""
    import pandas as pd

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, pd.Timedelta):
        return seconds_text(value.total_seconds())
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def numeric(series: pd.Series) -> pd.Series:
    """``series`` as floats: numbers and timedeltas (in seconds); anything else is NaN."""
    import pandas as pd

    if pd.api.types.is_timedelta64_dtype(series):
        return series.dt.total_seconds()
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float)
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.astype("int64").astype(float)
    values = [float(v) if _is_number(v) else math.nan for v in series]
    return pd.Series(values, index=series.index, dtype=float)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _mask(frame: pd.DataFrame, condition: Condition) -> pd.Series:
    column = _column(frame, condition.name)
    texts = column.map(cell_text)
    if condition.op == "~":
        return texts.str.contains(condition.value, case=False, regex=False)
    compare = _OPERATORS[condition.op]
    number = _number(condition.value)
    if number is not None:
        values = numeric(column)
        if values.notna().any():
            return compare(values, number).fillna(False) & values.notna()
    if condition.op in ("=", "==", "!="):
        return compare(texts, condition.value)
    return compare(texts, condition.value) & (texts != "")


def _sort_key(frame: pd.DataFrame, name: str) -> pd.Series:
    column = _column(frame, name)
    values = numeric(column)
    if values.notna().sum() == column.notna().sum():
        return values
    return column.map(cell_text).str.lower()


def run_query(frame: pd.DataFrame, query: TableQuery) -> Page:
    """Filter, sort and cut one page of the history ``frame``.

    Empty cells sort last in either order.

    Raises
    ------
    FilterError
        When the query sorts by a column that does not exist.
    """
    mask = frame.index.to_series() > 0
    if query.success != "all":
        mask &= frame["Success"] == (query.success == "succeeded")
    for condition in query.conditions:
        mask &= _mask(frame, condition)
    selected = frame[mask.to_numpy()]
    if query.sort_by != TRIAL_ID and query.sort_by not in frame.columns:
        raise FilterError(f"cannot sort by {query.sort_by!r}: no such column")
    key = _sort_key(selected, query.sort_by)
    order = key.sort_values(ascending=not query.descending, kind="mergesort", na_position="last")
    ordered = selected.loc[order.index]
    size = max(1, query.page_size)
    pages = max(1, -(-len(ordered) // size))
    page = min(max(0, query.page), pages - 1)
    rows = ordered.iloc[page * size : (page + 1) * size]
    return Page(rows, len(ordered), page, pages)
