"""The dashboard's sweep views without a browser: parallel axes and brushes, scatter, compare, curves,
CSV export, sweeps, and the Status/Note/Tags columns of trials that are running or annotated."""

from __future__ import annotations

import csv
import io
import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from html import escape
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from bokeh.document import Document
from test_board import XSS, RecordingBackend, record, show, write_trials

from daskperiment import Experiment
from daskperiment.backend import LocalBackend, open_backend
from daskperiment.board import start
from daskperiment.board.app import Dashboard
from daskperiment.board.cells import ordered_texts
from daskperiment.board.compare import compare_table
from daskperiment.board.details import MetricSummary, epoch_times, metric_curves, metric_summaries, smooth
from daskperiment.board.export import history_csv
from daskperiment.board.filters import Brush
from daskperiment.board.parallel import LOG_RATIO, MISSING, axes_of, axis_of, line_columns
from daskperiment.board.query import TableQuery, matching_rows
from daskperiment.board.scatter import choices, column_choice, label_of, metric_choice, place
from daskperiment.board.store import TrialCache
from daskperiment.board.table import STATUS_COLORS, table_columns, table_data
from daskperiment.records import AnnotationEdit, Blob, MetricPoint, RecordBatch, TrialStart


def series(*values: object) -> pd.Series:
    return pd.Series(list(values), dtype=object)


# -- axes of the parallel coordinates -----------------------------------------------------------------
def test_numeric_log_and_text_axes() -> None:
    linear = axis_of("depth", series(1, 2, 3, None))
    assert (linear.kind, linear.low, linear.high) == ("number", 1.0, 3.0)
    assert list(linear.positions(series(1, 2, 3, None))) == [0.0, 0.5, 1.0, MISSING]
    assert linear.brush(0.4, 1.2) == Brush("depth", low=1.8, high=3.0)
    logspace = axis_of("lr", series(1e-4, 1e-3, 1e-2, 1e-1))
    assert logspace.kind == "log" and logspace.positions(series(1e-4, 1e-2)).tolist() == pytest.approx([0.0, 2 / 3])
    assert [label for _, label in logspace.ticks()][0] == "0.0001"
    assert axis_of("lr", series(1.0, LOG_RATIO / 2)).kind == "number"  # less than LOG_RATIO apart
    assert axis_of("lr", series(-1.0, 1000.0)).kind == "number"  # not all positive
    mixed = axis_of("lr", series(0.3, "oops", 0.01, 3))
    assert mixed.kind == "text" and mixed.texts == ("0.01", "0.3", "3", "oops")  # numbers by value, then texts
    assert mixed.brush(0.6, 1.0) == Brush("lr", texts=frozenset({"3", "oops"}))
    assert mixed.brush(0.1, 0.2) is None  # between two values: nothing
    single = axis_of("model", series("cnn", "cnn"))
    assert single.positions(series("cnn")).tolist() == [0.5] and single.ticks() == [(0.5, "cnn")]
    assert axis_of("empty", series(None, None)) is None


def test_axes_are_the_varying_parameters_then_the_result(cache_of: Callable[..., TrialCache]) -> None:
    cache = cache_of([dict(lr=0.1, model="cnn", fixed=1), dict(lr=0.2, model="mlp", fixed=1)])
    assert [a.name for a in axes_of(cache.frame, cache.parameter_names())] == ["lr", "model", "Result"]


def test_lines_are_coloured_by_result_in_the_direction(cache_of: Callable[..., TrialCache]) -> None:
    cache = cache_of([dict(lr=0.1), dict(lr=0.2), dict(lr=0.3)], results=[1.0, 2.0, None])
    axes = axes_of(cache.frame, cache.parameter_names())
    lowest = line_columns(cache.frame, axes, "minimize")
    highest = line_columns(cache.frame, axes, "maximize")
    assert lowest["trial"] == [1, 2, 3] and lowest["xs"] == [[0, 1]] * 3
    assert lowest["ys"][0] == [0.0, 0.0] and lowest["ys"][2] == [1.0, MISSING]  # no result: below the axis
    assert lowest["color"][0] == highest["color"][1] != lowest["color"][1]  # the best is the brightest
    assert lowest["color"][2] == highest["color"][2]  # failed: grey either way


