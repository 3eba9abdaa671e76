"""The dashboard's server side: finding the store, following it, querying, rendering, sessions."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from bokeh.document import Document
from conftest import ServerProcess, free_port, redis_command

from daskperiment import BackendError, Experiment, InvalidExperimentIDError
from daskperiment.backend import LocalBackend, open_backend
from daskperiment.board import DashboardError, ExperimentNotFoundError, render, start
from daskperiment.board.app import Dashboard
from daskperiment.board.details import (
    MAX_POINTS_PER_CURVE,
    code_of,
    environment_of,
    metric_curves,
)
from daskperiment.board.query import (
    Condition,
    FilterError,
    TableQuery,
    parse_filter,
    run_query,
)
from daskperiment.board.store import TrialCache, open_store
from daskperiment.board.summary import summarize
from daskperiment.board.views import code_view, environment_view
from daskperiment.records import Blob, MetricPoint, RecordBatch, TrialRecord

XSS = "<script>alert(1)</script>"


def record(trial_id: int, code: Blob, *, success: bool = True, result: object = None,
           environment: Blob | None = None, **parameters: object) -> TrialRecord:
    """A trial record as an experiment would write it."""
    return TrialRecord(
        trial_id=trial_id, parameters=parameters, result=result if success else None,
        result_type="float" if success else "", success=success, finished=1_700_000_000.0 + trial_id,
        process_time=0.5 + trial_id / 100, description=None if success else "ValueError(boom)",
        seed=trial_id, code_digest=code.digest,
        environment_digest=environment.digest if environment else None,
    )


def write_trials(backend: LocalBackend, trials: Sequence[TrialRecord], blobs: Sequence[Blob] = ()) -> None:
    """Write trial records (and blobs) straight into a store."""
    for trial in trials:
        assert backend.allocate_trial_id() >= 1
    backend.write_batch(RecordBatch(trials=list(trials), blobs=list(blobs)))


@pytest.fixture
def store(tmp_path: Path) -> LocalBackend:
    """A local store of experiment ``board`` with six trials, one failed, one with an XSS value."""
    backend = LocalBackend(tmp_path / "store" / "board", "board")
    code = Blob.of(b"def f(a):\n    return a\n")
    env = Blob.of(json.dumps({"python": {"version": "3.11.1"}, "packages": {"packages": []}}).encode())
    trials = [
        record(1, code, result=3.0, environment=env, lr=0.1, model="cnn"),
        record(2, code, result=1.0, environment=env, lr=0.2, model="cnn"),
        record(3, code, result=2.0, environment=env, lr=0.3, model="mlp"),
        record(4, code, success=False, environment=env, lr=0.4, model="mlp"),
        record(5, code, result=0.5, environment=env, lr=0.5, model=XSS),
        record(6, code, result=4.0, environment=env, lr=0.05, model="rnn"),
    ]
    write_trials(backend, trials, [code, env])
    backend.write_metrics([MetricPoint(t, "loss", e, 1.0 / (e + t)) for t in (1, 2, 3) for e in range(5)])
    return backend


@pytest.fixture
def cache(store: LocalBackend) -> TrialCache:
    """The trials of ``store``, loaded."""
    loaded = TrialCache(store, min_interval=0)
    loaded.refresh()
    return loaded


class RecordingBackend(LocalBackend):
    """A local store that remembers which trial ids it was asked for."""

    def __init__(self, directory: Path, experiment_id: str) -> None:
        super().__init__(directory, experiment_id)
        self.requests: list[list[int] | None] = []

    def load_trials(self, trial_ids: Sequence[int] | None = None) -> list[TrialRecord]:
        self.requests.append(None if trial_ids is None else list(trial_ids))
        return super().load_trials(trial_ids)


# -- finding the experiment ------------------------------------------------------------------
def test_open_store_finds_nested_and_direct_layouts(tmp_path: Path, store: LocalBackend) -> None:
    assert open_store("board", tmp_path / "store") == store  # FOLDER/<id>/<id>.sqlite3
    assert open_store("board", str(tmp_path / "store" / "board")) == store  # FOLDER/<id>.sqlite3
    assert open_store("board", store) is store


def test_open_store_local_default(tmp_path: Path) -> None:
    write_trials(LocalBackend(Path("daskperiment_cache") / "mine", "mine"), [record(1, Blob.of(b""))])
    assert open_store("mine").last_trial_id() == 1


def test_missing_experiment_is_a_clear_error_and_creates_nothing(tmp_path: Path, store: LocalBackend) -> None:
    with pytest.raises(ExperimentNotFoundError, match=r"no experiment 'nope'.*experiments there: board"):
        open_store("nope", tmp_path / "store")
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["board"]
    with pytest.raises(ExperimentNotFoundError, match="experiments there: none"):
        start("nope", tmp_path / "empty", port=0)
    assert not (tmp_path / "empty").exists()


def test_invalid_experiment_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidExperimentIDError):
        open_store("../etc", tmp_path)


def test_unreachable_backend_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match="cannot reach the Redis server"):
        start("board", f"redis://127.0.0.1:{free_port()}/0", port=0)


def test_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match="unknown backend"):
        open_store("board", "ftp://example.org/x")


# -- following new trials ----------------------------------------------------------------------
def test_refresh_loads_only_new_trials(tmp_path: Path) -> None:
    backend = RecordingBackend(tmp_path / "rec", "rec")
    code = Blob.of(b"")
    write_trials(backend, [record(t, code, result=float(t), a=t) for t in (1, 2, 3)], [code])
    cache = TrialCache(backend, min_interval=0)
    assert cache.refresh() and list(cache.frame.index) == [1, 2, 3]
    assert not cache.refresh()
    write_trials(backend, [record(4, code, result=4.0, a=4, b="new")])
    assert cache.refresh()
    assert backend.requests == [None, [4]]
    assert list(cache.frame.index) == [1, 2, 3, 4]
    assert list(cache.frame.columns[:2]) == ["a", "b"]  # parameters first, in order of appearance
    assert cache.parameter_names() == ["a", "b"]


def test_refresh_picks_up_a_trial_finishing_after_a_later_one(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "gap", "gap")
    code = Blob.of(b"")
    backend.allocate_trial_id()
    write_trials(backend, [record(2, code, result=2.0)], [code])  # trial 1 still running
    cache = TrialCache(backend, min_interval=0)
    cache.refresh()
    assert list(cache.frame.index) == [2]
    backend.write_trial(record(1, code, result=1.0))
    assert cache.refresh()
    assert list(cache.frame.index) == [1, 2]
    assert cache.trial(1).result == 1.0


# -- querying the history ---------------------------------------------------------------------------
COLUMNS = ["Trial ID", "lr", "model", "Result", "Success", "Description"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("lr<0.3", (Condition("lr", "<", "0.3"),)),
        ("LR >= 1e-3 , model = cnn", (Condition("lr", ">=", "1e-3"), Condition("model", "=", "cnn"))),
        ("description~Error", (Condition("Description", "~", "Error"),)),
        ("trial id != 3", (Condition("Trial ID", "!=", "3"),)),
    ],
)
def test_parse_filter(text: str, expected: tuple[Condition, ...]) -> None:
    assert parse_filter(text, COLUMNS) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("lr", "cannot read the condition 'lr'"), ("depth>3", "no column 'depth'"), ("<3", "cannot read")],
)
def test_parse_filter_errors(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filter(text, COLUMNS)


def ids(page_rows: object) -> list[int]:
    return [int(t) for t in page_rows.index]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (TableQuery(), [6, 5, 4, 3, 2, 1]),
        (TableQuery(descending=False), [1, 2, 3, 4, 5, 6]),
        (TableQuery(success="failed"), [4]),
        (TableQuery(success="succeeded", sort_by="Result", descending=False), [5, 2, 3, 1, 6]),
        (TableQuery(sort_by="Result"), [6, 1, 3, 2, 5, 4]),  # no result: last either way
        (TableQuery(sort_by="model", descending=False), [5, 1, 2, 3, 4, 6]),
        (TableQuery(conditions=(Condition("lr", "<", "0.3"),)), [6, 2, 1]),
        (TableQuery(conditions=(Condition("model", "=", "mlp"), Condition("lr", ">", "0.35"))), [4]),
        (TableQuery(conditions=(Condition("model", "~", "SCRIPT"),)), [5]),
        (TableQuery(conditions=(Condition("Description", "~", "boom"),)), [4]),
        (TableQuery(conditions=(Condition("Trial ID", ">=", "5"),)), [6, 5]),
        (TableQuery(conditions=(Condition("model", ">", "n"),)), [6]),
    ],
)
def test_run_query(cache: TrialCache, query: TableQuery, expected: list[int]) -> None:
    page = run_query(cache.frame, query)
    assert ids(page.rows) == expected
    assert page.matching == len(expected)


def test_run_query_pages(cache: TrialCache) -> None:
    page = run_query(cache.frame, TableQuery(page_size=4, page=1))
    assert (ids(page.rows), page.page, page.pages, page.matching) == ([2, 1], 1, 2, 6)
    assert run_query(cache.frame, TableQuery(page_size=4, page=9)).page == 1  # clamped
    empty = run_query(cache.frame, TableQuery(conditions=(Condition("lr", ">", "9"),)))
    assert (empty.matching, empty.pages, len(empty.rows)) == (0, 1, 0)


def test_run_query_refuses_an_unknown_sort_column(cache: TrialCache) -> None:
    with pytest.raises(FilterError, match="cannot sort by 'depth'"):
        run_query(cache.frame, TableQuery(sort_by="depth"))


# -- summary, rendering, details ------------------------------------------------------------------
def test_summary(cache: TrialCache) -> None:
    lowest = summarize(cache.frame, cache.parameter_names(), "min")
    assert (lowest.trials, lowest.succeeded, lowest.best_trial, lowest.best_result) == (6, 5, 5, 0.5)
    assert lowest.best_parameters == {"lr": 0.5, "model": XSS}
    assert lowest.success_rate == pytest.approx(5 / 6)
    assert summarize(cache.frame, cache.parameter_names(), "max").best_trial == 6
    with pytest.raises(ValueError, match="best must be 'min' or 'max'"):
        summarize(cache.frame, [], "best")  # type: ignore[arg-type]


def test_summary_without_trials_or_numeric_results(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "s", "s")
    empty = TrialCache(backend, min_interval=0)
    empty.refresh()
    summary = summarize(empty.frame, [])
    assert (summary.trials, summary.success_rate, summary.best_trial, summary.last_finished) == (0, None, None, None)
    assert "no numeric result yet" in render.summary_cards(summary, "min")
    write_trials(backend, [record(1, Blob.of(b""), result="text")])
    empty.refresh()
    assert summarize(empty.frame, []).best_trial is None


def test_rendered_user_text_is_escaped(cache: TrialCache) -> None:
    cards = render.summary_cards(summarize(cache.frame, cache.parameter_names()), "min")
    assert XSS not in cards and "&lt;script&gt;alert(1)&lt;/script&gt;" in cards
    for html in (
        render.code_block(XSS),
        render.message(XSS),
        render.caption(XSS),
        render.header(XSS, XSS),
        render.status(XSS),
        render.unified_diff(f"--- a\n+++ b\n-{XSS}\n+x\n {XSS}"),
        render.side_by_side_diff(XSS, "x", XSS, "b"),
    ):
        assert "<script>" not in html and "&lt;script&gt;" in html


def test_diff_rendering() -> None:
    side = render.side_by_side_diff("a\nb\nc", "a\nB\nc\nd", "trial 1", "trial 2")
    assert side.count("<tr>") == 5  # header + a, b/B, c, d
    assert 'class="chg">b<' in side and 'class="chg">B<' in side and 'class="add">d<' in side
    assert "No difference" in render.side_by_side_diff("a", "a", "x", "y")
    assert "No difference" in render.unified_diff("")
    unified = render.unified_diff("--- x\n+++ y\n@@ -1 +1 @@\n-a\n+b\n c")
    assert '<span class="del">-a</span>' in unified and '<span class="add">+b</span>' in unified


def test_details(store: LocalBackend, cache: TrialCache) -> None:
    assert code_of(store, cache.trial(1)) == "def f(a):\n    return a\n"
    assert environment_of(store, cache.trial(1)) == {"python": {"version": "3.11.1"}, "packages": {"packages": []}}
    no_env = record(9, Blob.of(b"gone"))
    assert environment_of(store, no_env) is None and code_of(store, no_env) == ""
    curves = metric_curves(store, "loss", [2, 3, 6])
    assert [c.trial_id for c in curves] == [2, 3]
    assert curves[0].epochs == [0, 1, 2, 3, 4] and curves[0].values[0] == 0.5


def test_views_of_code_and_environment(store: LocalBackend, cache: TrialCache) -> None:
    changed = record(8, Blob.of(b"def f(a):\n    return 2 * a\n"))
    store.write_batch(RecordBatch(blobs=[Blob.of(b"def f(a):\n    return 2 * a\n")]))
    unified = code_view(store, cache.trial(1), changed, side_by_side=False)
    assert '<span class="del">-    return a</span>' in unified.html
    assert '<span class="add">+    return 2 * a</span>' in unified.html
    assert "trial 1 → trial 8" in unified.caption
    assert "No trial yet" in code_view(store, None, None, side_by_side=True).caption
    view = environment_view(store, cache.trial(1), None, "no-such-category")
    assert view.categories == ["summary", "python", "packages"]
    assert "Number of Installed Python Packages: 0" in view.html and view.diff_html == ""
    assert "3.11.1" in environment_view(store, cache.trial(1), None, "python").html
    assert "No recorded environment" in environment_view(store, changed, None, "summary").caption


def test_long_metric_curves_are_thinned(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "m", "m")
    epochs = 10 * MAX_POINTS_PER_CURVE + 3
    backend.write_metrics([MetricPoint(1, "loss", e, float(e)) for e in range(epochs)])
    (curve,) = metric_curves(backend, "loss", [1])
    assert len(curve.epochs) <= MAX_POINTS_PER_CURVE + 1
    assert curve.epochs[0] == 0 and curve.epochs[-1] == epochs - 1


# -- a session, without a browser -------------------------------------------------------------------
@pytest.fixture
def dashboard(cache: TrialCache) -> Dashboard:
    """A dashboard session over ``cache``."""
    return Dashboard(Document(), cache, "test store")


def test_session_shows_history_summary_and_charts(dashboard: Dashboard) -> None:
    data = dashboard.table_source.data
    assert data["trial"] == [6, 5, 4, 3, 2, 1]
    titles = [c.title for c in dashboard.table.columns]
    assert titles == ["Trial ID", "lr", "model", "Result", "Success", "Description", "Process Time", "Finished",
                      "Seed", "Result Type"]
    model = data[dashboard.table.columns[2].field]
    assert model[1] == XSS  # the table's StringFormatter shows it as text
    assert "&lt;script&gt;" in dashboard.summary.text and "trial 5" in dashboard.summary.text
    assert dashboard.chart_source.data["trial"] == [1, 2, 3, 4, 5, 6]
    assert dashboard.best_source.data == {"trial": [5], "result": [0.5]}
    dashboard.best.active = 1  # highest is best
    assert dashboard.best_source.data == {"trial": [6], "result": [4.0]} and "(highest)" in dashboard.summary.text
    assert math.isnan(dashboard.chart_source.data["result"][3])
    assert dashboard.parameter.value == "lr" and dashboard.parameter.options == ["lr", "model"]
    dashboard.parameter.value = "model"  # non-numeric: placed at 0, 1, 2... and labelled
    assert dashboard.parameter_chart.xaxis.major_label_overrides[0.0] == XSS[:20]
    assert dashboard.metric.value == "loss"
    assert dashboard.metric_lines.data["label"] == ["trial 2", "trial 3"]  # latest trials with values


def test_session_filters_sorts_and_pages(dashboard: Dashboard) -> None:
    dashboard.success.active = 2
    assert dashboard.table_source.data["trial"] == [4]
    dashboard.success.active = 0
    dashboard.filter.value = "lr<0.3"
    assert dashboard.table_source.data["trial"] == [6, 2, 1]
    assert "3 of 6 trials" in dashboard.page_info.text
    dashboard.filter.value = "depth>3"
    assert "no column" in dashboard.filter_message.text
    assert dashboard.table_source.data["trial"] == [6, 2, 1]  # the last valid filter holds
    dashboard.filter.value = ""
    dashboard.sort_by.value = "Result"
    dashboard.order.active = 1
    assert dashboard.table_source.data["trial"] == [5, 2, 3, 1, 6, 4]
    dashboard.page_size.value = "25"
    assert dashboard.previous.disabled and dashboard.next.disabled


def test_session_selection_drives_metrics_code_and_environment(dashboard: Dashboard) -> None:
    page = dashboard.table_source.data["trial"]
    dashboard.table_source.selected.indices = [page.index(3), page.index(1)]
    assert dashboard.selection == [1, 3]
    assert "Selected trials: 1, 3" in dashboard.selection_info.text
    assert dashboard.metric_lines.data["label"] == ["trial 1", "trial 3"]
    assert dashboard.selected_source.data["trial"] == [1, 3]
    assert "trial 1 → trial 3" in dashboard.code_caption.text
    assert "No difference" in dashboard.code.text
    dashboard.diff_mode.active = 0  # unified
    assert "No difference" in dashboard.code.text and "trial 1 → trial 3" in dashboard.code_caption.text
    assert "Changes from trial 1 to 3" in dashboard.environment_diff.text
    dashboard.category.value = "python"
    assert "3.11.1" in dashboard.environment.text
    dashboard.table_source.selected.indices = [page.index(3)]
    assert "Code of trial 3" in dashboard.code_caption.text and "def f(a)" in dashboard.code.text
    dashboard._select([])
    assert dashboard.selection == [] and dashboard.clear.disabled


def test_session_selection_survives_paging(cache: TrialCache) -> None:
    session = Dashboard(Document(), cache, "test store")
    session.query = TableQuery(page_size=2)
    session.update_table()
    session.table_source.selected.indices = [0]  # trial 6
    session._go_to_page(1)
    session.table_source.selected.indices = [1]  # trial 3
    assert session.selection == [3, 6]
    session._go_to_page(0)
    assert session.table_source.selected.indices == [0]


def test_session_shows_new_trials(store: LocalBackend, cache: TrialCache, dashboard: Dashboard) -> None:
    write_trials(store, [record(7, Blob.of(b"def f(a):\n    return a\n"), result=0.1, lr=0.7, model="new")])
    dashboard.refresh()
    assert dashboard.table_source.data["trial"][0] == 7
    assert "live · 7 trials" in dashboard.status.text
    assert dashboard.chart_source.data["trial"][-1] == 7


def test_session_with_ten_thousand_trials_sends_one_page(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "big", "big")
    code = Blob.of(b"")
    write_trials(backend, [record(t, code, result=float(t % 97), lr=t / 10_000, model=f"m{t % 7}")
                           for t in range(1, 10_001)], [code])
    cache = TrialCache(backend, min_interval=0)
    cache.refresh()
    session = Dashboard(Document(), cache, "big")
    assert len(session.table_source.data["trial"]) == 100
    assert "page 1 of 100 · 10000 trials" in session.page_info.text
    session.filter.value = "model=m3, lr<0.5"
    assert "714 of 10000 trials" in session.page_info.text
    assert "Trials" in session.summary.text and ">10000<" in session.summary.text


def test_session_reports_an_unreachable_store(tmp_path: Path) -> None:
    server = ServerProcess(redis_command(tmp_path), tmp_path / "redis.log").start()
    try:
        uri = f"redis://127.0.0.1:{server.port}/0"
        backend = open_backend(uri, "remote")
        code = Blob.of(b"")
        backend.write_batch(RecordBatch(trials=[record(backend.allocate_trial_id(), code, result=1.0)],
                                        blobs=[code]))
        cache = TrialCache(open_store("remote", uri), min_interval=0)
        cache.refresh()
        session = Dashboard(Document(), cache, uri)
        assert session.table_source.data["trial"] == [1]
    finally:
        server.kill()
    session.refresh()
    assert "store unreachable" in session.status.text and "error" in session.status.text
    assert session.table_source.data["trial"] == [1]  # what was shown stays



def test_session_of_an_experiment_without_trials(tmp_path: Path) -> None:
    cache = TrialCache(LocalBackend(tmp_path / "new", "new"), min_interval=0)
    session = Dashboard(Document(), cache, "new")
    assert session.table_source.data["trial"] == []
    assert "page 1 of 1 · 0 trials" in session.page_info.text
    assert "No trial yet" in session.code_caption.text
    assert "No metric saved yet" in session.metric_caption.text
    assert "live · 0 trials" in session.status.text


# -- serving -----------------------------------------------------------------------------------------
def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def test_start_serves_in_the_background_on_loopback(store: LocalBackend, tmp_path: Path) -> None:
    board = start("board", tmp_path / "store", port=0)
    try:
        assert board.url.startswith("http://127.0.0.1:")
        assert "board · daskperiment" in fetch(board.url)
        assert board._server.address == "127.0.0.1"
    finally:
        board.stop()
    with pytest.raises(OSError):
        fetch(board.url)


def test_start_dashboard_in_an_interactive_session(make_experiment: Callable[..., Experiment],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ex = make_experiment()
    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)
    board = ex.start_dashboard(port=0)
    try:
        assert f"{ex.id} · daskperiment" in fetch(board.url)
        assert f'href="{board.url}"' in board._repr_html_() and repr(board) == f"BoardServer({board.url!r})"
    finally:
        board.stop()


def test_start_dashboard_blocks_in_a_script(tmp_path: Path, child_env: dict[str, str]) -> None:
    port = free_port()
    script = tmp_path / "board_script.py"
    script.write_text(
        "import pathlib, daskperiment\n"
        "ex = daskperiment.Experiment('scripted', backend=pathlib.Path('store'))\n"
        f"ex.start_dashboard(port={port})\n"
        "pathlib.Path('returned').touch()\n"
    )
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=child_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = fetch(f"http://127.0.0.1:{port}/")
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
                time.sleep(0.2)
        assert "scripted · daskperiment" in page
        assert not (tmp_path / "returned").exists()  # still serving
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        assert (tmp_path / "returned").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_taken_port_is_a_clear_error(store: LocalBackend, tmp_path: Path) -> None:
    board = start("board", tmp_path / "store", port=0)
    try:
        port = int(board.url.rsplit(":", 1)[1].strip("/"))
        with pytest.raises(DashboardError, match=rf"cannot serve the dashboard on 127.0.0.1:{port}.*another port"):
            start("board", tmp_path / "store", port=port)
    finally:
        board.stop()


def test_session_over_a_server_store(server_uri: str) -> None:
    backend = open_backend(server_uri, "remote")
    code = Blob.of(b"def f():\n    pass\n")
    backend.write_batch(RecordBatch(trials=[record(backend.allocate_trial_id(), code, result=1.5, a=XSS)],
                                    blobs=[code]))
    with pytest.raises(ExperimentNotFoundError, match="experiments there: remote"):
        open_store("other", server_uri)
    cache = TrialCache(open_store("remote", server_uri))
    cache.refresh()
    session = Dashboard(Document(), cache, server_uri)
    assert session.table_source.data["trial"] == [1]
    assert session.table_source.data[session.table.columns[1].field] == [XSS]
    assert "def f()" in session.code.text


def test_clicking_dots_toggles_their_trials(dashboard: Dashboard) -> None:
    position = dashboard.chart_source.data["trial"].index(4)
    dashboard.chart_source.selected.indices = [position]
    assert dashboard.selection == [4] and dashboard.chart_source.selected.indices == []
    assert dashboard.table_source.selected.indices == [dashboard.table_source.data["trial"].index(4)]
    dashboard.parameter_source.selected.indices = [dashboard.parameter_source.data["trial"].index(2)]
    assert dashboard.selection == [2, 4]
    dashboard.chart_source.selected.indices = [position]
    assert dashboard.selection == [2]


def test_sessions_refreshing_together_ask_the_store_once(tmp_path: Path) -> None:
    backend = RecordingBackend(tmp_path / "rec", "rec")
    code = Blob.of(b"")
    write_trials(backend, [record(1, code, result=1.0)], [code])
    cache = TrialCache(backend, min_interval=3600)
    assert cache.refresh()
    write_trials(backend, [record(2, code, result=2.0)])
    assert not cache.refresh()  # within min_interval of the last refresh: the store is not asked
    assert backend.requests == [None] and list(cache.frame.index) == [1]
