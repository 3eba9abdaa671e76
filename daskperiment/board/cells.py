"""Cells of the history table: the text they show, their numbers and their kinds."""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np

from daskperiment.history import TRIAL_ID, seconds_text

if TYPE_CHECKING:
    import pandas as pd


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


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number (a bool is not)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_missing(value: Any) -> bool:
    """Whether ``value`` is an empty cell: None or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def numeric(series: pd.Series) -> pd.Series:
    """``series`` as floats: numbers and timedeltas (in seconds); anything else is NaN."""
    import pandas as pd

    if pd.api.types.is_timedelta64_dtype(series):
        return series.dt.total_seconds()
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float)
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.astype("int64").astype(float)
    if pd.api.types.is_numeric_dtype(series):
        return series.astype(float)
    values = [float(v) if is_number(v) else math.nan for v in series]
    return pd.Series(values, index=series.index, dtype=float)


def is_numeric_column(series: pd.Series) -> bool:
    """Whether every filled cell of ``series`` has a number (numbers, times, durations)."""
    return bool(numeric(series).notna().sum() == series.notna().sum())


def column_of(frame: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` of the history ``frame``; ``Trial ID`` is its index."""
    return frame.index.to_series() if name == TRIAL_ID else frame[name]


def ordered_texts(values: pd.Series) -> list[str]:
    """The texts the filled cells of ``values`` show, each once: numbers first by value, then other texts."""
    first: dict[str, tuple] = {}
    for value in values:
        if is_missing(value):
            continue
        text = cell_text(value)
        if text not in first:
            first[text] = (0, float(value), "") if is_number(value) else (1, 0.0, text.lower())
    return sorted(first, key=lambda text: (*first[text], text))