def test_brushes_filter_the_history(cache_of: Callable[..., TrialCache]) -> None:
    cache = cache_of([dict(lr=v, model=m) for v, m in ((0.1, "cnn"), (0.2, "mlp"), ("oops", "cnn"), (0.4, XSS))])
    frame = cache.frame

    def kept(*brushes: Brush) -> list[int]:
        return sorted(matching_rows(frame, TableQuery(brushes=brushes)).index)

    assert kept(Brush("lr", low=0.15, high=0.5)) == [2, 4]  # numbers only: 'oops' is outside any range
    assert kept(Brush("lr", texts=frozenset({"oops", "0.1"}))) == [1, 3]
    assert kept(Brush("lr", low=0.0, high=1.0), Brush("model", texts=frozenset({"cnn"}))) == [1]
    assert str(Brush("model", texts=frozenset({"mlp", XSS}))) == f"model in {{{XSS}, mlp}}"


def test_ordered_texts() -> None:
    assert ordered_texts(series(10, "b", 2.5, "A", None, 10, True)) == ["2.5", "10", "A", "b", "yes"]


# -- scatter ------------------------------------------------------------------------------------------
def test_scatter_columns_and_placing() -> None:
    options = choices(["lr", XSS], ["loss"], ["lr", XSS, "Result", "Process Time", "Seed"])
    labels = [label for _, label in options]
    assert labels[:6] == ["lr", XSS, "Result", "Process Time (s)", "Seed", "Trial ID"]
    assert labels[6:] == ["loss · last", "loss · min", "loss · max"]
    assert label_of(metric_choice("loss", "min")) == "loss · min" and label_of(column_choice(XSS)) == XSS
    numbers = place(series(0.1, None, 10))
    assert numbers.numeric and numbers.log_problem() is None and numbers.positions[0] == 0.1
    assert place(series(0.0, 1.0)).log_problem() == "it has values ≤ 0"
    texts = place(series("b", 3, "a", None))
    assert not texts.numeric and texts.positions[:3] == [2.0, 0.0, 1.0] and math.isnan(texts.positions[3])
    assert texts.labels == {0.0: "3", 1.0: "a", 2.0: "b"} and texts.log_problem() == "its values are not all numbers"


# -- compare ------------------------------------------------------------------------------------------
def test_compare_table_marks_differences_and_escapes(cache_of: Callable[..., TrialCache]) -> None:
    cache = cache_of([dict(lr=0.1, model=XSS), dict(lr=0.2, model=XSS), dict(lr=0.1, model="cnn")])
    metrics = {XSS: {1: MetricSummary(0.5, 0.1, 0.9), 3: MetricSummary(0.5, 0.2, 0.9)}}
    html = compare_table(cache.frame, ["lr", "model"], metrics, best=2)
    assert "<script>" not in html and escape(XSS) in html
    assert '<th class="best">trial 2 ★</th>' in html and "<th class=\"\">trial 1</th>" in html
    assert '<tr class="differs"><th>lr</th><td class="">0.1</td><td class="differs">0.2</td><td class="">0.1</td>' \
        in html
    assert f'<th>{escape(XSS)} · last</th><td class="">0.5</td><td class="differs"></td><td class="">0.5</td>' \
        in html  # trial 2 saved none
    assert f'<th>{escape(XSS)} · min</th><td class="">0.1</td><td class="differs"></td><td class="differs">0.2' in html
    only = compare_table(cache.frame, ["lr", "model"], metrics, best=None, only_differences=True)
    assert "<th>Success</th>" not in only and "<th>Seed</th>" in only and "<th>lr</th>" in only


# -- curves --------------------------------------------------------------------------------------------
def test_smoothing_and_times() -> None:
    assert smooth([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])  # debiased: no drop at the start
    assert smooth([0.0, 10.0], 0.5) == pytest.approx([0.0, 5 / 0.75])
    assert smooth([2.0, math.nan, 2.0], 0.0)[1] != smooth([2.0, math.nan, 2.0], 0.0)[1]  # a hole stays one
    with pytest.raises(ValueError, match="a smoothing weight is from 0 to 1"):
        smooth([1.0], 1.0)
    assert epoch_times([0, 1, 2, 3], 8.0) == [2.0, 4.0, 6.0, 8.0]
    assert epoch_times([5, 9], 10.0) == [2.0, 10.0] and epoch_times([], 1.0) == []


