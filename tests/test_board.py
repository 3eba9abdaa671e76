"""The dashboard's server side: finding the store, following it, querying, rendering, sessions."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path

import pytest
from bokeh.document import Document
from conftest import S3Server, ServerProcess, free_port, redis_command

from daskperiment import BackendError, Experiment, InvalidExperimentIDError
from daskperiment.artifactstore import ArtifactStore
from daskperiment.backend import LocalBackend, open_backend
from daskperiment.board import DashboardError, ExperimentNotFoundError, render, start
from daskperiment.board.app import Dashboard
from daskperiment.board.artifacts import MAX_FILES, MAX_IMAGES, human_size, trial_files
from daskperiment.board.download import content_disposition, media_type
from daskperiment.board.details import (
    MAX_POINTS_PER_CURVE,
    code_of,
    environment_of,
    metric_curves,
)
from daskperiment.board.filters import Condition, FilterError, parse_filter
from daskperiment.board.query import TableQuery, cell_text, run_query
from daskperiment.board.store import TrialCache, open_store
from daskperiment.board.summary import summarize
from daskperiment.direction import load_direction
from daskperiment.board.views import code_view, environment_view
from daskperiment.records import ArtifactRecord, Blob, MetricPoint, RecordBatch, TrialRecord

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
COLUMNS = ["Trial ID", "lr", "model", "Result", "Success", "Status", "Description", "Process Time"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("lr<0.3", (Condition("lr", "<", 0.3),)),
        ("LR >= 1e-3 , model = cnn", (Condition("lr", ">=", 0.001), Condition("model", "=", "cnn"))),
        ("description~Error", (Condition("Description", "~", "Error"),)),
        ("description~value error", (Condition("Description", "~", "value error"),)),
        ("trial id != 3", (Condition("Trial ID", "!=", 3.0),)),
        # process times are shown in seconds under "Process Time (s)": either name filters them
        ("Process Time (s) > 0.5", (Condition("Process Time", ">", 0.5),)),
        ("process time<=2", (Condition("Process Time", "<=", 2.0),)),
        # a quoted value is a text, commas and spaces included; a number in quotes too
        ('model="big, cnn", lr != \'0.1\'', (Condition("model", "=", "big, cnn"), Condition("lr", "!=", "0.1"))),
    ],
)
def test_parse_filter(text: str, expected: tuple[Condition, ...]) -> None:
    assert parse_filter(text, COLUMNS) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr", "cannot read the condition 'lr'"),
        ("depth>3", "no column 'depth'"),
        ("<3", "cannot read"),
        ("lr>0.5 and", r"cannot read the value '0.5 and' of 'lr>0.5 and' \(join conditions with commas, not 'and'\)"),
        ("lr>0.5 model=cnn", "cannot read the value '0.5 model=cnn'"),
        ("lr>", "the condition 'lr>' has no value"),
        ("lr>>3", "cannot read the operator of 'lr>>3'"),
        ('model="cnn', "a quote \" is not closed"),
        ("lr=nan", "cannot compare with NaN"),
    ],
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
        (TableQuery(conditions=(Condition("lr", "<", 0.3),)), [6, 2, 1]),
        (TableQuery(conditions=(Condition("model", "=", "mlp"), Condition("lr", ">", 0.35))), [4]),
        (TableQuery(conditions=(Condition("model", "~", "SCRIPT"),)), [5]),
        (TableQuery(conditions=(Condition("Description", "~", "boom"),)), [4]),
        (TableQuery(conditions=(Condition("Trial ID", ">=", 5.0),)), [6, 5]),
        (TableQuery(conditions=(Condition("model", ">", "n"),)), [6]),  # texts compare as texts
        (TableQuery(conditions=(Condition("model", "!=", "cnn"),)), [6, 5, 4, 3]),
        (TableQuery(conditions=(Condition("Success", "=", "no"),)), [4]),
        (TableQuery(conditions=(Condition("Success", "=", 1.0),)), [6, 5, 3, 2, 1]),
        (TableQuery(conditions=(Condition("Process Time", ">", 0.545),)), [6, 5]),
        (TableQuery(conditions=(Condition("Result", ">=", 3.0),)), [6, 1]),  # the failed trial has none
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
    empty = run_query(cache.frame, TableQuery(conditions=(Condition("lr", ">", 9.0),)))
    assert (empty.matching, empty.pages, len(empty.rows)) == (0, 1, 0)


def test_filters_on_dates(cache: TrialCache) -> None:
    fourth = cell_text(cache.frame.loc[4, "Finished"])  # local time, as the table shows it
    page = run_query(cache.frame, TableQuery(conditions=parse_filter(f"finished>'{fourth}'", ["Finished"])))
    assert ids(page.rows) == [6, 5]
    with pytest.raises(FilterError, match="Finished holds dates; compare it with a date"):
        run_query(cache.frame, TableQuery(conditions=(Condition("Finished", ">", "soon"),)))


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (Condition("model", ">", 3.0), "model>3: model holds texts, not numbers; compare it with a text"),
        (Condition("model", "=", 3.0), 'or quote the number to compare texts \\(model="3"\\)'),
        (Condition("lr", "=", "cnn"), "lr='cnn': lr holds numbers, not texts; compare it with a number"),
        (Condition("lr", "<", "0.5"), "lr<'0.5': lr holds numbers"),  # quoted: a text
        (Condition("Process Time", ">", "long"), "Process Time \\(s\\) holds numbers"),
        (Condition("Trial ID", "=", "x"), "Trial ID holds numbers"),
        (Condition("Success", "=", "maybe"), "Success holds yes or no"),
    ],
)
def test_comparing_values_of_different_kinds_is_an_error(cache: TrialCache, condition: Condition,
                                                         message: str) -> None:
    with pytest.raises(FilterError, match=message):
        run_query(cache.frame, TableQuery(conditions=(condition,)))


def test_a_mixed_column_compares_numbers_with_numbers_and_texts_with_texts(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "mixed", "mixed")
    code = Blob.of(b"")
    values: list[object] = [0.1, "oops", 0.3, 3, "3", None, 0.05]
    write_trials(backend, [record(t, code, result=float(t), lr=v) for t, v in enumerate(values, 1)], [code])
    cache = TrialCache(backend, min_interval=0)
    cache.refresh()

    def matching(text: str) -> list[int]:
        return sorted(ids(run_query(cache.frame, TableQuery(conditions=parse_filter(text, ["lr"]))).rows))

    numbers = {t: v for t, v in enumerate(values, 1) if isinstance(v, (int, float))}
    texts = {t: v for t, v in enumerate(values, 1) if isinstance(v, str)}
    assert matching("lr<0.2") == sorted(t for t, v in numbers.items() if v < 0.2) == [1, 7]
    assert matching("lr=3") == [4]  # the number 3, not the text "3"
    assert matching('lr="3"') == [5]
    assert matching("lr=oops") == [2]
    assert matching("lr!=oops") == sorted(t for t, v in texts.items() if v != "oops") == [5]
    assert matching("lr!=3") == [1, 3, 7]
    assert matching("lr>a") == [2]  # texts only: "oops" > "a", "3" < "a"
    assert matching("lr~3") == [3, 4, 5]  # the shown text contains "3": 0.3, 3 and "3"


def test_run_query_refuses_an_unknown_sort_column(cache: TrialCache) -> None:
    with pytest.raises(FilterError, match="cannot sort by 'depth'"):
        run_query(cache.frame, TableQuery(sort_by="depth"))


# -- summary, rendering, details ------------------------------------------------------------------
def test_summary(cache: TrialCache) -> None:
    lowest = summarize(cache.frame, cache.parameter_names(), "minimize")
    assert (lowest.trials, lowest.succeeded, lowest.best_trial, lowest.best_result) == (6, 5, 5, 0.5)
    assert lowest.best_parameters == {"lr": 0.5, "model": XSS}
    assert lowest.success_rate == pytest.approx(5 / 6)
    assert summarize(cache.frame, cache.parameter_names(), "maximize").best_trial == 6
    with pytest.raises(ValueError, match="invalid direction 'max': use 'minimize'"):
        summarize(cache.frame, [], "max")  # type: ignore[arg-type]


def test_summary_without_trials_or_numeric_results(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "s", "s")
    empty = TrialCache(backend, min_interval=0)
    empty.refresh()
    summary = summarize(empty.frame, [])
    assert (summary.trials, summary.success_rate, summary.best_trial, summary.last_finished) == (0, None, None, None)
    assert "no numeric result yet" in render.summary_cards(summary, "minimize")
    write_trials(backend, [record(1, Blob.of(b""), result="text")])
    empty.refresh()
    assert summarize(empty.frame, []).best_trial is None


def test_rendered_user_text_is_escaped(cache: TrialCache) -> None:
    cards = render.summary_cards(summarize(cache.frame, cache.parameter_names()), "minimize")
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


def show(session: Dashboard, title: str) -> None:
    """Show the tab ``title`` of ``session`` (its views are drawn when shown)."""
    session.tabs.active = [tab.title for tab in session.tabs.tabs].index(title)


def test_session_shows_history_summary_and_charts(dashboard: Dashboard) -> None:
    data = dashboard.history.source.data
    assert data["trial"] == [6, 5, 4, 3, 2, 1]
    titles = [c.title for c in dashboard.history.table.columns]
    assert titles == ["Trial ID", "lr", "model", "Result", "Status", "Success", "Description", "Process Time (s)", "Finished",
                      "Seed", "Result Type"]
    model = data[dashboard.history.table.columns[2].field]
    assert model[1] == XSS  # the table's StringFormatter shows it as text
    assert "&lt;script&gt;" in dashboard.summary.text and "trial 5" in dashboard.summary.text
    assert list(dashboard.overview.dots.data["trial"]) == [1, 2, 3, 4, 5, 6]
    assert list(dashboard.overview.dots.data["failed"]) == [0, 0, 0, 1, 0, 0]  # drawn red
    assert dashboard.overview.best.data == {"trial": [5], "result": [0.5]}
    assert "(lowest, assumed)" in dashboard.summary.text  # no direction stored yet
    dashboard.best.active = 1  # highest is best
    assert dashboard.overview.best.data == {"trial": [6], "result": [4.0]} and "(highest)" in dashboard.summary.text
    assert math.isnan(dashboard.overview.dots.data["result"][3])
    assert dashboard.overview.parameter.value == "lr" and dashboard.overview.parameter.options == ["lr", "model"]
    dashboard.overview.parameter.value = "model"  # non-numeric: placed at 0, 1, 2... and labelled
    assert dashboard.overview.parameter_chart.xaxis.major_label_overrides[0.0] == XSS[:20]
    show(dashboard, "Metrics")
    assert dashboard.metrics.keys.value == ["loss"]
    assert dashboard.metrics.sources[0][0].data["label"] == ["trial 2", "trial 3"]  # latest trials with values


def test_the_direction_is_stored_and_followed_by_every_session(store: LocalBackend, cache: TrialCache,
                                                                  tmp_path: Path, child_env: dict[str, str]) -> None:
    first, second = (Dashboard(Document(), cache, "test store") for _ in range(2))
    assert load_direction(store) is None and first.best.active == 0
    first.best.active = 1
    assert load_direction(LocalBackend(tmp_path / "store" / "board", "board")) == "maximize"  # in the store
    second.refresh(force=True)
    assert second.best.active == 1 and second.overview.best.data["trial"] == [6]
    assert Dashboard(Document(), cache, "reloaded").best.active == 1  # a new page keeps it
    done = subprocess.run(
        [sys.executable, "-m", "daskperiment.cli", "direction", "board", "minimize", "--backend",
         str(tmp_path / "store")], env=child_env, capture_output=True, text=True, timeout=120,
    )
    assert (done.returncode, done.stdout) == (0, "minimize (lower results are better)\n"), done.stderr
    cache.refresh()
    first.refresh()  # set elsewhere: the next refresh follows
    assert first.best.active == 0 and first.overview.best.data["trial"] == [5]
    assert "(lowest)" in first.summary.text and "assumed" not in first.summary.text


def test_a_direction_that_cannot_be_stored_is_reported(store: LocalBackend, cache: TrialCache,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    session = Dashboard(Document(), cache, "test store")

    def refuse(name: str, value: str) -> None:
        raise BackendError("the local store is read only")

    monkeypatch.setattr(store, "save_setting", refuse)
    session.best.active = 1
    assert "cannot store the direction: the local store is read only" in session.status.text
    assert session.best.active == 0 and session.overview.best.data["trial"] == [5]  # as it was


@pytest.mark.parametrize("stored", ['"sideways"', "not json", '["maximize"]'])
def test_a_stored_direction_that_is_not_one_is_ignored(store: LocalBackend, stored: str) -> None:
    store.save_setting("direction", stored)
    assert load_direction(store) is None


def test_a_search_stores_its_study_direction_for_the_dashboard(make_experiment: Callable[..., Experiment]) -> None:
    import optuna

    ex = make_experiment("searched")
    x = ex.parameter("x")

    @ex.result
    def score(x: float) -> float:
        return -((x - 1) ** 2)

    space = {"x": optuna.distributions.FloatDistribution(-3, 3)}
    ex.optimize(score(x), space, 12, study=optuna.create_study(direction="maximize"), seed=3, n_parallel=1)
    cache = TrialCache(ex.backend, min_interval=0)
    cache.refresh()
    session = Dashboard(Document(), cache, "test store")
    results = ex.get_history()["Result"]
    assert cache.direction == "maximize" and session.best.active == 1
    assert session.overview.best.data["trial"] == [int(results.idxmax())]


def test_cli_direction(store: LocalBackend, tmp_path: Path, child_env: dict[str, str]) -> None:
    def direction(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "daskperiment.cli", "direction", "board", *args,
                               "--backend", str(tmp_path / "store")], env=child_env, capture_output=True,
                              text=True, timeout=120)

    assert direction().stdout == "not set: minimize is assumed (lower results are better)\n"
    assert direction("maximize").stdout == "maximize (higher results are better)\n"
    assert direction().stdout == "maximize (higher results are better)\n"
    wrong = direction("max")
    assert wrong.returncode == 2 and "invalid choice: 'max'" in wrong.stderr
    assert load_direction(store) == "maximize"


def test_session_filters_sorts_and_pages(dashboard: Dashboard) -> None:
    dashboard.history.success.active = 2
    assert dashboard.history.source.data["trial"] == [4]
    dashboard.history.success.active = 0
    dashboard.history.filter.value = "lr<0.3"
    assert dashboard.history.source.data["trial"] == [6, 2, 1]
    assert "3 of 6 trials" in dashboard.history.page_info.text
    dashboard.history.filter.value = "depth>3"
    assert "no column" in dashboard.history.message.text
    assert dashboard.history.source.data["trial"] == [6, 2, 1]  # the last valid filter holds
    dashboard.history.filter.value = ""
    dashboard.history.sort_by.value = "Result"
    dashboard.history.order.active = 1
    assert dashboard.history.source.data["trial"] == [5, 2, 3, 1, 6, 4]
    dashboard.history.page_size.value = "25"
    assert dashboard.history.previous.disabled and dashboard.history.next.disabled
    # process times are named as the table shows them, in seconds, and sort by their value
    assert ("Process Time", "Process Time (s)") in dashboard.history.sort_by.options
    dashboard.history.sort_by.value = "Process Time"
    times = dashboard.cache.frame["Process Time"].sort_values(ascending=True, kind="stable")
    assert dashboard.history.source.data["trial"] == list(times.index)


def test_session_selection_drives_metrics_code_and_environment(dashboard: Dashboard) -> None:
    page = dashboard.history.source.data["trial"]
    dashboard.history.source.selected.indices = [page.index(3), page.index(1)]
    assert dashboard.selection == [1, 3]
    assert "Selected trials: 1, 3" in dashboard.selection_info.text
    show(dashboard, "Metrics")
    assert dashboard.metrics.sources[0][0].data["label"] == ["trial 1", "trial 3"]
    assert dashboard.overview.rings.data["trial"] == [1, 3]
    show(dashboard, "Code")
    assert "trial 1 → trial 3" in dashboard.code.caption.text
    assert "No difference" in dashboard.code.code.text
    dashboard.code.diff_mode.active = 0  # unified
    assert "No difference" in dashboard.code.code.text and "trial 1 → trial 3" in dashboard.code.caption.text
    show(dashboard, "Environment")
    assert "Changes from trial 1 to 3" in dashboard.environment.diff.text
    dashboard.environment.category.value = "python"
    assert "3.11.1" in dashboard.environment.environment.text
    show(dashboard, "Trials")
    dashboard.history.source.selected.indices = [page.index(3)]
    show(dashboard, "Code")
    assert "Code of trial 3" in dashboard.code.caption.text and "def f(a)" in dashboard.code.code.text
    dashboard.select([])
    assert dashboard.selection == [] and dashboard.clear.disabled


def test_session_selection_survives_paging(cache: TrialCache) -> None:
    session = Dashboard(Document(), cache, "test store")
    session.history.apply(TableQuery(page_size=2))
    session.history.source.selected.indices = [0]  # trial 6
    session.history.apply(replace(session.history.query, page=1))
    session.history.source.selected.indices = [1]  # trial 3
    assert session.selection == [3, 6]
    session.history.apply(replace(session.history.query, page=0))
    assert session.history.source.selected.indices == [0]


def test_session_shows_new_trials(store: LocalBackend, cache: TrialCache, dashboard: Dashboard) -> None:
    write_trials(store, [record(7, Blob.of(b"def f(a):\n    return a\n"), result=0.1, lr=0.7, model="new")])
    dashboard.refresh()
    assert dashboard.history.source.data["trial"][0] == 7
    assert "live · 7 trials" in dashboard.status.text
    assert dashboard.overview.dots.data["trial"][-1] == 7


def test_session_with_ten_thousand_trials_sends_one_page(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "big", "big")
    code = Blob.of(b"")
    write_trials(backend, [record(t, code, result=float(t % 97), lr=t / 10_000, model=f"m{t % 7}")
                           for t in range(1, 10_001)], [code])
    cache = TrialCache(backend, min_interval=0)
    cache.refresh()
    session = Dashboard(Document(), cache, "big")
    assert len(session.history.source.data["trial"]) == 100
    assert "page 1 of 100 · 10000 trials" in session.history.page_info.text
    session.history.filter.value = "model=m3, lr<0.5"
    assert "714 of 10000 trials" in session.history.page_info.text
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
        assert session.history.source.data["trial"] == [1]
    finally:
        server.kill()
    session.refresh()
    assert "store unreachable" in session.status.text and "error" in session.status.text
    assert session.history.source.data["trial"] == [1]  # what was shown stays



def test_session_of_an_experiment_without_trials(tmp_path: Path) -> None:
    cache = TrialCache(LocalBackend(tmp_path / "new", "new"), min_interval=0)
    session = Dashboard(Document(), cache, "new")
    assert session.history.source.data["trial"] == []
    assert "page 1 of 1 · 0 trials" in session.history.page_info.text
    show(session, "Code")
    assert "No trial yet" in session.code.caption.text
    show(session, "Metrics")
    assert "No metric saved yet" in session.metrics.caption.text
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
    assert session.history.source.data["trial"] == [1]
    assert session.history.source.data[session.history.table.columns[1].field] == [XSS]
    show(session, "Code")
    assert "def f()" in session.code.code.text
    show(session, "Artifacts")
    assert "Trial 1 · 0 files" in session.artifacts.artifacts.text  # the store lists the trial's files: none
    session.best.active = 1  # highest is best: stored on the server, read by a new reader
    reader = TrialCache(open_store("remote", server_uri), min_interval=0)
    reader.refresh()
    assert reader.direction == "maximize" and load_direction(backend) == "maximize"


def test_clicking_dots_toggles_their_trials(dashboard: Dashboard) -> None:
    position = list(dashboard.overview.dots.data["trial"]).index(4)
    dashboard.overview.dots.selected.indices = [position]
    assert dashboard.selection == [4] and dashboard.overview.dots.selected.indices == []
    assert dashboard.history.source.selected.indices == [dashboard.history.source.data["trial"].index(4)]
    dashboard.overview.parameter_dots.selected.indices = [list(dashboard.overview.parameter_dots.data["trial"]).index(2)]
    assert dashboard.selection == [2, 4]
    dashboard.overview.dots.selected.indices = [position]
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


# -- artifacts: the tab and the download route ---------------------------------------------------------
HTML_NAME = "<img src=x onerror=alert(1)>.txt"
SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><script>alert(3)</script>'
       '<rect width="40" height="20" fill="blue"/></svg>')
WEIGHTS = bytes(range(256)) * 8


def keep_files(ex: Experiment, size: int) -> None:
    """Run two trials of ``ex``: trial 1 keeps a folder ``plots`` (a size × size/2 PNG, an SVG, an
    HTML-named file), ``weights`` and its output; trial 2 takes ``prepare`` and its files from the cache."""
    from PIL import Image

    parameter = ex.parameter("size")

    @ex(cache=True)
    def prepare(size: int) -> int:
        plots = ex.artifact_dir("plots")
        Image.new("RGB", (size, size // 2), "red").save(plots / "square.png")
        (plots / "figure.svg").write_text(SVG)
        (plots / "data").mkdir()
        (plots / "data" / HTML_NAME).write_text("<b>x</b>")
        print("prepared", size)
        return size

    @ex.result
    def train(size: int) -> int:
        (ex.artifact_dir("weights") / "model.bin").write_bytes(WEIGHTS)
        return 2 * size

    ex.set_parameters(size=size)
    train(prepare(parameter)).compute()
    train(prepare(parameter)).compute()


@pytest.fixture
def files(make_experiment: Callable[..., Experiment]) -> Experiment:
    """Experiment ``files`` after :func:`keep_files`."""
    ex = make_experiment("files")
    keep_files(ex, 8)
    return ex


def kept(ex: Experiment, trial_id: int, label: str) -> ArtifactRecord:
    """The record of the file ``label`` (``name`` or ``name/path``) that trial ``trial_id`` kept."""
    (found,) = [r for r in ex.backend.load_artifacts(trial_id) if "/".join(filter(None, (r.name, r.path))) == label]
    return found


def kept_note(ex: Experiment, text: str) -> str:
    """Run a trial of ``ex`` keeping ``text`` as file ``notes/a.txt``; the file's digest."""

    @ex.result
    def note() -> int:
        (ex.artifact_dir("notes") / "a.txt").write_text(text)
        return 1

    note().compute()
    return kept(ex, ex.backend.last_trial_id(), "notes/a.txt").digest


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a GET (error statuses included)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (1024**2 - 1, "1.0 MiB"),
     (20 * 1024**2, "20.0 MiB"), (3 * 1024**3, "3.0 GiB"), (5 * 1024**5, "5120.0 TiB")],
)
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("name", "content_type", "disposition"),
    [
        ("plot.PNG", "image/png", 'inline; filename="plot.PNG"'),
        ("a.jpeg", "image/jpeg", "inline"),
        ("a.gif", "image/gif", "inline"),
        ("figure.svg", "image/svg+xml", "attachment"),  # may hold script: never shown on its own
        ("report.html", "application/octet-stream", "attachment"),
        ("model", "application/octet-stream", "attachment"),
        ("metrics.json", "application/json", "inline"),
        ("train.log", "text/plain; charset=utf-8", "inline"),
        (HTML_NAME, "text/plain; charset=utf-8",
         "inline; filename=\"_img_src_x_onerror_alert_1_.txt\"; filename*=UTF-8''%3Cimg%20src%3Dx%20onerror%3D"),
        (".hidden", "application/octet-stream", 'attachment; filename="hidden"'),
        ('"\r\n', "application/octet-stream", "attachment; filename=\"_\"; filename*=UTF-8''%22%0D%0A"),
    ],
)
def test_media_types_and_dispositions(name: str, content_type: str, disposition: str) -> None:
    assert media_type(name) == content_type
    assert content_disposition(name, content_type).startswith(disposition)


