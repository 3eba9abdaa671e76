"""The dashboard's plots and the columns they draw, made from the history table."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bokeh.models import BasicTicker, ColumnDataSource, FixedTicker, HoverTool, LinearColorMapper, SaveTool, TapTool
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from daskperiment.board.cells import cell_text, is_numeric_column, numeric, ordered_texts
from daskperiment.board.details import Curve

if TYPE_CHECKING:
    import pandas as pd

SUCCESS_COLOR = "#3b82f6"
FAILURE_COLOR = "#ef4444"
SELECTED_COLOR = "#f59e0b"
BEST_COLOR = "#0e9f6e"
MAX_CATEGORY_TICKS = 30
TOOLS = "pan,box_zoom,wheel_zoom,reset,save"
TAP_HINT = "click a dot to select or unselect its trial"


def new_figure(title: str, x_label: str, y_label: str, width: int, height: int, tools: str = TOOLS,
               **options: Any) -> Any:
    """A plot in the dashboard's style (``options``: more arguments of :func:`bokeh.plotting.figure`).

    Its ``output_backend`` (``"canvas"`` or ``"svg"``) decides what its save tool
    gives, a PNG or an SVG file: a plot keeps the one it was made with.
    """
    plot = figure(
        title=title, width=width, height=height, tools=tools, toolbar_location="right",
        x_axis_label=x_label, y_axis_label=y_label, **options,
    )
    plot.title.text_font_size = "13px"
    plot.title.text_color = "#1f2933"
    plot.outline_line_color = None
    plot.grid.grid_line_color = "#eef2f6"
    plot.axis.axis_line_color = "#cbd2d9"
    plot.axis.major_tick_line_color = "#cbd2d9"
    plot.axis.minor_tick_line_color = None
    plot.axis.major_label_text_color = "#52606d"
    plot.axis.axis_label_text_font_size = "11px"
    plot.axis.axis_label_text_font_style = "normal"
    plot.axis.axis_label_text_color = "#7b8794"
    plot.toolbar.logo = None
    set_title(plot, title)
    return plot


def set_title(plot: Any, title: str) -> None:
    """Title ``plot``; its save tool saves it under that name (the browser then asks for none)."""
    plot.title.text = title
    for save in plot.select(type=SaveTool):
        save.filename = chart_file_name(title)


def chart_file_name(title: str) -> str:
    """The name a chart is saved under (``.png`` or ``.svg`` is added): its title's letters and digits."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", title).strip("-.")[:60] or "chart"


def trial_columns(frame: pd.DataFrame) -> dict[str, Any]:
    """Columns of the per-trial charts: id, numeric result, process time, and ``failed`` (1.0 or 0.0).

    Numpy arrays: Bokeh sends them to the browser as binary buffers (a history
    of 100,000 trials is a few MB less of JSON).
    """
    return {
        "trial": frame.index.to_numpy(dtype="int64"),
        "result": numeric(frame["Result"]).to_numpy(dtype=float),
        "time": numeric(frame["Process Time"]).to_numpy(dtype=float),
        "failed": (~frame["Success"].to_numpy(dtype=bool)).astype(float),
    }


def parameter_columns(frame: pd.DataFrame, name: str | None) -> tuple[dict[str, Any], dict[float, str]]:
    """Columns of the result-against-parameter scatter, and tick labels for a non-numeric parameter.

    Numeric parameters are plotted as they are; other values are placed at
    0, 1, 2, ... in order of their text (numbers first), and labelled; ``value``
    is what a dot's hover shows.
    """
    columns = trial_columns(frame)
    if name is None or name not in frame.columns:
        nothing = np.full(len(frame), np.nan)
        return {**columns, "x": nothing, "value": nothing}, {}
    raw = frame[name]
    if is_numeric_column(raw):
        values = numeric(raw).to_numpy(dtype=float)
        return {**columns, "x": values, "value": values}, {}
    texts = [cell_text(v) for v in raw]
    categories = ordered_texts(raw)
    position = {text: float(i) for i, text in enumerate(categories)}
    labels = {p: t for t, p in position.items()} if len(categories) <= MAX_CATEGORY_TICKS else {}
    return {**columns, "x": np.array([position.get(t, np.nan) for t in texts], dtype=float), "value": texts}, labels


def rows_of(columns: dict[str, Any], trial_ids: Iterable[int]) -> dict[str, list]:
    """The rows of ``columns`` (with a ``trial`` column) of the trials ``trial_ids``, in their order there."""
    wanted = set(trial_ids)
    positions = [i for i, trial in enumerate(columns["trial"]) if trial in wanted]
    return {name: [_plain(values[i]) for i in positions] for name, values in columns.items()}


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds."""
    return value.item() if isinstance(value, np.generic) else value


def outcome_colors() -> dict[str, Any]:
    """The fill of a trial's dot: blue when it succeeded, red when it failed (its ``failed`` column)."""
    return {"field": "failed", "transform": LinearColorMapper(palette=[SUCCESS_COLOR, FAILURE_COLOR], low=0, high=1)}