@pytest.mark.parametrize("kind", ["local", "redis", "mongo"])
def test_metric_summaries_on_every_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    backend = LocalBackend(tmp_path / "m", "m") if kind == "local" else open_backend(
        request.getfixturevalue(f"{kind}_uri"), "m")
    trials = list(range(1, 41))
    points = [MetricPoint(t, "loss", e, float((t * 7 + e * 13) % 17)) for t in trials for e in range(t % 6 + 1)]
    points += [MetricPoint(5, "loss", 0, -3.0)]  # epoch 0 of trial 5 saved again: the last value counts
    backend.write_metrics(points)
    summaries = metric_summaries(backend, "loss", trials + [99])
    curves = {c.trial_id: c for c in metric_curves(backend, "loss", trials)}
    for t in trials:
        values = {p.epoch: p.value for p in points if p.trial_id == t}
        ordered = [values[e] for e in sorted(values)]
        assert summaries[t] == MetricSummary(ordered[-1], min(ordered), max(ordered)), t
        assert (curves[t].epochs, curves[t].values) == (sorted(values), ordered)
    assert 99 not in summaries and summaries[5].min == -3.0


# -- CSV ----------------------------------------------------------------------------------------------
def test_history_csv(cache_of: Callable[..., TrialCache]) -> None:
    cache = cache_of([dict(lr=0.1, model=XSS), dict(lr=0.25, model="a,b\n\"c\"")], results=[1.5, None])
    rows = list(csv.reader(io.StringIO(history_csv(cache.frame))))
    assert rows[0][:6] == ["Trial ID", "lr", "model", "Result", "Status", "Success"]
    assert rows[1][:6] == ["1", "0.1", XSS, "1.5", "finished", "True"]
    assert rows[2][:6] == ["2", "0.25", 'a,b\n"c"', "", "failed", "False"]
    header = dict(zip(rows[0], rows[1]))
    assert float(header["Process Time (s)"]) == pytest.approx(0.51)
    assert pd.Timestamp(header["Finished"]).isoformat() == header["Finished"]


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_csv_route_answers_only_registered_pages(store_with: Callable[..., LocalBackend], tmp_path: Path) -> None:
    store_with([dict(lr=t / 10, model="cnn" if t % 2 else "mlp") for t in range(1, 13)])
    board = start("views", tmp_path / "store", port=0)
    try:
        exports = board._routes[1][2]["exports"]
        token = exports.register(TableQuery(conditions=(), sort_by="lr", descending=False))
        status, headers, body = get(f"{board.url}export/{token}/views-trials.csv")
        assert status == 200 and headers["Content-Type"] == "text/csv; charset=utf-8"
        assert headers["Content-Disposition"].startswith('attachment; filename="views-trials.csv"')
        assert headers["Content-Security-Policy"] == "sandbox"
        assert [r["Trial ID"] for r in csv.DictReader(io.StringIO(body.decode()))] == [str(t) for t in range(1, 13)]
        for path in (f"{'0' * 32}/views-trials.csv", f"{token}/x.txt", f"{token[:-1]}/a.csv", f"{token}/../a.csv",
                     f"{token}/%3Cb%3E.csv"):
            assert get(f"{board.url}export/{path}")[0] == 404, path
        exports.drop(token)
        assert get(f"{board.url}export/{token}/views-trials.csv")[0] == 404
    finally:
        board.stop()


# -- a page -------------------------------------------------------------------------------------------
def test_brushing_selecting_and_tapping_in_a_page(cache_of: Callable[..., TrialCache]) -> None:
    cache = cache_of([dict(lr=t / 10, depth=t % 3) for t in range(1, 13)])
    page = Dashboard(Document(), cache, "test store")
    show(page, "Parallel")
    assert sorted(page.parallel.lines.data["trial"]) == list(range(1, 13))
    depth = [a.name for a in page.parallel.axes].index("depth")
    page.parallel._on_brush_event(SimpleNamespace(final=True, geometry={"x0": depth - 0.1, "x1": depth + 0.1,
                                                                         "y0": 0.9, "y1": 1.2}))
    deepest = [t for t in range(1, 13) if t % 3 == 2]
    assert sorted(page.history.source.data["trial"]) == deepest
    assert sorted(page.parallel.lines.data["trial"]) == deepest
    assert sorted(page.parallel.dimmed.data["trial"]) == sorted(set(range(1, 13)) - set(deepest))
    page.parallel._select_brushed()
    assert page.selection == deepest and sorted(page.parallel.selected.data["trial"]) == deepest
    page.parallel.lines.selected.indices = [page.parallel.lines.data["trial"].index(5)]  # a clicked line
    assert page.selection == [t for t in deepest if t != 5] and page.parallel.lines.selected.indices == []
    page.set_brushes(())
    assert len(page.history.source.data["trial"]) == 12
    show(page, "Scatter")
    page.scatter.source.selected.indices = [page.scatter.source.data["trial"].index(1)]  # a clicked dot
    assert 1 in page.selection and sorted(page.scatter.rings.data["trial"]) == page.selection