def test_artifacts_tab_lists_files_images_and_cached_steps(files: Experiment) -> None:
    cache = TrialCache(files.backend, min_interval=0)
    cache.refresh()
    session = Dashboard(Document(), cache, "test store")
    show(session, "Artifacts")
    assert "Files kept by trial 2, the latest" in session.artifacts.caption.text
    assert "Cached: prepare (trial 1)" in session.artifacts.artifacts.text  # the default: the latest trial
    page = session.history.source.data["trial"]
    session.history.source.selected.indices = [page.index(1)]
    html = session.artifacts.artifacts.text
    assert "Files kept by the selected trials: 1" in session.artifacts.caption.text
    assert "Trial 1 · 5 files ·" in html and "Cached:" not in html
    png, svg = kept(files, 1, "plots/square.png"), kept(files, 1, "plots/figure.svg")
    for label in ("plots/square.png", "plots/figure.svg", f"plots/data/{HTML_NAME}", "weights/model.bin", "output"):
        record = kept(files, 1, label)
        assert f'<a href="artifact/1/{record.digest}" download' in html
    assert "<td>weights</td><td>model.bin</td>" in html and ">2.0 KiB<" in html and 'title="2048 bytes"' in html
    assert "<td>output</td><td></td>" in html and "<td>prepare</td>" in html and "<td>–</td>" in html
    assert html.count("<img ") == 2  # the PNG and the SVG
    assert f'<img src="artifact/1/{png.digest}" alt="plots/square.png">' in html
    assert f'<img src="artifact/1/{svg.digest}"' in html
    assert HTML_NAME not in html and f"<td>data/{escape(HTML_NAME)}</td>" in html
    session.history.source.selected.indices = [page.index(1), page.index(2)]
    html = session.artifacts.artifacts.text
    assert "Trial 1 · 5 files" in html and "Trial 2 · 4 files" in html  # trial 2 printed nothing
    assert html.count("Cached: prepare (trial 1)") == 1
    assert f'<a href="artifact/2/{png.digest}" download' in html  # the cached step's files are trial 2's too