def trial_chart(source: ColumnDataSource, selected: ColumnDataSource, y: str, title: str,
                y_label: str, width: int, height: int, output_backend: str = "canvas") -> Any:
    """Column ``y`` of every trial against its id, selected trials ringed."""
    plot = new_figure(title, "trial", y_label, width, height, output_backend=output_backend)
    plot.line("trial", y, source=source, line_color="#cbd2d9", line_width=1)
    dots = plot.scatter("trial", y, source=source, size=6, fill_color=outcome_colors(), alpha=0.85,
                        line_color=None, name="dots")
    plot.scatter("trial", y, source=selected, size=13, fill_color=None, line_color=SELECTED_COLOR,
                 line_width=2.5)
    plot.add_tools(HoverTool(renderers=[dots], tooltips=[("trial", "@trial"), (y_label, f"@{y}{{0.[0000]}}")]),
        TapTool(renderers=[dots], description=TAP_HINT))
    return plot


def mark_best(plot: Any, best: ColumnDataSource) -> None:
    """Mark the best trial (the one row of ``best``: ``trial``, ``result``) with a star."""
    plot.scatter("trial", "result", source=best, marker="star", size=17, fill_color=BEST_COLOR,
                 line_color="white", line_width=1)
    plot.title.text += " (★ best)"


def parameter_chart(source: ColumnDataSource, selected: ColumnDataSource, width: int, height: int,
                    output_backend: str = "canvas") -> Any:
    """Result against the value of a parameter."""
    plot = new_figure("Result against parameter", "", "result", width, height, output_backend=output_backend)
    plot.xaxis.ticker = FixedTicker(ticks=[])
    dots = plot.scatter("x", "result", source=source, size=7, fill_color=outcome_colors(), alpha=0.6,
                        line_color=None, name="dots")
    plot.scatter("x", "result", source=selected, size=14, fill_color=None, line_color=SELECTED_COLOR,
                 line_width=2.5)
    plot.add_tools(HoverTool(renderers=[dots], tooltips=[
        ("trial", "@trial"), ("value", "@value"), ("result", "@result{0.[0000]}")]),
        TapTool(renderers=[dots], description=TAP_HINT))
    return plot


def fit_dots(plot: Any, count: int) -> None:
    """Draw the trials' dots smaller and lighter when there are many of them."""
    for renderer in plot.select(name="dots"):
        renderer.glyph.size = 7 if count <= 200 else (4 if count <= 2000 else 3)
        renderer.glyph.fill_alpha = 0.85 if count <= 200 else 0.5


def label_parameter_axis(plot: Any, name: str, labels: dict[float, str]) -> None:
    """Title the x axis with the parameter; label its ticks when the values are not numbers."""
    plot.xaxis.axis_label = name
    if labels:
        plot.xaxis.ticker = FixedTicker(ticks=sorted(labels))
        plot.xaxis.major_label_overrides = {k: v[:20] for k, v in labels.items()}
    else:
        plot.xaxis.ticker = BasicTicker()
        plot.xaxis.major_label_overrides = {}


def metric_chart(lines: ColumnDataSource, points: ColumnDataSource, width: int, height: int,
                 output_backend: str = "canvas") -> Any:
    """Overlaid metric curves: one line per trial, with legend and hover."""
    plot = new_figure("", "epoch", "value", width, height, output_backend=output_backend)
    plot.multi_line("xs", "ys", source=lines, line_color="color", line_width=2.2, legend_field="label",
                    name="metric_lines")
    dots = plot.scatter("x", "value", source=points, size=5, color="color", line_color="white",
                        line_width=0.5)
    plot.add_tools(HoverTool(renderers=[dots], tooltips=[
        ("trial", "@trial"), ("epoch", "@epoch"), ("value", "@value{0.[000000]}")]))
    plot.add_layout(plot.legend[0], "right")
    plot.legend.title = "trial"
    plot.legend.background_fill_alpha = 0.8
    plot.legend.label_text_font_size = "11px"
    return plot


def curve_columns(curves: Sequence[Curve]) -> tuple[dict[str, list], dict[str, list]]:
    """Columns of the metric lines (one row per trial) and of their points, at their ``xs`` (else their epochs)."""
    colors = [Category10_10[i % len(Category10_10)] for i in range(len(curves))]
    xs = [c.xs if c.xs else c.epochs for c in curves]
    lines = {
        "xs": xs,
        "ys": [c.values for c in curves],
        "label": [f"trial {c.trial_id}" for c in curves],
        "color": colors,
        "trial": [c.trial_id for c in curves],
    }
    points: dict[str, list] = {"x": [], "epoch": [], "value": [], "trial": [], "color": []}
    for curve, color, x in zip(curves, colors, xs):
        points["x"].extend(x)
        points["epoch"].extend(curve.epochs)
        points["value"].extend(curve.values)
        points["trial"].extend([curve.trial_id] * len(curve.epochs))
        points["color"].extend([color] * len(curve.epochs))
    return lines, points
