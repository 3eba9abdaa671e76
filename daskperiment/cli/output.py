"""Rendering tables for a terminal (aligned) or for programs (CSV, JSON)."""

from __future__ import annotations

import argparse
import json
import math
import numbers
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from daskperiment.cli.fit import fit_table, terminal_width

FORMATS = ("table", "csv", "json")


def add_output_arguments(parser: argparse.ArgumentParser, what: str = "output format") -> None:
    """Add ``--format`` (table, csv or json) and ``--wide`` (a table's cells in full) to ``parser``."""
    parser.add_argument("--format", choices=FORMATS, default="table", help=f"{what} (default: table)")
    parser.add_argument(
        "--wide", action="store_true",
        help="show long cells of a table in full instead of cutting them to fit the terminal",
    )


def iso_time(moment: pd.Timestamp | datetime) -> str:
    """A naive local time as ISO 8601 with the local UTC offset (microseconds kept)."""
    return pd.Timestamp(moment).to_pydatetime().astimezone().isoformat()


def json_value(value: Any) -> Any:
    """``value`` as JSON data: numbers, strings, booleans, null, lists and objects.

    NaN and missing values become null; other objects their ``repr``.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return None if math.isnan(number) or math.isinf(number) else number
    if isinstance(value, (list, tuple)):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    if value is pd.NA or value is pd.NaT:
        return None
    return repr(value)


def render(frame: pd.DataFrame, fmt: str, wide: bool = False) -> str:
    """``frame`` (whose index is a column too) as an aligned table, CSV or JSON records.

    A table fits the terminal's width (long text cells cut with "…") unless
    ``wide``; CSV and JSON always hold every value in full.
    """
    if fmt == "csv":
        return frame.to_csv(lineterminator="\n").rstrip("\n")
    if fmt == "json":
        records = []
        for index, row in frame.iterrows():
            record = {str(frame.index.name): json_value(index)}
            record.update({str(k): json_value(v) for k, v in row.items()})
            records.append(record)
        return json.dumps(records, indent=2)
    if frame.empty:
        return "(none)"
    return frame.to_string() if wide else fit_table(frame, terminal_width())
