"""Parallel coordinates of the trials: one vertical axis per parameter and the result.

Each trial is a line across the axes. Dragging along an axis (the box-select
tool) brushes a range of it: only the trials inside every brushed range stay
in the table and the other views; the others are drawn grey. Clicking a line
selects its trial, as ticking its row does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from bokeh.events import SelectionGeometry
from bokeh.layouts import column, row
from bokeh.models import BoxSelectTool, Button, ColumnDataSource, Div, HoverTool, Range1d, TapTool
from bokeh.palettes import Viridis256

from daskperiment.board import render
from daskperiment.board.cells import cell_text, column_of, is_numeric_column, numeric, ordered_texts
from daskperiment.board.charts import SELECTED_COLOR, new_figure, rows_of
from daskperiment.board.filters import Brush
from daskperiment.history import column_title

if TYPE_CHECKING:
    import pandas as pd

    from daskperiment.board.session import Session
    from daskperiment.direction import Direction

MAX_AXES = 12
"""Axes drawn at most: the first parameters that vary, then the result."""
MAX_LINES = 2000
"""Lines drawn at most: the latest trials (pick a sweep or filter to see the others)."""
MAX_TICKS = 12
MISSING = -0.08
"""Where a trial without a value on an axis crosses it (below the axis)."""
LOG_RATIO = 100.0
"""A positive axis spanning this ratio or more is drawn on a log scale."""
FAILED_COLOR = "#c3cad3"
DIMMED_COLOR = "#e4e7eb"


@dataclass(frozen=True)
class Axis:
    """How the values of a column are placed on a vertical axis from 0 (bottom) to 1 (top).

    Numbers are placed linearly from ``low`` to ``high`` (their log10 on a
    ``log`` axis); other values by the rank of their text among ``texts``.
    """

    name: str
    kind: Literal["number", "log", "text"]
    low: float = 0.0
    high: float = 1.0
    texts: tuple[str, ...] = ()

    def positions(self, column: pd.Series) -> np.ndarray:
        """Where each value of ``column`` crosses the axis (:data:`MISSING` for an empty cell)."""
        if self.kind == "text":
            rank = {text: i for i, text in enumerate(self.texts)}
            spread = max(1, len(self.texts) - 1)
            places = [rank.get(cell_text(v)) for v in column]
            offset = 0.5 if len(self.texts) == 1 else 0.0
            return np.array([MISSING if p is None else offset + p / spread for p in places], dtype=float)
        values = numeric(column).to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.kind == "log":
                values = np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)
            places = (values - self.low) / (self.high - self.low) if self.high > self.low else values * 0 + 0.5
        return np.where(np.isnan(places), MISSING, places)

    def value_at(self, position: float) -> float:
        """The number at ``position`` of a numeric axis."""
        value = self.low + position * (self.high - self.low)
        return float(10**value) if self.kind == "log" else float(value)

    def ticks(self) -> list[tuple[float, str]]:
        """Positions and labels of the axis' ticks."""
        if self.kind == "text":
            step = max(1, math.ceil(len(self.texts) / MAX_TICKS))
            spread = max(1, len(self.texts) - 1)
            offset = 0.5 if len(self.texts) == 1 else 0.0
            return [(offset + i / spread, text[:18]) for i, text in enumerate(self.texts) if i % step == 0]
        if self.high <= self.low:
            return [(0.5, f"{self.value_at(0.0):.4g}")]
        return [(p, f"{self.value_at(p):.3g}") for p in np.linspace(0.0, 1.0, 5)]

    def brush(self, bottom: float, top: float) -> Brush | None:
        """The brush of the range from ``bottom`` to ``top`` of the axis (None when it holds no value)."""
        bottom, top = max(min(bottom, top), 0.0), min(max(bottom, top), 1.0)
        if bottom > top:
            return None
        if self.kind == "text":
            ticks = self.positions_of_texts()
            inside = frozenset(text for text, place in ticks.items() if bottom <= place <= top)
            return Brush(self.name, texts=inside) if inside else None
        return Brush(self.name, low=self.value_at(bottom), high=self.value_at(top))

    def positions_of_texts(self) -> dict[str, float]:
        """Where each text of a text axis is."""
        spread = max(1, len(self.texts) - 1)
        offset = 0.5 if len(self.texts) == 1 else 0.0
        return {text: offset + i / spread for i, text in enumerate(self.texts)}


def axis_of(name: str, column: pd.Series) -> Axis | None:
    """The axis of column ``name`` (None when it has no value): numeric, log or of texts.

    A column whose filled cells are all numbers gets a numeric axis (a log one
    when they are positive and span :data:`LOG_RATIO` or more); any other gets
    an axis of the texts the cells show, sorted (a mixed column included).
    """
    filled = column.dropna()
    if filled.empty:
        return None
    if is_numeric_column(column):
        values = numeric(filled)
        low, high = float(values.min()), float(values.max())
        if low > 0 and high / low >= LOG_RATIO:
            return Axis(name, "log", math.log10(low), math.log10(high))
        return Axis(name, "number", low, high)
    return Axis(name, "text", texts=tuple(ordered_texts(filled)))