def test_cached_steps_have_a_history_column(files: Experiment) -> None:
    cache = TrialCache(files.backend, min_interval=0)
    cache.refresh()
    session = Dashboard(Document(), cache, "test store")
    titles = [c.title for c in session.history.table.columns]
    assert titles[titles.index("Description") + 1] == "Cached"
    column = session.history.table.columns[titles.index("Cached")].field
    assert dict(zip(session.history.source.data["trial"], session.history.source.data[column])) == {
        2: "prepare (trial 1)", 1: ""}


def test_artifacts_tab_without_files_or_trials(tmp_path: Path, store: LocalBackend, cache: TrialCache) -> None:
    session = Dashboard(Document(), cache, "test store")
    show(session, "Artifacts")
    html = session.artifacts.artifacts.text
    assert "Trial 6 · 0 files · 0 B" in html and "kept no files" in html
    write_trials(store, [record(t, Blob.of(b"")) for t in range(7, 13)])
    session.refresh()
    session.select(list(range(1, 13)))
    assert "(the first 10 of 12 selected)" in session.artifacts.caption.text
    assert "Trial 10 · " in session.artifacts.artifacts.text and "Trial 11 · " not in session.artifacts.artifacts.text
    empty = Dashboard(Document(), TrialCache(LocalBackend(tmp_path / "none", "none"), min_interval=0), "none")
    show(empty, "Artifacts")
    assert "No trial yet" in empty.artifacts.caption.text and empty.artifacts.artifacts.text == ""


