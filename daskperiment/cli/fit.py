"""Fitting a table to a terminal: long text cells shortened with "…" to the terminal's width."""

from __future__ import annotations

import math
import shutil
from typing import Any, Hashable

import pandas as pd

ELLIPSIS = "…"
MAX_CELL = 40
"""Widest a text cell is shown, however wide the terminal."""
MIN_CELL = 8
"""Narrowest a text cell is cut to when the terminal is narrow."""
_INDEX = object()
"""Key of the index among the columns :func:`fit_table` cuts."""


def terminal_width() -> int:
    """Columns of the terminal (``COLUMNS`` when set; 80 when not a terminal)."""
    return shutil.get_terminal_size().columns


def shorten(value: Any, limit: int) -> Any:
    """``value``'s text on one line, cut to ``limit`` characters ending in "…"; missing values as they are."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return value
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def fit_table(frame: pd.DataFrame, width: int) -> str:
    """``frame`` as an aligned table at most ``width`` wide, as far as cutting its text cells can do it.

    Text cells (and a text index) are cut to :data:`MAX_CELL` characters;
    while the table is too wide, the widest of them are cut further, evenly,
    down to :data:`MIN_CELL` (or their title's width). Numbers, booleans,
    dates and durations are never cut.
    """
    columns: dict[Hashable, pd.Series | pd.Index] = {name: frame[name] for name in frame.columns
                                                     if _is_text(frame[name])}
    if _is_text(frame.index):
        columns[_INDEX] = frame.index
    titles = {name: len(str(frame.index.name or "")) if name is _INDEX else len(str(name)) for name in columns}
    limits = {name: _text_width([shorten(v, MAX_CELL) for v in values]) for name, values in columns.items()}
    text = _render(frame, limits)
    excess = max(len(line) for line in text.splitlines()) - width
    if excess <= 0:
        return text
    while excess > 0:
        floors = {name: max(MIN_CELL, titles[name]) for name in limits}
        cuttable = {name: w for name, w in limits.items() if w > floors[name]}
        if not cuttable:
            break
        widest = max(cuttable.values())
        names = [name for name, w in cuttable.items() if w == widest]
        floor = max([w for w in cuttable.values() if w < widest] + [floors[name] for name in names])
        step = min(widest - floor, math.ceil(excess / len(names)))
        for name in names:
            limits[name] -= step
        excess -= step * len(names)
    return _render(frame, limits)


def _render(frame: pd.DataFrame, limits: dict[Hashable, int]) -> str:
    table = frame.copy()
    for name, limit in limits.items():
        if name is _INDEX:
            table.index = pd.Index([shorten(v, limit) for v in frame.index], name=frame.index.name)
        else:
            table[name] = [shorten(v, limit) for v in frame[name]]
    return table.to_string()


def _is_text(values: pd.Series | pd.Index) -> bool:
    """Whether ``values`` are texts or objects (not numbers, booleans, dates or durations)."""
    types = pd.api.types
    return not (
        types.is_numeric_dtype(values) or types.is_bool_dtype(values)
        or types.is_datetime64_any_dtype(values) or types.is_timedelta64_dtype(values)
    )


def _text_width(values: list[Any]) -> int:
    return max((len(str(value)) for value in values), default=0)
