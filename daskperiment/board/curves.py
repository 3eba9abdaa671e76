"""The Metrics tab: curves of several metrics at once (one small chart each), smoothed, by epoch or time.

The curves are those of the selected trials (the first :data:`MAX_CURVES`),
else of the latest trials. Curves of trials still running are read again at
each refresh of the page, so they grow as the trials save points.

By time, a point is drawn at the seconds from its trial's start to the time
it was saved. Points stored before daskperiment recorded times have none:
their trial's epochs are then spread evenly over its process time, and the
caption says which trials are drawn so.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from bokeh.layouts import column, gridplot, row
from bokeh.models import ColumnDataSource, Div, MultiSelect, RadioButtonGroup, Slider

from daskperiment.board import charts, render
from daskperiment.board.cells import numeric
from daskperiment.board.details import Curve, epoch_times, metric_curves, seconds_since, smooth

if TYPE_CHECKING:
    from daskperiment.board.session import Session

MAX_CURVES = 10
"""Metric curves drawn at once: the first selected trials."""
DEFAULT_CURVES = 5
"""Without a selection, the metric curves of the latest trials are drawn."""
MAX_CHARTS = 6
"""Metrics drawn at once (one chart each)."""
DEFAULT_CHARTS = 4
"""Metrics drawn at first: the first keys."""
X_AXES = ("epoch", "time")


class MetricsView:
    """The Metrics tab of one page.

    Parameters
    ----------
    session : Session
        The page.
    width : int
        Width of the tab.
    """

    def __init__(self, session: Session, width: int) -> None:
        self.session = session
        self.width = width
        guard = session.guard
        self.keys = MultiSelect(title="Metrics (Ctrl+click for several)", value=[], options=[], size=5, width=240,
                                name="metric_keys")
        self.keys.on_change("value", guard.on_change(self.update))
        self.smoothing = Slider(title="Smoothing", start=0.0, end=0.95, step=0.05, value=0.0, width=200,
                                name="smoothing")
        self.smoothing.on_change("value_throttled", guard.on_change(self.update))
        self.x_axis = RadioButtonGroup(labels=["by epoch", "by time (s)"], active=0, width=200, name="metric_x")
        self.x_axis.on_change("active", guard.on_change(self.update))
        self.caption = Div(text="", name="metric_caption", width=width - 700, stylesheets=[session.style])
        self.sources = [  # one pair per chart, kept when the charts are made again
            (ColumnDataSource(charts.curve_columns([])[0],
                              name="metric_lines_source" if i == 0 else f"metric_lines_source_{i}"),
             ColumnDataSource(charts.curve_columns([])[1]))
            for i in range(MAX_CHARTS)
        ]
        self.plots: list[Any] = []
        self.grid = column()
        self.trials: list[int] = []
        self.layout = column(row(self.keys, column(self.x_axis, self.smoothing), self.caption), self.grid)

    def _chosen_keys(self) -> list[str]:
        """The metrics to draw: those chosen that still exist, else the first ones."""
        keys = self.session.cache.backend.metric_keys()
        self.session.guard.set(self.keys, "options", keys)
        chosen = [k for k in self.keys.value if k in keys] or keys[:DEFAULT_CHARTS]
        if chosen != list(self.keys.value):
            self.session.guard.set(self.keys, "value", chosen)
        return chosen[:MAX_CHARTS]

    def _charts_for(self, keys: list[str]) -> None:
        """One chart per key (made again only when the keys change)."""
        backend = self.session.chart_backend()
        if [p.title.text for p in self.plots] == keys and all(p.output_backend == backend for p in self.plots):
            return
        self.plots = []
        wide = len(keys) == 1
        width = self.width if wide else self.width // 2 - 10
        for key, (lines, points) in zip(keys, self.sources):
            plot = charts.metric_chart(lines, points, width, 480 if wide else 300, backend)
            charts.set_title(plot, key)
            self.plots.append(plot)
        self.grid.children = [gridplot(self.plots, ncols=1 if wide else 2, toolbar_location="right")] if keys else []

    def _shown_trials(self) -> list[int]:
        session = self.session
        if session.selection:
            return session.selection[:MAX_CURVES]
        return [int(t) for t in session.scope().index[-DEFAULT_CURVES:]]

    def update(self) -> None:
        """Redraw the curves of the chosen metrics for the selected (or latest) trials."""
        keys = self._chosen_keys()
        self._charts_for(keys)
        self.trials = self._shown_trials()
        by_time = X_AXES[self.x_axis.active] == "time"
        seconds = numeric(self.session.cache.frame["Process Time"])
        starts = self._starts() if by_time else {}
        untimed: set[int] = set()
        estimated: set[int] = set()
        drawn: set[int] = set()
        for key, plot, (lines, points) in zip(keys, self.plots, self.sources):
            curves = metric_curves(self.session.cache.backend, key, self.trials) if self.trials else []
            shaped = []
            for curve in curves:
                xs: list[float] = list(curve.epochs)
                if by_time and curve.timed and curve.trial_id in starts:
                    xs = seconds_since(curve.times, starts[curve.trial_id])
                elif by_time:  # saved without times: its epochs spread over its process time
                    duration = seconds.get(curve.trial_id, math.nan)
                    if not duration > 0:  # still running, or not timed
                        untimed.add(curve.trial_id)
                        continue
                    xs = epoch_times(curve.epochs, float(duration))
                    estimated.add(curve.trial_id)
                shaped.append(Curve(curve.trial_id, curve.epochs, smooth(curve.values, self.smoothing.value), xs=xs))
                drawn.add(curve.trial_id)
            lines.data, points.data = charts.curve_columns(shaped)
            plot.xaxis.axis_label = "seconds since the trial's start" if by_time else "epoch"
        self.caption.text = render.caption(self._caption(keys, drawn, untimed, estimated))

    def _starts(self) -> dict[int, float]:
        """POSIX time each shown trial started: a recorded trial's end minus its process time, else its start."""
        cache = self.session.cache
        starts: dict[int, float] = {}
        for trial_id in self.trials:
            trial = cache.trial(trial_id)
            if trial is not None:
                starts[trial_id] = trial.finished - trial.process_time
        unrecorded = [t for t in self.trials if t not in starts]
        if unrecorded:  # running (or killed) trials
            starts.update((t, start.started) for t, start in cache.backend.load_starts(unrecorded).items())
        return starts

    def _caption(self, keys: list[str], drawn: set[int], untimed: set[int], estimated: set[int]) -> str:
        session = self.session
        if not keys:
            return "No metric saved yet (ex.save_metric(key, epoch, value) inside a step)."
        if not drawn:
            return "The shown trials saved no value of " + ", ".join(map(repr, keys)) + "."
        which = "selected" if session.selection else "latest"
        text = f"{', '.join(keys)} of the {which} trials: " + ", ".join(str(t) for t in self.trials if t in drawn)
        if len(session.selection) > MAX_CURVES:
            text += f" (the first {MAX_CURVES} of {len(session.selection)} selected)"
        running = sorted(set(self.trials) & set(session.cache.running()))
        if running:
            text += " · live: " + ", ".join(f"trial {t}" for t in running) + " running"
        if estimated:
            text += (" · points stored without their time (by an older daskperiment), epochs spread evenly over "
                     "the process time: " + ", ".join(map(str, sorted(estimated))))
        if untimed:
            text += " · no time nor process time, not drawn by time: " + ", ".join(map(str, sorted(untimed)))
        return text

    def refresh_running(self) -> None:
        """Read again the curves of shown trials that are running (called at each refresh of the page)."""
        if set(self.trials) & set(self.session.cache.running()):
            self.update()
