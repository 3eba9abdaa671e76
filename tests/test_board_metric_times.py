"""The Metrics tab by time: points drawn at the seconds from their trial's start to when they were saved."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from bokeh.document import Document
from test_board import RecordingBackend, record, show, write_trials
from test_board_browser import (
    browser,  # noqa: F401 - the module's headless Chromium
    board_in_new_tab,
    open_tab,
    wait_for,
    wait_for_text,
)
from test_board_sweep import CLICK_LABEL, column_of, tick

from daskperiment import Experiment
from daskperiment.board.app import Dashboard
from daskperiment.board.curves import MAX_CURVES
from daskperiment.board.store import TrialCache
from daskperiment.records import Blob, MetricPoint, TrialStart

TRIALS = 30
OLD = {4, 13, 22}  # their points were stored without time (by an older daskperiment)
LATE_END = {7, 16, 25}  # their end minus their process time falls after their first point
RUNNING = 30


def offsets(trial_id: int) -> list[float]:
    """Seconds from trial ``trial_id``'s start to each of its points (epochs 0, 1, ...)."""
    return [0.25 * trial_id + 0.5 * epoch + 0.125 * (epoch % 3) for epoch in range(3 + trial_id % 5)]


def started(trial_id: int) -> float:
    return 1_700_000_000.0 + 1000.0 * trial_id


def by_trial(page: Dashboard) -> dict[int, tuple[list[float], list[float]]]:
    data = page.metrics.sources[0][0].data
    return {t: (xs, ys) for t, xs, ys in zip(data["trial"], data["xs"], data["ys"])}


def test_metrics_by_time_use_the_recorded_times(tmp_path: Path) -> None:
    backend = RecordingBackend(tmp_path / "timed", "timed")
    code = Blob.of(b"")
    records = [record(t, code, result=float(t), lr=t / 100) for t in range(1, RUNNING)]
    write_trials(backend, records, [code])
    points = []
    for trial in records:
        t = trial.trial_id
        start = trial.finished - trial.process_time
        if t in LATE_END:
            start -= 0.5 + offsets(t)[0]  # its points came before what its record says
        for epoch, offset in enumerate(offsets(t)):
            points.append(MetricPoint(t, "loss", epoch, t + 1 / (epoch + 1), None if t in OLD else start + offset))
    assert backend.start_trials([TrialStart({"lr": 0.3}, 3, started(RUNNING), time.time(), 3600.0, "host:1")]) == range(
        RUNNING, RUNNING + 1)
    points += [MetricPoint(RUNNING, "loss", e, 1 / (e + 1), started(RUNNING) + x) for e, x in enumerate(offsets(RUNNING))]
    backend.write_metrics(points)
    cache = TrialCache(backend, min_interval=0)
    page = Dashboard(Document(), cache, "test store")
    show(page, "Metrics")
    process_time = {trial.trial_id: trial.process_time for trial in records}
    for first in range(1, TRIALS + 1, MAX_CURVES):
        chosen = list(range(first, first + MAX_CURVES))
        page.select(chosen)
        page.metrics.x_axis.active = 0
        for t, (xs, ys) in by_trial(page).items():
            assert xs == list(range(len(offsets(t)))) and len(ys) == len(xs)
        page.metrics.x_axis.active = 1  # by time
        drawn = by_trial(page)
        assert sorted(drawn) == chosen
        for t, (xs, ys) in drawn.items():
            expected = offsets(t)
            if t in OLD:  # epochs spread evenly over its process time
                expected = [process_time[t] * (e + 1) / len(expected) for e in range(len(expected))]
            elif t in LATE_END:  # drawn from its first point
                expected = [x - expected[0] for x in expected]
            assert xs == pytest.approx(expected, abs=1e-6), t
            assert ys == pytest.approx([(0 if t == RUNNING else t) + 1 / (e + 1) for e in range(len(xs))])
        points_data = page.metrics.sources[0][1].data
        for t, (xs, _) in drawn.items():  # the dots too, with their epochs for the hover
            mine = [i for i, trial in enumerate(points_data["trial"]) if trial == t]
            assert [points_data["x"][i] for i in mine] == xs
            assert [points_data["epoch"][i] for i in mine] == list(range(len(xs)))
        caption = page.metrics.caption.text
        old = sorted(OLD & set(chosen))
        assert ("by an older daskperiment" in caption) == bool(old)
        if old:
            assert "the process time: " + ", ".join(map(str, old)) in caption
        assert page.metrics.plots[0].xaxis.axis_label == "seconds since the trial's start"
    assert f"live: trial {RUNNING} running" in page.metrics.caption.text


SLEEPS = (0.02, 0.05, 0.08)  # seconds between two points of a trial


def test_curves_by_time_in_the_browser_sit_at_the_recorded_times(make_experiment: Any, tmp_path: Path,
                                                                  browser: Any) -> None:  # noqa: F811
    store = tmp_path / "sleepy"
    ex: Experiment = make_experiment("sleepy", backend=store)
    n = ex.parameter("n")

    @ex.result
    def train(n: int) -> int:
        for epoch in range(5):
            if epoch:
                time.sleep(SLEEPS[(n + epoch) % len(SLEEPS)])
            ex.save_metric("loss", epoch, n / (epoch + 1))
        return n

    trials = list(range(1, MAX_CURVES + 1))
    for value in trials:
        ex.run(train(n), n=value, scheduler="sync")
    recorded = ex.load_metric_points("loss", trials)
    starts = {t.trial_id: t.finished - t.process_time for t in ex.backend.load_trials(trials)}
    ex.backend.close()
    for driver in board_in_new_tab(browser, "sleepy", store, str(trials[-1])):
        for t in trials:
            tick(driver, t)
        wait_for_text(driver, "Selected trials: " + ", ".join(map(str, trials)))
        open_tab(driver, "Metrics")
        wait_for(lambda: sorted(column_of(driver, "metric_lines_source", "trial") or []) == trials, "every curve")
        driver.execute_script(CLICK_LABEL, "by time (s)")

        def drawn() -> dict[int, list[float]]:
            return dict(zip(column_of(driver, "metric_lines_source", "trial") or [],
                            column_of(driver, "metric_lines_source", "xs") or []))

        wait_for(lambda: all(len(xs) == 5 and xs != list(range(5)) for xs in drawn().values()), "curves by time")
        curves = drawn()
        for t in trials:
            times = recorded[recorded["Trial ID"] == t]["Time"].map(lambda when: when.timestamp()).tolist()
            origin = min(starts[t], times[0])
            assert curves[t] == pytest.approx([when - origin for when in times], abs=1e-6), t
            gaps = [b - a for a, b in zip(curves[t], curves[t][1:])]
            assert all(gap >= SLEEPS[(t + e) % len(SLEEPS)] - 1e-3 for e, gap in enumerate(gaps, 1)), (t, gaps)
        open_tab(driver, "Trials")
