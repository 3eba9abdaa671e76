"""The compare table: selected trials side by side, what differs highlighted.

One column per trial; rows are its status, sweep, parameters, result, outcome,
seed, duration, note and tags (when the history has them), then the last,
lowest and highest value of each metric. A row whose values differ is marked,
and so is each cell that differs from the first trial's. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING

from bokeh.layouts import column, row
from bokeh.models import CheckboxGroup, Div

from daskperiment.board import render
from daskperiment.board.cells import cell_text
from daskperiment.board.details import SUMMARY_STATISTICS, MetricSummary, metric_summaries
from daskperiment.board.summary import best_of
from daskperiment.board.table import tags_text
from daskperiment.history import column_title

if TYPE_CHECKING:
    import pandas as pd

    from daskperiment.backend import Backend
    from daskperiment.board.session import Session

MAX_METRICS = 12
"""Metrics compared at most (their keys in order)."""
_OUTCOME = ("Result", "Status", "Success", "Description", "Sweep", "Seed", "Process Time", "Finished", "Note", "Tags",
            "Cached")


def metric_summaries_of(backend: Backend, trial_ids: Sequence[int],
                        keys: Sequence[str] | None = None) -> dict[str, dict[int, MetricSummary]]:
    """Per metric (the first :data:`MAX_METRICS` of ``keys``, by default the store's), the trials' summaries."""
    keys = backend.metric_keys() if keys is None else keys
    return {key: metric_summaries(backend, key, trial_ids) for key in keys[:MAX_METRICS]}


def compare_rows(frame: pd.DataFrame, parameters: Sequence[str],
                 metrics: Mapping[str, Mapping[int, MetricSummary]]) -> list[tuple[str, list[str]]]:
    """The rows of the compare table of the trials of ``frame`` (in its order): ``(title, cells)``."""
    names = [n for n in parameters if n in frame.columns] + [n for n in _OUTCOME if n in frame.columns]
    rows = []
    for name in names:
        text = tags_text if name == "Tags" else cell_text
        rows.append((column_title(name), [text(v) for v in frame[name]]))
    for key, summaries in metrics.items():
        for statistic in SUMMARY_STATISTICS:
            cells = [cell_text(getattr(summaries[t], statistic)) if t in summaries else "" for t in frame.index]
            rows.append((f"{key} · {statistic}", cells))
    return rows


def compare_table(frame: pd.DataFrame, parameters: Sequence[str], metrics: Mapping[str, Mapping[int, MetricSummary]],
                  best: int | None, only_differences: bool = False) -> str:
    """The compare table of the trials of ``frame`` as escaped HTML.

    Parameters
    ----------
    frame : pandas.DataFrame
        History rows of the trials to compare, in the order of the columns.
    parameters : sequence of str
        The parameter columns (shown first).
    metrics : mapping
        Per metric key, per trial id, its summary.
    best : int or None
        The experiment's best trial (its column is starred).
    only_differences : bool, default False
        Leave out the rows whose values are the same for every trial.
    """
    rows = compare_rows(frame, parameters, metrics)
    header = "".join(
        f'<th class="{"best" if t == best else ""}">trial {int(t)}{" ★" if t == best else ""}</th>'
        for t in frame.index
    )
    body = []
    for title, cells in rows:
        differs = len(set(cells)) > 1
        if only_differences and not differs:
            continue
        tds = "".join(
            f'<td class="{"differs" if differs and cell != cells[0] else ""}">{escape(cell)}</td>' for cell in cells
        )
        body.append(f'<tr class="{"differs" if differs else ""}"><th>{escape(title)}</th>{tds}</tr>')
    if not body:
        body.append(f'<tr><td colspan="{len(frame) + 1}">Every compared value is the same.</td></tr>')
    return f'<div class="compare"><table class="compare"><tr><th></th>{header}</tr>{"".join(body)}</table></div>'


class CompareView:
    """The compare tab of one page: the selected trials side by side.

    Parameters
    ----------
    session : Session
        The page.
    width : int
        Width of the tab.
    """

    def __init__(self, session: Session, width: int) -> None:
        self.session = session
        self.only_differences = CheckboxGroup(labels=["only the rows that differ"], active=[],
                                              name="compare_only_differences")
        self.only_differences.on_change("active", session.guard.on_change(self.update))
        self.caption = Div(text="", name="compare_caption", width=width - 260)
        self.table = Div(text="", name="compare_table", width=width, stylesheets=[session.style])
        self.layout = column(row(self.caption, self.only_differences), self.table)

    def update(self) -> None:
        """Redraw the table of the selected trials."""
        session = self.session
        cache = session.cache
        frame = cache.frame
        chosen = frame.loc[frame.index.isin(session.selection)]
        if chosen.empty:
            self.caption.text = render.caption(
                "Select trials (tick rows, click dots or lines) to compare them side by side.")
            self.table.text = ""
            return
        keys = cache.backend.metric_keys()
        metrics = metric_summaries_of(cache.backend, [int(t) for t in chosen.index], keys)
        text = f"{len(chosen)} selected trials side by side; values that differ from the first trial's are marked"
        if len(keys) > MAX_METRICS:
            text += f" (metrics: the first {MAX_METRICS} of {len(keys)})"
        self.caption.text = render.caption(text)
        best = best_of(session.scope(), session.direction())  # of the trials in scope, as the summary's
        self.table.text = compare_table(chosen, cache.parameter_names(), metrics, best,
                                        0 in self.only_differences.active)