def axes_of(frame: pd.DataFrame, parameters: Sequence[str]) -> list[Axis]:
    """The axes of the parallel coordinates of ``frame``: parameters that vary, then the result."""
    varying = [n for n in parameters if n in frame.columns and frame[n].map(cell_text).nunique() > 1]
    names = varying[: MAX_AXES - 1] + ["Result"]
    return [axis for axis in (axis_of(name, column_of(frame, name)) for name in names) if axis is not None]


def line_columns(frame: pd.DataFrame, axes: Sequence[Axis], direction: Direction) -> dict[str, list]:
    """One line per trial of ``frame`` across ``axes``, coloured by its result (best brightest)."""
    xs = list(range(len(axes)))
    places = np.column_stack([axis.positions(column_of(frame, axis.name)) for axis in axes]) if axes else None
    results = numeric(frame["Result"]).to_numpy(dtype=float)
    success = frame["Success"].to_numpy(dtype=bool)
    good = results[success & ~np.isnan(results)]
    low, high = (float(good.min()), float(good.max())) if good.size else (0.0, 1.0)
    colors = []
    for result, succeeded in zip(results, success):
        if not succeeded or math.isnan(result):
            colors.append(FAILED_COLOR)
            continue
        share = (result - low) / (high - low) if high > low else 1.0
        share = 1.0 - share if direction == "minimize" else share
        colors.append(Viridis256[min(255, int(share * 255))])
    return {
        "xs": [xs] * len(frame),
        "ys": [list(p) for p in places] if places is not None else [[] for _ in range(len(frame))],
        "trial": [int(t) for t in frame.index],
        "result": [cell_text(v) for v in frame["Result"]],
        "color": colors,
    }


def tick_columns(axes: Sequence[Axis]) -> tuple[dict[str, list], dict[str, list]]:
    """The axes' tick labels (``x``, ``y``, ``text``) and their titles."""
    ticks: dict[str, list] = {"x": [], "y": [], "text": []}
    for i, axis in enumerate(axes):
        for place, label in axis.ticks():
            ticks["x"].append(i)
            ticks["y"].append(place)
            ticks["text"].append(label)
    titles = {"x": list(range(len(axes))), "y": [1.06] * len(axes),
              "text": [column_title(a.name)[:22] + (" (log)" if a.kind == "log" else "") for a in axes]}
    return ticks, titles


def _latest(frame: pd.DataFrame, count: int) -> pd.DataFrame:
    return frame if len(frame) <= count else frame.sort_index().iloc[-count:]


