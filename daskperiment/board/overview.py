"""The charts beside the history table: result and process time per trial, result against a parameter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Select

from daskperiment.board import charts
from daskperiment.board.summary import best_of

if TYPE_CHECKING:
    from daskperiment.board.session import Session

CHART_HEIGHT = 190


class OverviewCharts:
    """The per-trial charts of the trials of the chosen sweep (of every trial without one).

    Parameters
    ----------
    session : Session
        The page.
    width : int
        Width of the charts.
    """

    def __init__(self, session: Session, width: int) -> None:
        self.session = session
        guard = session.guard
        frame = session.cache.frame
        self.dots = ColumnDataSource(charts.trial_columns(frame.iloc[:0]), name="trial_dots")
        self.rings = ColumnDataSource(charts.trial_columns(frame.iloc[:0]), name="selected_trials")
        self.parameter_dots = ColumnDataSource(charts.parameter_columns(frame.iloc[:0], None)[0],
                                               name="parameter_dots")
        self.parameter_rings = ColumnDataSource(self.parameter_dots.data, name="parameter_rings")
        for source in (self.dots, self.parameter_dots):
            source.selected.on_change("indices", guard.on_change(lambda source=source: self._on_tap(source)))
        self.parameter = Select(title="Result against", value="", options=[], width=200)
        self.parameter.on_change("value", guard.on_change(self.update))
        self.best = ColumnDataSource({"trial": [], "result": []}, name="best_trial")
        self.width = width
        self.layout = column()
        self.rebuild()

    def rebuild(self) -> None:
        """Make the plots again, with the page's chart format (their save tools give PNG or SVG)."""
        backend, width = self.session.chart_backend(), self.width
        self.result_chart = charts.trial_chart(self.dots, self.rings, "result", "Result per trial", "result", width,
                                               CHART_HEIGHT, backend)
        charts.mark_best(self.result_chart, self.best)
        self.time_chart = charts.trial_chart(self.dots, self.rings, "time", "Process time per trial", "seconds",
                                             width, CHART_HEIGHT, backend)
        self.time_chart.x_range = self.result_chart.x_range
        self.parameter_chart = charts.parameter_chart(self.parameter_dots, self.parameter_rings, width, CHART_HEIGHT,
                                                      backend)
        self.layout.children = [self.result_chart, self.time_chart, self.parameter, self.parameter_chart]

    def _on_tap(self, source: ColumnDataSource) -> None:
        """Toggle the trials of the dots clicked (the chart's own selection is cleared)."""
        tapped = {source.data["trial"][i] for i in source.selected.indices}
        self.session.guard.set(source.selected, "indices", [])
        if tapped:
            self.session.toggle(tapped)

    def update(self) -> None:
        """Redraw the charts of the trials in scope."""
        session = self.session
        parameters = session.cache.parameter_names()
        session.guard.set(self.parameter, "options", parameters)
        if self.parameter.value not in parameters:
            session.guard.set(self.parameter, "value", parameters[0] if parameters else "")
        frame = session.scope()
        self.dots.data = charts.trial_columns(frame)
        for plot in (self.result_chart, self.time_chart, self.parameter_chart):
            charts.fit_dots(plot, len(frame))
        name = self.parameter.value or None
        data, labels = charts.parameter_columns(frame, name)
        self.parameter_dots.data = data
        charts.label_parameter_axis(self.parameter_chart, name or "", labels)
        self.update_best()
        self.update_selection()

    def update_best(self) -> None:
        """Star the best trial, in the experiment's direction."""
        best = best_of(self.session.scope(), self.session.direction())
        self.best.data = charts.rows_of({k: self.dots.data[k] for k in ("trial", "result")},
                                        [] if best is None else [best])

    def update_selection(self) -> None:
        """Ring the selected trials' dots: the rows of the charts' own columns, placed as their dots are."""
        self.rings.data = charts.rows_of(self.dots.data, self.session.selection)
        self.parameter_rings.data = charts.rows_of(self.parameter_dots.data, self.session.selection)
