"""One browser page of the dashboard: its state (selection, query, sweep), its views and their updates.

The selection is a set of trial ids: the table's ticks, the charts' rings, the
compared trials and the curves always show the same trials, whatever the
filter, the order or the page. Views of other tabs are redrawn when their tab
is shown (a history of 100,000 trials draws only what is seen).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from html import escape
from typing import TYPE_CHECKING, Any

from bokeh.document import Document
from bokeh.layouts import column, row
from bokeh.models import Button, Div, InlineStyleSheet, RadioButtonGroup, Select, Spacer, TabPanel, Tabs

from daskperiment.board import render
from daskperiment.board.compare import CompareView
from daskperiment.board.curves import MetricsView
from daskperiment.board.detail_tabs import ArtifactsTab, CodeTab, EnvironmentTab
from daskperiment.board.export import Exports, export_url
from daskperiment.board.filters import Brush
from daskperiment.board.history_view import HistoryView
from daskperiment.board.notes import TrialTab
from daskperiment.board.overview import OverviewCharts
from daskperiment.board.parallel import ParallelView
from daskperiment.board.query import TableQuery, matching_rows
from daskperiment.board.scatter import ScatterView
from daskperiment.board.session import Guard
from daskperiment.board.summary import summarize
from daskperiment.board.table import TABLE_WIDTH
from daskperiment.direction import DEFAULT_DIRECTION, DIRECTIONS, Direction
from daskperiment.errors import DaskperimentError

if TYPE_CHECKING:
    import pandas as pd

    from daskperiment.board.store import TrialCache

logger = logging.getLogger(__name__)

REFRESH_MILLISECONDS = 2000
WIDTH = 1360
CHART_WIDTH = WIDTH - TABLE_WIDTH - 30
CHART_FORMATS = ("canvas", "svg")
"""Bokeh back-ends of the charts: their save tool then gives a PNG, or an SVG."""
ALL_SWEEPS = ""


class Dashboard:
    """The dashboard of one page over a shared :class:`TrialCache`.

    Parameters
    ----------
    doc : bokeh.document.Document
        The page's document, filled here.
    cache : TrialCache
        Trials of the experiment, shared by every page.
    store : str
        How the store is shown in the header.
    exports : Exports, optional
        Where the page registers its query for the CSV route (the server's);
        by default one of its own.
    """

    def __init__(self, doc: Document, cache: TrialCache, store: str, exports: Exports | None = None) -> None:
        self.cache = cache
        self.backend = cache.backend
        self.style = InlineStyleSheet(css=render.STYLE)
        self.guard = Guard(self._report_store_error)
        self._selection: list[int] = []
        self.version = -1
        self._memo: dict[str, tuple[Any, pd.DataFrame]] = {}
        self._stale: set[str] = set()
        self.exports = exports if exports is not None else Exports()
        self.export_token = self.exports.register(TableQuery())
        self._build(store)
        doc.title = f"{self.backend.experiment_id} · daskperiment"
        doc.add_root(self.layout)
        doc.on_session_destroyed(lambda context: self.exports.drop(self.export_token))
        self.refresh(force=True)
        doc.add_periodic_callback(self.refresh, REFRESH_MILLISECONDS)

    # -- widgets ------------------------------------------------------------------
    def _div(self, name: str, text: str = "", **kwargs: Any) -> Div:
        return Div(text=text, name=name, stylesheets=[self.style], **kwargs)

    def _build(self, store: str) -> None:
        guard = self.guard
        self.status = self._div("status", render.status("loading"))
        self.summary = self._div("summary")
        self.best = RadioButtonGroup(labels=["lowest is best", "highest is best"], width=230, name="direction",
                                     active=DIRECTIONS.index(self.cache.direction or DEFAULT_DIRECTION))
        self.best.on_change("active", guard.on_change(self._on_direction))
        self.selection_info = self._div("selection", width=760)
        self.clear = Button(label="Clear selection", width=120)
        self.clear.on_click(guard.on_click(lambda: self.select([])))
        self.sweep = Select(title="Sweep", value=ALL_SWEEPS, options=[(ALL_SWEEPS, "All trials")], width=220,
                            name="sweep")
        self.sweep.on_change("value", guard.on_change(self._on_sweep))
        url = escape(export_url(self.export_token, self.backend.experiment_id))
        self.export = self._div("export", f'<a class="export" href="{url}" download>⇩ Table as CSV</a>')
        self.chart_format = RadioButtonGroup(labels=["PNG", "SVG"], active=0, width=110, name="chart_format")
        self.chart_format.on_change("active", guard.on_change(self._on_chart_format))
        self.history = HistoryView(self, self._on_query)
        self.overview = OverviewCharts(self, CHART_WIDTH)
        self.parallel = ParallelView(self, WIDTH, 560)
        self.scatter = ScatterView(self, WIDTH - 40, 470)
        self.compare = CompareView(self, WIDTH)
        self.trial = TrialTab(self, WIDTH)
        self.metrics = MetricsView(self, WIDTH)
        self.code = CodeTab(self, WIDTH)
        self.environment = EnvironmentTab(self, WIDTH)
        self.artifacts = ArtifactsTab(self, WIDTH)
        self.lazy = {"Parallel": self.parallel, "Scatter": self.scatter, "Compare": self.compare,
                     "Trial": self.trial, "Metrics": self.metrics, "Code": self.code, "Environment": self.environment,
                     "Artifacts": self.artifacts}
        """Views redrawn when their tab is shown."""
        self._stale.update(self.lazy)
        panels = [TabPanel(child=row(self.history.layout, self.overview.layout), title="Trials")]
        panels += [TabPanel(child=view.layout, title=title) for title, view in self.lazy.items()]
        self.tabs = Tabs(tabs=panels, name="tabs")
        self.tabs.on_change("active", guard.on_change(self._update_shown_tab))
        self.layout = column(
            row(self._div("header", render.header(self.backend.experiment_id, store), width=900),
                Spacer(width=120), self.status),
            row(self.summary, column(Spacer(height=30), self.best)),
            row(self.selection_info, self.clear, Spacer(width=20), self.sweep,
                column(Spacer(height=24), self.export), column(self._div("format_label", render.caption(
                    "Charts save as")), self.chart_format)),
            self.tabs,
            width=WIDTH,
        )

    def _report_store_error(self, exc: DaskperimentError) -> None:
        logger.warning("dashboard of %r: %s", self.backend.experiment_id, exc)
        self.status.text = render.status(f"store unreachable: {exc}", error=True)

    # -- the page's state, as the views read it (see daskperiment.board.session.Session) ---
    @property
    def selection(self) -> list[int]:
        """The selected trial ids, sorted."""
        return self._selection

    def direction(self) -> Direction:
        """The experiment's stored direction, else the default (minimize)."""
        return self.cache.direction or DEFAULT_DIRECTION

    def _memoized(self, name: str, key: Any, make: Any) -> pd.DataFrame:
        cached = self._memo.get(name)
        if cached is None or cached[0] != key:
            self._memo[name] = (key, make())
        return self._memo[name][1]

    def scope(self) -> pd.DataFrame:
        """The history rows of the chosen sweep (of every trial when none is chosen)."""
        sweep = self.history.query.sweep
        frame = self.cache.frame
        if sweep is None:
            return frame
        return self._memoized("scope", (self.cache.version, sweep),
                              lambda: frame[frame["Sweep"] == sweep] if "Sweep" in frame.columns else frame.iloc[:0])

    def matching(self, brushed: bool = True) -> pd.DataFrame:
        """The history rows passing the table's filters (with its brushes, unless ``brushed`` is False)."""
        query = replace(self.history.query, page=0)
        if not brushed:
            query = replace(query, brushes=())
        return self._memoized(f"matching-{brushed}", (self.cache.version, query),
                              lambda: matching_rows(self.cache.frame, query))

    def brushes(self) -> tuple[Brush, ...]:
        """The ranges brushed on the parallel coordinates' axes."""
        return self.history.query.brushes

    def set_brushes(self, brushes: tuple[Brush, ...]) -> None:
        """Filter the trials by these brushed ranges (the table and the views follow)."""
        self.history.apply(replace(self.history.query, brushes=brushes, page=0))

    def select(self, trial_ids: Iterable[int]) -> None:
        """Make ``trial_ids`` the selection; every view shows it."""
        self._selection = sorted(set(trial_ids))
        self.history.show_selection()
        self.overview.update_selection()
        if "Parallel" not in self._stale:
            self.parallel.update_selection()
        if "Scatter" not in self._stale:
            self.scatter.update_selection()
        if self._selection:
            text = "Selected trials: " + ", ".join(str(t) for t in self._selection)
        else:
            text = ("No trial selected: tick trials in the table (or click dots and lines) to compare their "
                    "values, metrics, code, environment and files.")
        self.selection_info.text = render.caption(text)
        self.clear.disabled = not self._selection
        self._invalidate({"Compare", "Trial", "Metrics", "Code", "Environment", "Artifacts"})

    def toggle(self, trial_ids: Iterable[int]) -> None:
        """Unselect ``trial_ids`` when all are selected, else add them to the selection."""
        toggled, chosen = set(trial_ids), set(self._selection)
        self.select(chosen - toggled if toggled <= chosen else chosen | toggled)

    # -- updates --------------------------------------------------------------------
    def _invalidate(self, titles: Iterable[str]) -> None:
        """Mark the views of ``titles`` as out of date, and redraw the one shown."""
        self._stale.update(titles)
        self._update_shown_tab()

    def _update_shown_tab(self) -> None:
        title = self.tabs.tabs[self.tabs.active].title
        if title in self._stale:
            self._stale.discard(title)
            self.guard.run(self.lazy[title].update)

    def _on_query(self) -> None:
        """The table's query changed: the CSV follows, and so do the views of the matching trials."""
        self.exports.update(self.export_token, self.history.query)
        self._invalidate({"Parallel", "Scatter"})

    def _on_sweep(self) -> None:
        sweep = self.sweep.value or None
        self.history.apply(replace(self.history.query, sweep=sweep, brushes=(), page=0))
        self._update_scope()

    def _update_scope(self) -> None:
        """Redraw what shows the trials in scope: summary and per-trial charts, then the other tabs."""
        self.update_summary()
        self.overview.update()
        self._invalidate(self.lazy)

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
            self.guard.run(self.update_all)
        elif DIRECTIONS[self.best.active] != self.direction():  # set elsewhere: the CLI, a search
            self.guard.run(self._update_direction)
        elif self.tabs.tabs[self.tabs.active].title == "Metrics":
            self.guard.run(self.metrics.refresh_running)
        trials, running = len(self.cache.frame), len(self.cache.running())
        self.status.text = render.status(
            f"live · {trials} trial{'s' * (trials != 1)}" + (f" · {running} running" if running else "")
            + f" · checked {time.strftime('%H:%M:%S')}")

    def redraw(self) -> None:
        """Redraw every view from the cache now (this page changed what the store holds)."""
        self.version = self.cache.version
        self.update_all()

    def update_all(self) -> None:
        """Redraw every view from the cache (views of hidden tabs when they are shown)."""
        self._update_sweeps()
        self.history.update()
        self.exports.update(self.export_token, self.history.query)
        self.select(self._selection)
        self._update_scope()

    def _update_sweeps(self) -> None:
        """Offer the sweeps of the history (with their trial counts) to choose from."""
        frame = self.cache.frame
        counts = frame["Sweep"].dropna().value_counts(sort=False) if "Sweep" in frame.columns else {}
        options = [(ALL_SWEEPS, f"All trials ({len(frame)})")]
        options += [(str(s), f"{s} ({n} trials)") for s, n in counts.items()]
        self.guard.set(self.sweep, "options", options)
        self.sweep.visible = len(options) > 1  # shown when the history has sweeps

    # -- the direction ----------------------------------------------------------------
    def _on_direction(self) -> None:
        """Store the direction the user chose: every page, and later searches, follow it."""
        try:
            self.cache.set_direction(DIRECTIONS[self.best.active])
        except DaskperimentError as exc:  # e.g. a read-only store: the direction stays as it was
            logger.warning("dashboard of %r cannot store the direction: %s", self.backend.experiment_id, exc)
            self.status.text = render.status(f"cannot store the direction: {exc}", error=True)
        self._update_direction()

    def _update_direction(self) -> None:
        self.update_summary()
        self.overview.update_best()
        self._invalidate({"Parallel", "Scatter", "Compare", "Trial"})

    def update_summary(self) -> None:
        """Redraw the summary cards of the trials in scope, in the experiment's direction."""
        direction = self.direction()
        self.guard.set(self.best, "active", DIRECTIONS.index(direction))
        summary = summarize(self.scope(), self.cache.parameter_names(), direction)
        self.summary.text = render.summary_cards(summary, direction, stored=self.cache.direction is not None)

    # -- export ---------------------------------------------------------------------
    def chart_backend(self) -> str:
        """How charts are drawn: ``"canvas"`` (saved as PNG) or ``"svg"`` (saved as SVG)."""
        return CHART_FORMATS[self.chart_format.active]

    def _on_chart_format(self) -> None:
        """Make the charts again in the chosen format (a plot keeps the one it was made with)."""
        self.overview.rebuild()
        self.overview.update()
        self.parallel.rebuild()
        self._invalidate({"Parallel", "Scatter", "Metrics"})
