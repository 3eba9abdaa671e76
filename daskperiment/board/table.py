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
STATUS_COLORS = {"running": ("#1e40af", "#dbeafe"), "finished": ("#065f46", "#ffffff"),
                 "failed": ("#9b1c1c", "#ffffff"), "interrupted": ("#92400e", "#fef3c7"),
                 "killed": ("#9b1c1c", "#fee2e2")}
"""Text and background colours of a trial's status; ``running`` shows as a badge."""
OTHER_STATUS_COLORS = ("#52606d", "#ffffff")
_WIDTHS = {TRIAL_ID: 62, "Result": 85, "Result Type": 85, "Success": 65, "Finished": 145, "Process Time": 95,
           "Description": 220, "Seed": 100, "Cached": 220, "Status": 90, "Note": 200, "Tags": 120}
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
    "Result", "Status", "Success", "Tags", "Note", "Description", "Cached", "Sweep", "Process Time", "Finished",
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
        if name == "Success":
            formatter = StringFormatter(text_color="success_color")
        elif name == "Status":
            formatter = StringFormatter(text_color="status_color", background_color="status_background",
                                        font_style="bold")
        else:
            formatter = StringFormatter()
        columns.append(TableColumn(field=_field(position), title=escape(column_title(name)),
                                   width=_WIDTHS.get(name, PARAMETER_WIDTH), formatter=formatter))
    return columns


def table_data(rows: pd.DataFrame) -> dict[str, list]:
    """The columns of :func:`table_columns` for ``rows`` of the history, plus ``trial`` (the ids)."""
    data: dict[str, list] = {"trial": [int(t) for t in rows.index], "trial_text": [str(t) for t in rows.index]}
    for position, name in enumerate(display_order(list(rows.columns))):
        text = tags_text if name == "Tags" else cell_text
        data[_field(position)] = [text(v) for v in rows[name]]
    data["success_color"] = [SUCCESS_COLORS[bool(s)] for s in rows["Success"]]
    if "Status" in rows.columns:
        colors = [STATUS_COLORS.get(str(status), OTHER_STATUS_COLORS) for status in rows["Status"]]
        data["status_color"] = [text for text, _ in colors]
        data["status_background"] = [background for _, background in colors]
    return data


def tags_text(value: object) -> str:
    """Tags as a cell shows them: ``a, b`` (sorted, for a set), a text as it is."""
    if isinstance(value, (set, frozenset)):
        return ", ".join(sorted(map(str, value)))
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return cell_text(value)


def table_height(rows: int) -> int:
    """Height of the table showing ``rows`` rows (a few at least, scrolling beyond :data:`VISIBLE_ROWS`)."""
    return HEADER_HEIGHT + SCROLLBAR_HEIGHT + ROW_HEIGHT * max(3, min(rows, VISIBLE_ROWS))
