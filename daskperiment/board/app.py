"""One browser session of the dashboard: its widgets, its state and their callbacks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

from bokeh.document import Document
from bokeh.layouts import column, row
from bokeh.models import (
    Button,
    ColumnDataSource,
    Div,
    InlineStyleSheet,
    RadioButtonGroup,
    Select,
    Spacer,
    TabPanel,
    Tabs,
    TextInput,
)

from daskperiment.board import charts, render, table
from daskperiment.board.artifacts import artifacts_view
from daskperiment.board.details import metric_curves
from daskperiment.board.filters import FilterError, parse_filter
from daskperiment.board.query import PAGE_SIZES, TRIAL_ID, TableQuery, run_query
from daskperiment.board.store import TrialCache
from daskperiment.board.summary import summarize
from daskperiment.board.views import SUMMARY, code_view, environment_view
from daskperiment.errors import DaskperimentError
from daskperiment.history import column_title
from daskperiment.records import TrialRecord

logger = logging.getLogger(__name__)

REFRESH_MILLISECONDS = 2000
MAX_CURVES = 10
"""Metric curves drawn at once: the first selected trials."""
DEFAULT_CURVES = 5
"""Without a selection, the metric curves of the latest trials are drawn."""
SUCCESS_FILTERS: tuple[Literal["all", "succeeded", "failed"], ...] = ("all", "succeeded", "failed")
WIDTH = 1360
CHART_WIDTH = WIDTH - table.TABLE_WIDTH - 30


def _div(style: InlineStyleSheet, name: str, text: str = "", **kwargs: Any) -> Div:
    return Div(text=text, name=name, stylesheets=[style], **kwargs)


class Dashboard:
    """The dashboard of one session over a shared :class:`TrialCache`.

    Parameters
    ----------
    doc : bokeh.document.Document
        The session's document, filled here.
    cache : TrialCache
        Trials of the experiment, shared by every session.
    store : str
        How the store is shown in the header.
    """

    def __init__(self, doc: Document, cache: TrialCache, store: str) -> None:
        self.cache = cache
        self.backend = cache.backend
        self.query = TableQuery()
        self.selection: list[int] = []
        self.version = -1
        self._page_ids: list[int] = []
        self._table_generation = 0
        self._syncing = False
        self._build(store)
        doc.title = f"{self.backend.experiment_id} · daskperiment"
        doc.add_root(self.layout)
        self.refresh(force=True)
        doc.add_periodic_callback(self.refresh, REFRESH_MILLISECONDS)

    # -- widgets ------------------------------------------------------------------
    def _build(self, store: str) -> None:
        style = InlineStyleSheet(css=render.STYLE)
        self.status = _div(style, "status", render.status("loading"))
        self.summary = _div(style, "summary")
        self.best = RadioButtonGroup(labels=["lowest is best", "highest is best"], active=0, width=230)
        self.best.on_change("active", self._on_change(self.update_summary))
        self.selection_info = _div(style, "selection")
        self.clear = Button(label="Clear selection", width=120)
        self.clear.on_click(lambda: self._select([]))
        trials_tab = row(self._build_history(style), self._build_charts())
        self.tabs = Tabs(tabs=[
            TabPanel(child=trials_tab, title="Trials"),
            TabPanel(child=self._build_metrics(style), title="Metrics"),
            TabPanel(child=self._build_code(style), title="Code"),
            TabPanel(child=self._build_environment(style), title="Environment"),
            TabPanel(child=self._build_artifacts(style), title="Artifacts"),
        ], name="tabs")
        self.layout = column(
            row(_div(style, "header", render.header(self.backend.experiment_id, store), width=900),
                Spacer(width=120), self.status),
            row(self.summary, column(Spacer(height=30), self.best)),
            row(self.selection_info, self.clear),
            self.tabs,
            width=WIDTH,
        )

    def _build_history(self, style: InlineStyleSheet) -> Any:
        self.success = RadioButtonGroup(labels=["All", "Succeeded", "Failed"], active=0, width=230)
        self.success.on_change("active", self._on_change(self._on_success))
        self.filter = TextInput(placeholder="filter, e.g. lr<0.1, model=cnn (Enter)", width=330, name="filter")
        self.filter.on_change("value", self._on_change(self._on_filter))
        self.sort_by = Select(value=TRIAL_ID, options=[TRIAL_ID], width=130)
        self.sort_by.on_change("value", self._on_change(self._on_sort))
        self.order = RadioButtonGroup(labels=["↓", "↑"], active=0, width=70)
        self.order.on_change("active", self._on_change(self._on_sort))
        self.filter_message = _div(style, "filter_message")
        self.table_source = ColumnDataSource({"trial": []})
        self.table_source.selected.on_change("indices", self._on_change(self._on_table_selection))
        self.table = table.history_table(self.table_source)
        self.previous = Button(label="‹ Previous", width=100)
        self.previous.on_click(lambda: self._go_to_page(self.query.page - 1))
        self.next = Button(label="Next ›", width=100)
        self.next.on_click(lambda: self._go_to_page(self.query.page + 1))
        self.page_info = _div(style, "page_info")
        self.page_size = Select(value=str(self.query.page_size), options=[str(s) for s in PAGE_SIZES],
                                width=70)
        self.page_size.on_change("value", self._on_change(self._on_page_size))
        return column(
            row(self.success, self.filter, self.sort_by, self.order),
            self.filter_message,
            self.table,
            row(self.previous, self.page_info, self.next, Spacer(width=20), self.page_size),
        )

    def _build_charts(self) -> Any:
        self.chart_source = ColumnDataSource(charts.trial_columns(self.cache.frame), name="trial_dots")
        self.selected_source = ColumnDataSource(charts.trial_columns(self.cache.frame.iloc[:0]), name="selected_trials")
        self.parameter_source = ColumnDataSource(charts.parameter_columns(self.cache.frame, None)[0],
                                                 name="parameter_dots")
        for source in (self.chart_source, self.parameter_source):
            source.selected.on_change("indices", self._on_change(lambda source=source: self._on_tap(source)))
        self.selected_parameter_source = ColumnDataSource(self.parameter_source.data, name="parameter_rings")
        self.parameter = Select(title="Result against", value="", options=[], width=200)
        self.parameter.on_change("value", self._on_change(self.update_charts))
        chart_height = 190
        self.result_chart = charts.trial_chart(self.chart_source, self.selected_source, "result",
                                               "Result per trial", "result", CHART_WIDTH, chart_height)
        self.best_source = ColumnDataSource({"trial": [], "result": []})
        charts.mark_best(self.result_chart, self.best_source)
        self.time_chart = charts.trial_chart(self.chart_source, self.selected_source, "time",
                                             "Process time per trial", "seconds", CHART_WIDTH, chart_height)
        self.time_chart.x_range = self.result_chart.x_range
        self.parameter_chart = charts.parameter_chart(self.parameter_source, self.selected_parameter_source,
                                                      CHART_WIDTH, chart_height)
        return column(self.result_chart, self.time_chart, self.parameter, self.parameter_chart)

    def _build_metrics(self, style: InlineStyleSheet) -> Any:
        self.metric = Select(title="Metric", value="", options=[], width=220, name="metric_key")
        self.metric.on_change("value", self._on_change(self.update_metrics))
        self.metric_caption = _div(style, "metric_caption", width=WIDTH - 260)
        self.metric_lines = ColumnDataSource(charts.curve_columns([])[0], name="metric_lines_source")
        self.metric_points = ColumnDataSource(charts.curve_columns([])[1])
        self.metric_chart = charts.metric_chart(self.metric_lines, self.metric_points, WIDTH, 520)
        return column(row(self.metric, self.metric_caption), self.metric_chart)

    def _build_code(self, style: InlineStyleSheet) -> Any:
        self.diff_mode = RadioButtonGroup(labels=["Unified diff", "Side by side"], active=1, width=240)
        self.diff_mode.on_change("active", self._on_change(self.update_code))
        self.code_caption = _div(style, "code_caption", width=WIDTH - 260)
        self.code = _div(style, "code_view", width=WIDTH)
        return column(row(self.diff_mode, self.code_caption), self.code)

    def _build_environment(self, style: InlineStyleSheet) -> Any:
        self.category = Select(title="Category", value=SUMMARY, options=[SUMMARY], width=220)
        self.category.on_change("value", self._on_change(self.update_environment))
        self.environment_caption = _div(style, "environment_caption", width=WIDTH - 260)
        self.environment = _div(style, "environment_view", width=WIDTH // 2 - 10)
        self.environment_diff = _div(style, "environment_diff", width=WIDTH // 2 - 10)
        return column(row(self.category, self.environment_caption), row(self.environment, self.environment_diff))

    def _build_artifacts(self, style: InlineStyleSheet) -> Any:
        self.artifacts_caption = _div(style, "artifacts_caption", width=WIDTH)
        self.artifacts = _div(style, "artifacts_view", width=WIDTH)
        return column(self.artifacts_caption, self.artifacts)

    def _on_change(self, update: Callable[[], None]) -> Callable[[str, Any, Any], None]:
        """A property callback running ``update``, ignored while the session itself changes widgets."""

        def callback(attribute: str, old: Any, new: Any) -> None:
            if not self._syncing:
                self._guarded(update)

        return callback

    def _guarded(self, update: Callable[[], None]) -> None:
        try:
            update()
        except DaskperimentError as exc:  # the store went away: say so, keep the page alive
            logger.warning("dashboard of %r: %s", self.backend.experiment_id, exc)
            self.status.text = render.status(f"store unreachable: {exc}", error=True)

    # -- refresh --------------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        """Show the trials recorded since the last refresh (called every few seconds)."""
        try:
            self.cache.refresh()
        except DaskperimentError as exc:
            logger.warning("dashboard of %r cannot read its store: %s", self.backend.experiment_id, exc)
            self.status.text = render.status(f"store unreachable, retrying: {exc}", error=True)
            return
        if force or self.cache.version != self.version:
            self.version = self.cache.version
            self._guarded(self.update_all)
        trials = len(self.cache.frame)
        self.status.text = render.status(f"live · {trials} trial{'s' * (trials != 1)} · "
                                         f"checked {time.strftime('%H:%M:%S')}")

    def update_all(self) -> None:
        """Redraw every view from the cache."""
        names = [TRIAL_ID, *self.cache.frame.columns]
        self.sort_by.options = [(name, column_title(name)) for name in names]
        parameters = self.cache.parameter_names()
        self.parameter.options = parameters
        if self.parameter.value not in parameters:
            self._set(self.parameter, "value", parameters[0] if parameters else "")
        keys = self.backend.metric_keys()
        self.metric.options = keys
        if self.metric.value not in keys:
            self._set(self.metric, "value", keys[0] if keys else "")
        self.update_table()
        self.update_summary()
        self.update_charts()
        self.update_selection()

    def _set(self, model: Any, attribute: str, value: Any) -> None:
        self._syncing = True
        try:
            setattr(model, attribute, value)
        finally:
            self._syncing = False

    # -- history table ----------------------------------------------------------------
    def _on_success(self) -> None:
        self.query = replace(self.query, success=SUCCESS_FILTERS[self.success.active], page=0)
        self.update_table()

    def _on_filter(self) -> None:
        try:
            conditions = parse_filter(self.filter.value, [TRIAL_ID, *self.cache.frame.columns])
            self._show_page(replace(self.query, conditions=conditions, page=0))
        except FilterError as exc:  # the table stays as it was
            self.filter_message.text = render.message(str(exc))
            return
        self.filter_message.text = ""

    def _on_sort(self) -> None:
        self.query = replace(self.query, sort_by=self.sort_by.value, descending=self.order.active == 0,
                             page=0)
        self.update_table()

    def _on_page_size(self) -> None:
        self.query = replace(self.query, page_size=int(self.page_size.value), page=0)
        self.update_table()

    def _go_to_page(self, page: int) -> None:
        self.query = replace(self.query, page=page)
        self._guarded(self.update_table)

    def update_table(self) -> None:
        """Show the current page of the filtered, sorted history."""
        try:
            self._show_page(self.query)
        except FilterError as exc:  # the history changed under the filter (its store was reset)
            self.filter_message.text = render.message(f"{exc}; the filter is off")
            self._show_page(replace(self.query, conditions=(), sort_by=TRIAL_ID, page=0))

    def _show_page(self, query: TableQuery) -> None:
        """Show the page ``query`` asks for, and make it the session's query.

        Raises
        ------
        FilterError
            When the query cannot run (nothing changes then).
        """
        frame = self.cache.frame
        page = run_query(frame, query)
        self.query = replace(query, page=page.page)
        data = table.table_data(page.rows)
        columns = table.table_columns(list(frame.columns))
        if [c.title for c in self.table.columns] != [c.title for c in columns]:
            self.table.columns = columns
        self._page_ids = data["trial"]
        self.table.height = table.table_height(len(self._page_ids))
        self._syncing = True
        try:
            # The browser's table keeps its row indices across new data and sends back those
            # beyond the new rows' count: clear them first, then tick the page's selected rows.
            self.table_source.selected.indices = []
            self.table_source.data = data
            # The browser's table redraws its rows when its view changes, which new data of the
            # same length does not do (sorting): a new generation of the view tells it to.
            self._table_generation += 1
            self.table.view.tags = [self._table_generation]
            self.table_source.selected.indices = self._ticked_rows()
        finally:
            self._syncing = False
        shown = f"{page.matching} of {len(frame)} trials" if page.matching != len(frame) else f"{len(frame)} trials"
        self.page_info.text = render.caption(f"page {page.page + 1} of {page.pages} · {shown}")
        self.previous.disabled = page.page == 0
        self.next.disabled = page.page >= page.pages - 1

    def _on_table_selection(self) -> None:
        chosen = [self._page_ids[i] for i in self.table_source.selected.indices if i < len(self._page_ids)]
        on_page = set(self._page_ids)
        kept = [t for t in self.selection if t not in on_page]
        self._select(kept + [t for t in chosen if t not in kept])

    def _on_tap(self, source: ColumnDataSource) -> None:
        """Toggle the trials of the dots clicked in a chart (the chart's own selection is cleared)."""
        tapped = {source.data["trial"][i] for i in source.selected.indices}
        self._set(source.selected, "indices", [])
        if tapped:
            chosen = set(self.selection)
            self._select(sorted(chosen - tapped if tapped <= chosen else chosen | tapped))

    def _select(self, trial_ids: list[int]) -> None:
        self.selection = sorted(set(trial_ids))
        self._set(self.table_source.selected, "indices", self._ticked_rows())
        self._guarded(self.update_selection)

    def _ticked_rows(self) -> list[int]:
        """Rows of the table's page whose trials are selected."""
        return [i for i, t in enumerate(self._page_ids) if t in self.selection]

    # -- summary and charts ---------------------------------------------------------
    def _best(self) -> Literal["min", "max"]:
        return "min" if self.best.active == 0 else "max"

    def update_summary(self) -> None:
        """Redraw the summary cards."""
        summary = summarize(self.cache.frame, self.cache.parameter_names(), self._best())
        self.summary.text = render.summary_cards(summary, self._best())
        best = [] if summary.best_trial is None else [summary.best_trial]
        self.best_source.data = {"trial": best, "result": [summary.best_result] if best else []}

    def update_charts(self) -> None:
        """Redraw the per-trial charts and the result-against-parameter scatter."""
        frame = self.cache.frame
        self.chart_source.data = charts.trial_columns(frame)
        for plot in (self.result_chart, self.time_chart, self.parameter_chart):
            charts.fit_dots(plot, len(frame))
        name = self.parameter.value or None
        data, labels = charts.parameter_columns(frame, name)
        self.parameter_source.data = data
        charts.label_parameter_axis(self.parameter_chart, name or "", labels)
        self._update_selected_points()

    def _update_selected_points(self) -> None:
        """Ring the selected trials' dots: the rows of the charts' own columns, placed as their dots are."""
        self.selected_source.data = charts.rows_of(self.chart_source.data, self.selection)
        self.selected_parameter_source.data = charts.rows_of(self.parameter_source.data, self.selection)

    # -- selected trials --------------------------------------------------------------
    def _shown_trials(self, default: int) -> list[int]:
        """The selected trials, or else the ``default`` latest ones."""
        if self.selection:
            return self.selection
        return [int(t) for t in self.cache.frame.index[-default:]] if default else []

    def update_selection(self) -> None:
        """Redraw what depends on the selected trials."""
        if self.selection:
            ids = ", ".join(str(t) for t in self.selection)
            text = f"Selected trials: {ids}"
        else:
            text = ("No trial selected: tick trials in the table to compare their metrics, code, environment "
                    "and files.")
        self.selection_info.text = render.caption(text)
        self.clear.disabled = not self.selection
        self._update_selected_points()
        self.update_metrics()
        self.update_code()
        self.update_environment()
        self.update_artifacts()

    def update_metrics(self) -> None:
        """Draw the curves of the chosen metric for the selected (or latest) trials."""
        key = self.metric.value
        shown = self._shown_trials(DEFAULT_CURVES)[:MAX_CURVES]
        curves = metric_curves(self.backend, key, shown) if key and shown else []
        lines, points = charts.curve_columns(curves)
        self.metric_lines.data = lines
        self.metric_points.data = points
        self.metric_chart.title.text = key
        if not key:
            text = "No metric saved yet (ex.save_metric(key, epoch, value) inside a step)."
        elif not curves:
            text = f"The shown trials saved no value of {key!r}."
        else:
            which = "selected" if self.selection else "latest"
            text = f"{key} of the {which} trials: " + ", ".join(str(c.trial_id) for c in curves)
            if len(self.selection) > MAX_CURVES:
                text += f" (the first {MAX_CURVES} of {len(self.selection)} selected)"
        self.metric_caption.text = render.caption(text)

    def _pair(self) -> tuple[TrialRecord | None, TrialRecord | None]:
        """The first two selected trials (or the latest one), as far as they are loaded."""
        trials = [t for t in (self.cache.trial(i) for i in self._shown_trials(1)[:2]) if t is not None]
        return (trials[0] if trials else None), (trials[1] if len(trials) > 1 else None)

    def update_code(self) -> None:
        """Show the code of one trial, or the diff between the first two selected."""
        view = code_view(self.backend, *self._pair(), side_by_side=self.diff_mode.active == 1)
        self.code_caption.text = view.caption
        self.code.text = view.html

    def update_environment(self) -> None:
        """Show a trial's environment by category, and what changed between two trials."""
        view = environment_view(self.backend, *self._pair(), category=self.category.value)
        self.category.options = view.categories
        if self.category.value not in view.categories:
            self._set(self.category, "value", SUMMARY)
        self.environment_caption.text = view.caption
        self.environment.text = view.html
        self.environment_diff.text = view.diff_html

    def update_artifacts(self) -> None:
        """List the files the selected (or the latest) trials kept, and the steps they took from the cache."""
        trials = [t for t in (self.cache.trial(i) for i in self._shown_trials(1)) if t is not None]
        view = artifacts_view(self.backend, trials, selected=bool(self.selection))
        self.artifacts_caption.text = view.caption
        self.artifacts.text = view.html