class ParallelView:
    """The parallel coordinates tab of one page.

    Parameters
    ----------
    session : Session
        The page.
    width, height : int
        Size of the plot.
    """

    def __init__(self, session: Session, width: int, height: int) -> None:
        self.session = session
        self.axes: list[Axis] = []
        guard = session.guard
        empty_lines = {"xs": [], "ys": [], "trial": [], "result": [], "color": []}
        self.lines = ColumnDataSource(dict(empty_lines), name="parallel_lines")
        self.dimmed = ColumnDataSource(dict(empty_lines), name="parallel_dimmed")
        self.selected = ColumnDataSource(dict(empty_lines), name="parallel_selected")
        self.axis_lines = ColumnDataSource({"x0": [], "y0": [], "x1": [], "y1": []})
        self.handles = ColumnDataSource({"x": [], "y": []})
        self.ticks = ColumnDataSource({"x": [], "y": [], "text": []})
        self.titles = ColumnDataSource({"x": [], "y": [], "text": []})
        self.brush_boxes = ColumnDataSource({"left": [], "right": [], "bottom": [], "top": []},
                                            name="parallel_brushes")
        self.width, self.height = width, height
        self.holder = column(name="parallel_holder")
        self.rebuild()
        self.lines.selected.on_change("indices", guard.on_change(self._on_tap))
        self.caption = Div(text="", name="parallel_caption", width=width - 420, stylesheets=[session.style])
        self.clear = Button(label="Clear brushes", width=120)
        self.clear.on_click(guard.on_click(lambda: session.set_brushes(())))
        self.select_brushed = Button(label="Select these trials", width=150)
        self.select_brushed.on_click(guard.on_click(self._select_brushed))
        self.layout = column(row(self.caption, self.clear, self.select_brushed), self.holder)

    def rebuild(self) -> None:
        """Make the plot again, with the page's chart format (its save tool gives PNG or SVG)."""
        plot = new_figure("Parallel coordinates", "", "", self.width, self.height, tools="save",
                          output_backend=self.session.chart_backend(),
                          x_range=Range1d(-0.3, max(len(self.axes) - 0.4, 0.7)), y_range=Range1d(MISSING - 0.06, 1.12))
        plot.axis.visible = False
        plot.grid.visible = False
        plot.multi_line("xs", "ys", source=self.dimmed, line_color=DIMMED_COLOR, line_width=1)
        lines = plot.multi_line("xs", "ys", source=self.lines, line_color="color", line_width=1.4, line_alpha=0.8)
        plot.multi_line("xs", "ys", source=self.selected, line_color=SELECTED_COLOR, line_width=3.2)
        plot.segment("x0", "y0", "x1", "y1", source=self.axis_lines, line_color="#52606d", line_width=1.5)
        plot.quad(left="left", right="right", bottom="bottom", top="top", source=self.brush_boxes,
                  fill_color="#f59e0b", fill_alpha=0.18, line_color="#b45309")
        handles = plot.scatter("x", "y", source=self.handles, size=1, alpha=0.0)
        plot.text("x", "y", text="text", source=self.ticks, x_offset=5, text_font_size="10px",
                  text_color="#52606d", text_baseline="middle")
        plot.text("x", "y", text="text", source=self.titles, text_font_size="11px", text_font_style="bold",
                  text_color="#1f2933", text_align="center")
        brush = BoxSelectTool(renderers=[handles], description="Brush a range of an axis: drag over it")
        tap = TapTool(renderers=[lines], description="Click a line to select or unselect its trial")
        plot.add_tools(brush, tap, HoverTool(renderers=[lines], tooltips=[("trial", "@trial"), ("result", "@result")]))
        plot.toolbar.active_drag = brush
        plot.on_event(SelectionGeometry, self._on_brush_event)
        self.plot = plot
        self.holder.children = [plot]

    # -- events ---------------------------------------------------------------------
    def _on_brush_event(self, event: SelectionGeometry) -> None:
        if not event.final or not self.axes:
            return
        geometry = event.geometry
        x = (float(geometry["x0"]) + float(geometry["x1"])) / 2
        index = min(range(len(self.axes)), key=lambda i: abs(i - x))
        brush = self.axes[index].brush(float(geometry["y0"]), float(geometry["y1"]))
        kept = tuple(b for b in self.session.brushes() if b.name != self.axes[index].name)
        self.session.guard.run(lambda: self.session.set_brushes(kept + ((brush,) if brush else ())))

    def _on_tap(self) -> None:
        tapped = {self.lines.data["trial"][i] for i in self.lines.selected.indices}
        self.session.guard.set(self.lines.selected, "indices", [])
        if tapped:
            self.session.toggle(tapped)

    def _select_brushed(self) -> None:
        self.session.select(int(t) for t in self.session.matching().index)

    # -- drawing --------------------------------------------------------------------
    def update(self) -> None:
        """Redraw axes, lines and brushes from the page's trials."""
        session = self.session
        frame = session.matching(brushed=False)
        shown = _latest(frame, MAX_LINES)
        self.axes = axes_of(session.scope(), session.cache.parameter_names())
        inside = session.matching()
        passing = shown.index.isin(inside.index)
        direction = session.direction()
        self.lines.data = line_columns(shown[passing], self.axes, direction)
        self.dimmed.data = line_columns(shown[~passing], self.axes, direction)
        count = len(self.axes)
        self.axis_lines.data = {"x0": list(range(count)), "y0": [0.0] * count, "x1": list(range(count)),
                                "y1": [1.0] * count}
        self.handles.data = {"x": [i for i in range(count) for _ in range(11)],
                             "y": [j / 10 for _ in range(count) for j in range(11)]}
        self.ticks.data, self.titles.data = tick_columns(self.axes)
        self.plot.x_range.start, self.plot.x_range.end = -0.3, max(count - 0.4, 0.7)
        self._draw_brushes()
        text = f"{len(inside)} of {len(frame)} trials inside the brushes" if session.brushes() else (
            f"{len(frame)} trials · drag over an axis to brush a range of it, click a line to select its trial")
        if len(frame) > MAX_LINES:
            text += f" · lines of the latest {MAX_LINES} (choose a sweep or filter to see others)"
        for brush in session.brushes():
            text += f" · {brush}"
        self.caption.text = render.caption(text)
        self.clear.disabled = self.select_brushed.disabled = not session.brushes()
        self.update_selection()

    def _draw_brushes(self) -> None:
        boxes: dict[str, list] = {"left": [], "right": [], "bottom": [], "top": []}
        for brush in self.session.brushes():
            for i, axis in enumerate(self.axes):
                if axis.name != brush.name:
                    continue
                if brush.texts is not None:
                    places = [p for t, p in axis.positions_of_texts().items() if t in brush.texts]
                    bottom, top = (min(places), max(places)) if places else (0.0, 0.0)
                else:
                    bottom, top = (float(p) for p in axis.positions(_series([brush.low, brush.high])))
                boxes["left"].append(i - 0.08)
                boxes["right"].append(i + 0.08)
                boxes["bottom"].append(bottom - 0.01)
                boxes["top"].append(top + 0.01)
        self.brush_boxes.data = boxes

    def update_selection(self) -> None:
        """Draw the selected trials' lines over the others."""
        selected = set(self.session.selection)
        rows = {name: [] for name in self.lines.data}
        for source in (self.lines, self.dimmed):
            for name, values in rows_of(source.data, selected).items():
                rows[name].extend(values)
        self.selected.data = rows


def _series(values: list[float]) -> pd.Series:
    import pandas as pd

    return pd.Series(values, dtype=float)