def test_a_sweep_scopes_the_page(make_experiment: Callable[..., Experiment]) -> None:
    ex = make_experiment("scoped")
    a = ex.parameter("a")

    @ex.result
    def twice(a: int) -> int:
        return 2 * a

    ex.sweep(twice(a), trials=[{"a": v} for v in range(6)], name="first", scheduler="sync")
    ex.sweep(twice(a), trials=[{"a": v} for v in range(10, 14)], name="second", scheduler="sync")
    ex.run(twice(a), a=100, scheduler="sync")
    cache = TrialCache(ex.backend, min_interval=0)
    cache.refresh()
    page = Dashboard(Document(), cache, "test store")
    assert page.sweep.options == [("", "All trials (11)"), ("first", "first (6 trials)"), ("second", "second (4 trials)")]
    page.sweep.value = "second"
    history = ex.get_history()
    second = sorted(history.index[history["Sweep"] == "second"])
    assert sorted(page.history.source.data["trial"]) == second == sorted(page.overview.dots.data["trial"])
    assert ">4<" in page.summary.text and f"trial {second[0]}" in page.summary.text  # the lowest of the sweep
    show(page, "Parallel")
    assert sorted(page.parallel.lines.data["trial"]) == second


# -- running trials, notes and tags ------------------------------------------------------------------------
def test_running_trials_are_read_again_until_they_finish(tmp_path: Path) -> None:
    backend = RecordingBackend(tmp_path / "live", "live")
    code = Blob.of(b"")
    write_trials(backend, [record(t, code, result=float(t), lr=t / 10) for t in (1, 2)], [code])
    now = time.time()
    assert backend.start_trials([TrialStart({"lr": 0.3}, 3, now, now, 3600.0, "host:1")]) == range(3, 4)
    backend.edit_annotations([AnnotationEdit(3, note=XSS, tags=frozenset({"b", "a"}))])
    backend.write_metrics([MetricPoint(3, "loss", e, 1.0 / (e + 1)) for e in range(3)])
    cache = TrialCache(backend, min_interval=0)
    page = Dashboard(Document(), cache, "test store")
    assert cache.running() == [3] and "1 running" in page.status.text
    assert (cache.frame.loc[3, "lr"], cache.frame.loc[3, "Seed"], cache.frame.loc[3, "Success"]) == (0.3, 3, False)
    titles = [c.title for c in page.history.table.columns]
    assert titles[titles.index("Result") + 1: titles.index("Result") + 5] == ["Status", "Success", "Tags", "Note"]
    data = page.history.source.data
    row = data["trial"].index(3)
    assert (data["status_color"][row], data["status_background"][row]) == STATUS_COLORS["running"]
    assert data[page.history.table.columns[titles.index("Tags")].field][row] == "a, b"
    assert data[page.history.table.columns[titles.index("Note")].field][row] == XSS  # shown as text
    page.select([3])
    show(page, "Metrics")
    assert page.metrics.sources[0][0].data["ys"][0] == [1.0, 0.5, 1 / 3]
    assert "live: trial 3 running" in page.metrics.caption.text
    backend.requests.clear()
    backend.write_metrics([MetricPoint(3, "loss", 3, 0.25)])  # the running trial saves another point
    page.refresh()
    assert backend.requests == [[3]]  # only the running trial is read again
    assert page.metrics.sources[0][0].data["ys"][0] == [1.0, 0.5, 1 / 3, 0.25]  # its curve grew
    backend.edit_annotations([AnnotationEdit(3, note="done", remove_tags=frozenset({"b"}))])
    backend.write_trial(record(3, code, result=33.0, lr=0.3))  # it finished: its record changed
    page.refresh()
    assert cache.running() == [] and "running" not in page.status.text
    assert cache.frame.loc[3, "Result"] == 33.0
    backend.requests.clear()
    page.refresh()
    assert backend.requests == []  # nothing running: nothing read again
    show(page, "Compare")
    assert "<th>Status</th><td class=\"\">finished</td>" in page.compare.table.text
    assert "<th>Note</th><td class=\"\">done</td>" in page.compare.table.text