def test_long_listings_are_cut(tmp_path: Path) -> None:
    records = [ArtifactRecord(1, "frames", f"{i:04}.png", f"{i:064x}", 10) for i in range(MAX_FILES + 5)]
    html = trial_files(record(1, Blob.of(b"")), records)
    assert html.count("<tr>") == MAX_FILES + 1 and "… and 5 more" in html
    assert html.count("<img ") == MAX_IMAGES and f"the first {MAX_IMAGES} of {MAX_FILES + 5} images" in html


def test_download_route_serves_only_the_files_a_trial_kept(files: Experiment, tmp_path: Path) -> None:
    board = start("files", tmp_path / "store", port=0)  # the artifacts: the local store's default folder
    try:
        png, svg, odd = (kept(files, 1, label) for label in ("plots/square.png", "plots/figure.svg",
                                                              f"plots/data/{HTML_NAME}"))
        status, headers, body = get(f"{board.url}artifact/1/{png.digest}")
        assert status == 200 and body == files.get_artifact("plots", 1).joinpath("square.png").read_bytes()
        assert body.startswith(b"\x89PNG") and headers["Content-Length"] == str(len(body))
        assert headers["Content-Type"] == "image/png"
        assert headers["Content-Disposition"].startswith('inline; filename="square.png"')
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Content-Security-Policy"] == "sandbox"
        status, headers, body = get(f"{board.url}artifact/2/{svg.digest}")  # listed for trial 2 too (cached)
        assert (status, body.decode()) == (200, SVG)
        assert headers["Content-Type"] == "image/svg+xml"
        assert headers["Content-Disposition"].startswith("attachment;")
        assert headers["Content-Security-Policy"] == "sandbox"
        status, headers, body = get(f"{board.url}artifact/1/{odd.digest}")
        assert (status, body) == (200, b"<b>x</b>") and headers["Content-Type"] == "text/plain; charset=utf-8"
        assert "<" not in headers["Content-Disposition"]
        status, headers, body = get(f"{board.url}artifact/1/{kept(files, 1, 'weights/model.bin').digest}")
        assert (status, body, headers["Content-Type"]) == (200, WEIGHTS, "application/octet-stream")
        assert headers["Content-Disposition"].startswith('attachment; filename="model.bin"')
        status, headers, body = get(f"{board.url}artifact/1/{kept(files, 1, 'output').digest}")
        assert status == 200 and b"prepared 8" in body
        assert headers["Content-Disposition"].startswith('inline; filename="output.txt"')

        stored_elsewhere = files.artifacts.put_bytes(b"not a file of any trial")
        output = kept(files, 1, "output").digest
        for path in (f"1/{stored_elsewhere}", f"2/{output}", f"99/{png.digest}", f"0/{png.digest}",
                     f"-1/{png.digest}", f"x/{png.digest}", f"1/{png.digest.upper()}", f"1/{png.digest[:-1]}",
                     "1/..%2F..%2Ffiles.sqlite3", f"1/{png.digest}/x", f"01/{png.digest}"):
            status, headers, body = get(f"{board.url}artifact/{path}")
            assert status == 404, path
            assert headers["X-Content-Type-Options"] == "nosniff" and headers["Content-Security-Policy"] == "sandbox"
            assert b"not a file" not in body and not body.startswith(b"\x89PNG")
    finally:
        board.stop()


