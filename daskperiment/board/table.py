"""The history table widget: its columns and the data of one page."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from bokeh.models import (
    ColumnDataSource,
    DataTable,
    InlineStyleSheet,
    StringFormatter,
    TableColumn,
)

from daskperiment.board.cells import cell_text
from daskperiment.history import TRIAL_ID, column_title

if TYPE_CHECKING:
    import pandas as pd

TABLE_WIDTH = 780
VISIBLE_ROWS = 22
"""Rows shown without scrolling the table."""
ROW_HEIGHT = 25
HEADER_HEIGHT = 30
SCROLLBAR_HEIGHT = 18
SUCCESS_COLORS = {True: "#0e9f6e", False: "#e02424"}
_WIDTHS = {TRIAL_ID: 62, "Result": 85, "Result Type": 85, "Success": 65, "Finished": 145, "Process Time": 95,
           "Description": 220, "Seed": 100, "Cached": 220}
PARAMETER_WIDTH = 85


def history_table(source: ColumnDataSource) -> DataTable:
    """A table of trials with a checkbox per row (rows are picked there, not sorted by clicks).

    Columns keep their widths; the table scrolls sideways when they do not fit.
    """
    return DataTable(
        source=source, columns=[], width=TABLE_WIDTH, row_height=ROW_HEIGHT, sortable=False, autosize_mode="none",
        reorderable=False, selectable="checkbox", index_position=None, name="history_table",
        stylesheets=[InlineStyleSheet(css=".slick-cell { font-size: 12px; }")],
    )


_LAST = (
    "Result", "Success", "Status", "Description", "Cached", "Sweep", "Tags", "Note", "Process Time", "Finished",
    "Seed", "Result Type",
)
"""Order of the columns after the parameters: what tells trials apart first."""


def display_order(columns: list[str]) -> list[str]:
    """The history's ``columns`` in the order the table shows them: parameters, then :data:`_LAST`."""
    return [c for c in columns if c not in _LAST] + [c for c in _LAST if c in columns]


def _field(position: int) -> str:
    return f"c{position}"


def table_columns(names: list[str]) -> list[TableColumn]:
    """Columns showing ``Trial ID`` then each of ``names``, as escaped text.

    The table renders column titles as HTML: a title is escaped, so a stored
    parameter name shows as it is and never runs.
    """
    columns = [TableColumn(field="trial_text", title=TRIAL_ID, width=_WIDTHS[TRIAL_ID], formatter=StringFormatter())]
    for position, name in enumerate(display_order(names)):
        color = "success_color" if name == "Success" else None
        columns.append(TableColumn(field=_field(position), title=escape(column_title(name)),
                                   width=_WIDTHS.get(name, PARAMETER_WIDTH),
                                   formatter=StringFormatter(text_color=color)))
    return columns


def table_data(rows: pd.DataFrame) -> dict[str, list]:
    """The columns of :func:`table_columns` for ``rows`` of the history, plus ``trial`` (the ids)."""
    data: dict[str, list] = {"trial": [int(t) for t in rows.index], "trial_text": [str(t) for t in rows.index]}
    for position, name in enumerate(display_order(list(rows.columns))):
        data[_field(position)] = [cell_text(v) for v in rows[name]]
    data["success_color"] = [SUCCESS_COLORS[bool(s)] for s in rows["Success"]]
    return data


def table_height(rows: int) -> int:
    """Height of the table showing ``rows`` rows (a few at least, scrolling beyond :data:`VISIBLE_ROWS`)."""
    return HEADER_HEIGHT + SCROLLBAR_HEIGHT + ROW_HEIGHT * max(3, min(rows, VISIBLE_ROWS))