# -- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture
def store_with(tmp_path: Path) -> Callable[..., LocalBackend]:
    """A local store of experiment ``views`` with trials of these parameters (results 1.0, 2.0, ...)."""

    def make(parameters: list[dict[str, object]], results: list[float | None] | None = None) -> LocalBackend:
        backend = LocalBackend(tmp_path / "store" / "views", "views")
        code = Blob.of(b"def f():\n    pass\n")
        outcomes = results if results is not None else [float(t) for t in range(1, len(parameters) + 1)]
        trials = [record(t, code, success=r is not None, result=r, **p)
                  for t, (p, r) in enumerate(zip(parameters, outcomes), 1)]
        write_trials(backend, trials, [code])
        backend.write_batch(RecordBatch())
        return backend

    return make


@pytest.fixture
def cache_of(store_with: Callable[..., LocalBackend]) -> Callable[..., TrialCache]:
    """The loaded trials of :func:`store_with`."""

    def make(parameters: list[dict[str, object]], results: list[float | None] | None = None) -> TrialCache:
        cache = TrialCache(store_with(parameters, results), min_interval=0)
        cache.refresh()
        return cache

    return make


def test_table_columns_of_a_status(cache_of: Callable[..., TrialCache]) -> None:
    frame = cache_of([dict(lr=0.1)]).frame.assign(Status=["killed"])
    data = table_data(frame)
    assert (data["status_color"], data["status_background"]) == ([STATUS_COLORS["killed"][0]],
                                                                 [STATUS_COLORS["killed"][1]])
    assert [c.title for c in table_columns(list(frame.columns))][:4] == ["Trial ID", "lr", "Result", "Status"]


def test_started_trials_show_running_then_killed_once_their_heartbeat_is_stale(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "starts", "starts")
    code = Blob.of(b"")
    write_trials(backend, [record(t, code, result=float(t), lr=t / 10) for t in range(1, 21)], [code])
    now = time.time()
    beats = {21: now, 22: now - 3600.0, 23: now, 24: now - 7200.0}  # 22 and 24 stopped beating an hour ago
    started = backend.start_trials([TrialStart({"lr": t / 10, "width": t}, t, now - 60, beats[t], 10.0, f"host:{t}")
                                    for t in beats])
    assert list(started) == list(beats)
    cache = TrialCache(backend, min_interval=0)
    page = Dashboard(Document(), cache, "test store")
    frame = cache.frame
    assert list(frame.index) == list(range(1, 25)) and cache.running() == [21, 23]
    for t in range(1, 25):
        status = "finished" if t <= 20 else ("killed" if t in (22, 24) else "running")
        assert frame.loc[t, "Status"] == status, t
        assert frame.loc[t, "lr"] == t / 10 and frame.loc[t, "Success"] == (t <= 20), t
        assert (frame.loc[t, "Result"] == float(t)) if t <= 20 else math.isnan(frame.loc[t, "Result"]), t
    assert frame.loc[22, "Description"].startswith("killed: process host:22 stopped marking it alive at")
    assert cache.parameter_names() == ["lr", "width"] and frame.loc[23, "width"] == 23
    data = page.history.source.data
    colours = dict(zip(data["trial"], zip(data["status_color"], data["status_background"])))
    assert colours[22] == STATUS_COLORS["killed"] and colours[21] == STATUS_COLORS["running"]
    assert "2 running" in page.status.text
    version = cache.version
    page.refresh()
    assert cache.version == version  # nothing changed: the table is not made again
    backend.beat_trials([21], now - 3600.0)  # trial 21's process stops beating
    page.refresh()
    assert cache.running() == [23] and cache.frame.loc[21, "Status"] == "killed" and "1 running" in page.status.text
    backend.write_trial(record(23, code, result=23.0, lr=2.3))  # trial 23 ends
    page.refresh()
    assert cache.running() == [] and cache.frame.loc[23, "Status"] == "finished" and len(cache.frame) == 24
