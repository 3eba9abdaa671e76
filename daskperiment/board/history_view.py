"""The history table of a page: its filter, sort, pages and the rows ticked as selected."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from bokeh.layouts import column, row
from bokeh.models import Button, ColumnDataSource, Div, RadioButtonGroup, Select, Spacer, TextInput

from daskperiment.board import render, table
from daskperiment.board.filters import FilterError, parse_filter
from daskperiment.board.query import PAGE_SIZES, TRIAL_ID, TableQuery, run_query
from daskperiment.history import column_title

if TYPE_CHECKING:
    from daskperiment.board.session import Session

SUCCESS_FILTERS: tuple[Literal["all", "succeeded", "failed"], ...] = ("all", "succeeded", "failed")


class HistoryView:
    """The history table of one page, and the query its filter widgets make.

    Parameters
    ----------
    session : Session
        The page.
    on_query : callable
        Called after the query changed (the other views follow it).
    """

    def __init__(self, session: Session, on_query: Callable[[], None]) -> None:
        self.session = session
        self.on_query = on_query
        self.query = TableQuery()
        self._page_ids: list[int] = []
        self._generation = 0
        guard = session.guard
        self.success = RadioButtonGroup(labels=["All", "Succeeded", "Failed"], active=0, width=230)
        self.success.on_change("active", guard.on_change(
            lambda: self.apply(replace(self.query, success=SUCCESS_FILTERS[self.success.active], page=0))))
        self.filter = TextInput(placeholder="filter, e.g. lr<0.1, model=cnn (Enter)", width=330, name="filter")
        self.filter.on_change("value", guard.on_change(self._on_filter))
        self.sort_by = Select(value=TRIAL_ID, options=[TRIAL_ID], width=130, name="sort_by")
        self.sort_by.on_change("value", guard.on_change(self._on_sort))
        self.order = RadioButtonGroup(labels=["↓", "↑"], active=0, width=70)
        self.order.on_change("active", guard.on_change(self._on_sort))
        self.message = Div(text="", name="filter_message", stylesheets=[session.style])
        self.source = ColumnDataSource({"trial": []})
        self.source.selected.on_change("indices", guard.on_change(self._on_ticks))
        self.table = table.history_table(self.source)
        self.previous = Button(label="‹ Previous", width=100)
        self.previous.on_click(guard.on_click(lambda: self.apply(replace(self.query, page=self.query.page - 1))))
        self.next = Button(label="Next ›", width=100)
        self.next.on_click(guard.on_click(lambda: self.apply(replace(self.query, page=self.query.page + 1))))
        self.page_info = Div(text="", name="page_info", stylesheets=[session.style])
        self.page_size = Select(value=str(self.query.page_size), options=[str(s) for s in PAGE_SIZES], width=70,
                                name="page_size")
        self.page_size.on_change("value", guard.on_change(
            lambda: self.apply(replace(self.query, page_size=int(self.page_size.value), page=0))))
        self.layout = column(
            row(self.success, self.filter, self.sort_by, self.order),
            self.message,
            self.table,
            row(self.previous, self.page_info, self.next, Spacer(width=20), self.page_size),
        )

    # -- the query ------------------------------------------------------------------
    def _on_filter(self) -> None:
        try:
            conditions = parse_filter(self.filter.value, [TRIAL_ID, *self.session.cache.frame.columns])
            self.apply(replace(self.query, conditions=conditions, page=0))
        except FilterError as exc:  # the table stays as it was
            self.message.text = render.message(str(exc))
            return
        self.message.text = ""

    def _on_sort(self) -> None:
        self.apply(replace(self.query, sort_by=self.sort_by.value, descending=self.order.active == 0, page=0))

    def apply(self, query: TableQuery) -> None:
        """Show the page ``query`` asks for, make it the table's query, and tell the other views.

        Raises
        ------
        FilterError
            When the query cannot run (nothing changes then).
        """
        changed = replace(query, page=0) != replace(self.query, page=0)
        self._show(query)
        if changed:
            self.on_query()

    def update(self) -> None:
        """Show the current page of the filtered, sorted history (the trials changed)."""
        names = [TRIAL_ID, *self.session.cache.frame.columns]
        self.session.guard.set(self.sort_by, "options", [(name, column_title(name)) for name in names])
        try:
            self._show(self.query)
        except FilterError as exc:  # the history changed under the filter (its store was reset)
            self.message.text = render.message(f"{exc}; the filter is off")
            self._show(replace(self.query, conditions=(), brushes=(), sort_by=TRIAL_ID, page=0))

    def _show(self, query: TableQuery) -> None:
        frame = self.session.cache.frame
        page = run_query(frame, query)
        self.query = replace(query, page=page.page)
        data = table.table_data(page.rows)
        columns = table.table_columns(list(frame.columns))
        if [c.title for c in self.table.columns] != [c.title for c in columns]:
            self.table.columns = columns
        self._page_ids = data["trial"]
        self.table.height = table.table_height(len(self._page_ids))
        guard = self.session.guard
        # The browser's table keeps its row indices across new data and sends back those beyond
        # the new rows' count: clear them first, then tick the page's selected rows.
        guard.set(self.source.selected, "indices", [])
        guard.set(self.source, "data", data)
        # It redraws its rows when its view changes, which new data of the same length (sorting)
        # does not do: a new generation of the view tells it to.
        self._generation += 1
        self.table.view.tags = [self._generation]
        self.show_selection()
        total = len(frame)
        shown = f"{page.matching} of {total} trials" if page.matching != total else f"{total} trials"
        self.page_info.text = render.caption(f"page {page.page + 1} of {page.pages} · {shown}")
        self.previous.disabled = page.page == 0
        self.next.disabled = page.page >= page.pages - 1

    # -- ticks ----------------------------------------------------------------------
    def _on_ticks(self) -> None:
        """The user ticked or unticked rows: the selection keeps the trials of other pages."""
        ticked = [self._page_ids[i] for i in self.source.selected.indices if i < len(self._page_ids)]
        on_page = set(self._page_ids)
        self.session.select([t for t in self.session.selection if t not in on_page] + ticked)

    def show_selection(self) -> None:
        """Tick the rows of the page whose trials are selected."""
        selected = set(self.session.selection)
        ticked = [i for i, t in enumerate(self._page_ids) if t in selected]
        self.session.guard.set(self.source.selected, "indices", ticked)
