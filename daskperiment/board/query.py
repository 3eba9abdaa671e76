"""Server-side filtering, sorting and paging of the history table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from daskperiment.board.cells import cell_text, column_of, is_numeric_column, numeric
from daskperiment.board.filters import Condition, FilterError, condition_mask
from daskperiment.history import TRIAL_ID

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PAGE_SIZES", "TRIAL_ID", "Page", "TableQuery", "cell_text", "numeric", "run_query"]

PAGE_SIZES = (25, 50, 100, 200)


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


def _sort_key(frame: pd.DataFrame, name: str) -> pd.Series:
    column = column_of(frame, name)
    if is_numeric_column(column):
        return numeric(column)
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
        mask &= condition_mask(frame, condition)
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
