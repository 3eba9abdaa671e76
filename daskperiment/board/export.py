"""The history as CSV: every trial that passes a page's filters, in its order.

Each page registers its query under a random token; ``/export/<token>/<name>.csv``
answers with the matching rows of the shared trial cache (not only the page
shown). Dates are ISO 8601, process times seconds, tags ``a, b``; the file
is always an attachment, never shown by the browser.
"""

from __future__ import annotations

import csv
import io
import secrets
import threading
from typing import TYPE_CHECKING

from tornado.web import RequestHandler

from daskperiment.board.download import content_disposition
from daskperiment.board.filters import FilterError
from daskperiment.board.query import TableQuery, matching_rows
from daskperiment.board.table import display_order, tags_text
from daskperiment.history import TRIAL_ID, column_title

if TYPE_CHECKING:
    import pandas as pd

    from daskperiment.board.store import TrialCache

ROUTE = r"/export/([0-9a-f]{32})/([A-Za-z0-9._-]{1,200}\.csv)"
"""Tornado pattern of the CSV route: a page's token and a file name."""


class Exports:
    """The queries of the open pages, by token, for the CSV route (thread-safe)."""

    def __init__(self) -> None:
        self._queries: dict[str, TableQuery] = {}
        self._lock = threading.Lock()

    def register(self, query: TableQuery) -> str:
        """Keep ``query`` under a new token; return the token."""
        token = secrets.token_hex(16)
        self.update(token, query)
        return token

    def update(self, token: str, query: TableQuery) -> None:
        """Make ``query`` the one of ``token``."""
        with self._lock:
            self._queries[token] = query

    def drop(self, token: str) -> None:
        """Forget the query of a page that was closed."""
        with self._lock:
            self._queries.pop(token, None)

    def query(self, token: str) -> TableQuery | None:
        """The query of ``token``, None for an unknown one."""
        with self._lock:
            return self._queries.get(token)


def export_url(token: str, experiment_id: str) -> str:
    """Address of the CSV of a page, relative to the page."""
    return f"export/{token}/{experiment_id}-trials.csv"


def history_csv(rows: pd.DataFrame) -> str:
    """``rows`` of the history as CSV: trial id, then the table's columns; ISO dates, seconds, plain texts."""
    import pandas as pd

    names = display_order(list(rows.columns))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([TRIAL_ID, *(column_title(n) for n in names)])
    columns = []
    for name in names:
        column = rows[name]
        if pd.api.types.is_datetime64_any_dtype(column):
            columns.append([v.isoformat() if not pd.isna(v) else "" for v in column])
        elif pd.api.types.is_timedelta64_dtype(column):
            columns.append([repr(v.total_seconds()) if not pd.isna(v) else "" for v in column])
        elif name == "Tags":
            columns.append([tags_text(v) for v in column])
        else:
            columns.append(["" if _missing(v) else (repr(v) if isinstance(v, float) else str(v)) for v in column])
    for trial, *cells in zip(rows.index, *columns):
        writer.writerow([int(trial), *cells])
    return out.getvalue()


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


class ExportHandler(RequestHandler):
    """Answers ``/export/<token>/<name>.csv`` with the rows a page's query matches."""

    def initialize(self, cache: TrialCache, exports: Exports) -> None:
        self._cache = cache
        self._exports = exports

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "sandbox")

    def get(self, token: str, name: str) -> None:
        query = self._exports.query(token)
        if query is None:
            self.send_error(404, reason="No such page: reload the dashboard")
            return
        try:
            text = history_csv(matching_rows(self._cache.frame, query))
        except FilterError as exc:
            self.send_error(409, reason=str(exc)[:200])
            return
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", content_disposition(name, "text/csv"))
        self.finish(text.encode("utf-8"))