def test_artifacts_kept_elsewhere(make_experiment: Callable[..., Experiment], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    ex = make_experiment("elsewhere", artifacts=str(tmp_path / "kept"))
    digest = kept_note(ex, "hello")
    board = start("elsewhere", tmp_path / "store", port=0)  # looks in the store's folder: the object is not there
    try:
        status, _, body = get(f"{board.url}artifact/1/{digest}")
        assert status == 502 and b"is missing from" in body
    finally:
        board.stop()
    board = start("elsewhere", tmp_path / "store", port=0, artifacts=str(tmp_path / "kept"))
    try:
        assert get(f"{board.url}artifact/1/{digest}")[2] == b"hello"
    finally:
        board.stop()
    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)
    board = ex.start_dashboard(port=0)  # the experiment's own artifact store
    try:
        assert get(f"{board.url}artifact/1/{digest}")[2] == b"hello"
    finally:
        board.stop()


def test_cli_board_takes_the_artifact_location(make_experiment: Callable[..., Experiment], tmp_path: Path,
                                               child_env: dict[str, str]) -> None:
    ex = make_experiment("cli_files", artifacts=str(tmp_path / "kept"))
    digest = kept_note(ex, "from the cli")
    ex.backend.close()
    process = subprocess.Popen(
        [sys.executable, "-m", "daskperiment.cli", "board", "cli_files", "--backend", str(tmp_path / "store"),
         "--artifacts", str(tmp_path / "kept"), "--port", "0"],
        cwd=tmp_path, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("dashboard of 'cli_files' at http://127.0.0.1:"), process.stderr.read()
        url = line.split(" at ")[1].split()[0]
        assert get(f"{url}artifact/1/{digest}")[2] == b"from the cli"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)
    assert process.returncode == 0


