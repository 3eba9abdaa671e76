"""The scatter of any two columns of the trials, coloured by a third, on linear or log axes.

A column is a parameter, the result, the process time, the seed, the trial id
or a summary (last, lowest, highest value) of a metric. Values that are not
all numbers are placed by their text (labelled ticks).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bokeh.layouts import column, row
from bokeh.models import (
    CheckboxGroup,
    ColorBar,
    ColumnDataSource,
    Div,
    FixedTicker,
    HoverTool,
    LinearColorMapper,
    Select,
    TapTool,
)
from bokeh.palettes import Category20_20, Viridis256

from daskperiment.board import render
from daskperiment.board.cells import cell_text, column_of, is_numeric_column, numeric, ordered_texts
from daskperiment.board.charts import BEST_COLOR, SELECTED_COLOR, new_figure, rows_of
from daskperiment.board.details import SUMMARY_STATISTICS, metric_summaries
from daskperiment.board.summary import best_of
from daskperiment.history import TRIAL_ID, column_title

if TYPE_CHECKING:
    import pandas as pd

    from daskperiment.board.session import Session

MAX_POINTS = 20_000
"""Trials plotted at most: the latest (choose a sweep or filter to see the others)."""
MAX_LABELLED = 30
"""Text values labelled on an axis at most."""
MISSING_COLOR = "#c3cad3"
LOG_X, LOG_Y = 0, 1
_FIXED = ("Result", "Process Time", "Seed", TRIAL_ID)


def column_choice(name: str) -> str:
    """The option value of history column ``name``."""
    return json.dumps(["column", name])


def metric_choice(key: str, statistic: str) -> str:
    """The option value of a summary (``last``, ``min`` or ``max``) of metric ``key``."""
    return json.dumps(["metric", key, statistic])


def choices(parameters: Sequence[str], metric_keys: Sequence[str], columns: Sequence[str]) -> list[tuple[str, str]]:
    """The columns a scatter can show, as ``(value, label)`` options."""
    names = [*parameters, *(n for n in _FIXED if n in columns or n == TRIAL_ID)]
    options = [(column_choice(n), column_title(n)) for n in names]
    options += [(metric_choice(k, s), f"{k} · {s}") for k in metric_keys for s in SUMMARY_STATISTICS]
    return options


def label_of(choice: str) -> str:
    """How an option value is named on an axis."""
    kind, name, *statistic = json.loads(choice)
    return column_title(name) if kind == "column" else f"{name} · {statistic[0]}"


@dataclass(frozen=True)
class Placed:
    """Values placed on an axis: numbers as they are, or texts at 0, 1, 2... with tick labels."""

    positions: list[float]
    texts: list[str]
    labels: dict[float, str]
    numeric: bool

    def log_problem(self) -> str | None:
        """Why the values cannot go on a log axis (None when they can)."""
        if not self.numeric:
            return "its values are not all numbers"
        if any(p <= 0 for p in self.positions if not math.isnan(p)):
            return "it has values ≤ 0"
        return None


def place(values: pd.Series) -> Placed:
    """``values`` placed on an axis: numeric when every filled one is a number, else by their sorted texts."""
    texts = [cell_text(v) for v in values]
    if is_numeric_column(values):
        return Placed(numeric(values).tolist(), texts, {}, True)
    categories = ordered_texts(values)
    position = {text: float(i) for i, text in enumerate(categories)}
    labels = {p: t[:20] for t, p in position.items()} if len(categories) <= MAX_LABELLED else {}
    return Placed([position.get(t, math.nan) for t in texts], texts, labels, False)


class ScatterView:
    """The scatter tab of one page.

    Parameters
    ----------
    session : Session
        The page.
    width, height : int
        Size of the plot.
    """

    def __init__(self, session: Session, width: int, height: int) -> None:
        self.session = session
        self.width, self.height = width, height
        guard = session.guard
        self.x = Select(title="x", value="", options=[], width=220, name="scatter_x")
        self.y = Select(title="y", value="", options=[], width=220, name="scatter_y")
        self.color = Select(title="Colour by", value="", options=[], width=220, name="scatter_color")
        self.log = CheckboxGroup(labels=["log x", "log y"], active=[], inline=True, name="scatter_log")
        for widget in (self.x, self.y, self.color):
            widget.on_change("value", guard.on_change(self.update))
        self.log.on_change("active", guard.on_change(self.update))
        self.caption = Div(text="", name="scatter_caption", width=width, stylesheets=[session.style])
        self.legend = Div(text="", name="scatter_legend", width=width, stylesheets=[session.style])
        self.source = ColumnDataSource({"x": [], "y": [], "trial": []}, name="scatter_dots")
        self.rings = ColumnDataSource({"x": [], "y": [], "trial": []}, name="scatter_rings")
        self.best = ColumnDataSource({"x": [], "y": [], "trial": []}, name="scatter_best")
        self.source.selected.on_change("indices", guard.on_change(self._on_tap))
        self.holder = column(name="scatter_holder")
        self.layout = column(row(self.x, self.y, self.color, column(Div(text="&nbsp;"), self.log)),
                             self.caption, self.holder, self.legend)

    def _on_tap(self) -> None:
        tapped = {self.source.data["trial"][i] for i in self.source.selected.indices}
        self.session.guard.set(self.source.selected, "indices", [])
        if tapped:
            self.session.toggle(tapped)

    def _keep_choices(self) -> None:
        """Offer the columns there are; keep the chosen ones, else pick a first parameter and the result."""
        cache = self.session.cache
        parameters = cache.parameter_names()
        options = choices(parameters, cache.backend.metric_keys(), list(cache.frame.columns))
        values = [value for value, _ in options]
        defaults = {
            self.x: column_choice(parameters[0]) if parameters else column_choice(TRIAL_ID),
            self.y: column_choice("Result"),
            self.color: column_choice(parameters[1]) if len(parameters) > 1 else column_choice("Result"),
        }
        for widget, default in defaults.items():
            self.session.guard.set(widget, "options", options)
            if widget.value not in values:
                self.session.guard.set(widget, "value", default)

    def _values(self, choice: str, frame: pd.DataFrame) -> pd.Series:
        import pandas as pd

        kind, name, *statistic = json.loads(choice)
        if kind == "column":
            return column_of(frame, name) if name == TRIAL_ID or name in frame.columns else pd.Series(
                [None] * len(frame), index=frame.index, dtype=object)
        ids = [int(t) for t in frame.index]
        summaries = metric_summaries(self.session.cache.backend, name, ids)
        return pd.Series([getattr(summaries[t], statistic[0]) if t in summaries else math.nan for t in ids],
                         index=frame.index, dtype=float)

    def update(self) -> None:
        """Redraw the scatter of the page's trials."""
        self._keep_choices()
        frame = self.session.matching()
        shown = frame if len(frame) <= MAX_POINTS else frame.sort_index().iloc[-MAX_POINTS:]
        x, y = (place(self._values(w.value, shown)) for w in (self.x, self.y))
        notes = []
        logs = []
        for axis, placed, label in ((LOG_X, x, label_of(self.x.value)), (LOG_Y, y, label_of(self.y.value))):
            problem = placed.log_problem() if axis in self.log.active else None
            if problem:
                notes.append(f"{label} stays linear: {problem}")
            logs.append(axis in self.log.active and problem is None)
        colors = self._values(self.color.value, shown)
        data: dict[str, list] = {
            "x": x.positions, "y": y.positions, "trial": [int(t) for t in shown.index],
            "x_text": x.texts, "y_text": y.texts, "color_text": [cell_text(v) for v in colors],
        }
        self.holder.children = [self._plot(x, y, logs, colors, data)]
        self.source.data = data
        best = best_of(self.session.scope(), self.session.direction())
        self.best.data = rows_of({k: data[k] for k in ("x", "y", "trial")}, [] if best is None else [best])
        self.update_selection()
        shown_text = f"{len(shown)} trials" if len(shown) == len(frame) else (
            f"the latest {len(shown)} of {len(frame)} trials (choose a sweep or filter to see others)")
        self.caption.text = render.caption(" · ".join([shown_text, *notes]))

    def _plot(self, x: Placed, y: Placed, logs: list[bool], colors: pd.Series, data: dict[str, list]) -> Any:
        """A new plot for these axes (their kinds and scales can change at each update)."""
        x_label, y_label, color_label = (label_of(w.value) for w in (self.x, self.y, self.color))
        plot = new_figure(f"{y_label} against {x_label}, colour: {color_label} (★ best)", x_label, y_label,
                          self.width, self.height, x_axis_type="log" if logs[0] else "linear",
                          y_axis_type="log" if logs[1] else "linear", output_backend=self.session.chart_backend())
        for axis, placed in ((plot.xaxis, x), (plot.yaxis, y)):
            if placed.labels:
                axis.ticker = FixedTicker(ticks=sorted(placed.labels))
                axis.major_label_overrides = dict(placed.labels)
        if is_numeric_column(colors) and numeric(colors).notna().any():
            values = numeric(colors)
            data["color_value"] = values.tolist()
            mapper = LinearColorMapper(palette=Viridis256, low=float(values.min()), high=float(values.max()),
                                       nan_color=MISSING_COLOR)
            fill: Any = {"field": "color_value", "transform": mapper}
            plot.add_layout(ColorBar(color_mapper=mapper, title=color_label, width=10), "right")
            self.legend.text = ""
        else:
            categories = sorted({t for t in data["color_text"] if t}, key=lambda t: (t.lower(), t))
            palette = {t: Category20_20[i % len(Category20_20)] for i, t in enumerate(categories)}
            data["color"] = [palette.get(t, MISSING_COLOR) for t in data["color_text"]]
            fill = "color"
            self.legend.text = render.color_legend(color_label, list(palette.items()))
        dots = plot.scatter("x", "y", source=self.source, size=8, fill_color=fill, line_color="#52606d",
                            line_width=0.4, alpha=0.85, name="dots")
        plot.scatter("x", "y", source=self.rings, size=15, fill_color=None, line_color=SELECTED_COLOR,
                     line_width=2.5)
        plot.scatter("x", "y", source=self.best, marker="star", size=18, fill_color=BEST_COLOR,
                     line_color="white", line_width=1)
        plot.add_tools(HoverTool(renderers=[dots], tooltips=[
            ("trial", "@trial"), (x_label, "@x_text"), (y_label, "@y_text"), (color_label, "@color_text")]),
            TapTool(renderers=[dots], description="click a dot to select or unselect its trial"))
        return plot

    def update_selection(self) -> None:
        """Ring the selected trials' dots."""
        data = self.source.data
        self.rings.data = rows_of({k: data[k] for k in ("x", "y", "trial")}, self.session.selection)