def test_download_from_an_s3_location(make_experiment: Callable[..., Experiment], s3_server: S3Server,
                                      tmp_path: Path) -> None:
    artifacts = ArtifactStore(s3_server.url("board"), s3_server.storage_options, tmp_path / "downloads")
    ex = make_experiment("on_s3", artifacts=artifacts)
    digest = kept_note(ex, "from the bucket")
    board = start("on_s3", ex.backend, port=0, artifacts=artifacts)
    try:
        assert get(f"{board.url}artifact/1/{digest}")[:3:2] == (200, b"from the bucket")
        assert (tmp_path / "downloads" / digest).read_bytes() == b"from the bucket"  # downloaded once, kept
    finally:
        board.stop()


def test_a_file_of_several_chunks_arrives_whole(make_experiment: Callable[..., Experiment], tmp_path: Path) -> None:
    text = "".join(f"line {i}\n" for i in range(200_000))  # about 1.5 MB: several chunks
    digest = kept_note(make_experiment("big_file"), text)
    board = start("big_file", tmp_path / "store", port=0)
    try:
        status, headers, body = get(f"{board.url}artifact/1/{digest}")
        assert (status, body.decode(), headers["Content-Length"]) == (200, text, str(len(text)))
    finally:
        board.stop()


def test_the_sweep_column_comes_after_the_outcome_not_among_the_parameters(make_experiment) -> None:
    ex = make_experiment()
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex.result
    def add(a, b):
        return a + b

    ex.sweep(add(a, b), grid={"a": [1, 2], "b": [3]}, name="s-1")
    cache = TrialCache(ex.backend, min_interval=0)
    cache.refresh()
    titles = [c.title for c in Dashboard(Document(), cache, "test store").history.table.columns]
    assert titles.index("a") < titles.index("b") < titles.index("Result") < titles.index("Sweep")
    assert titles[titles.index("Description") + 1] == "Sweep"
