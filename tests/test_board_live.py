"""A trial still running, in the browser: its row, its badge and its curve growing as it streams points."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from test_board_browser import (
    browser,  # noqa: F401 - the module's headless Chromium
    board_in_new_tab,
    open_tab,
    page_text,
    wait_for,
    wait_for_text,
)
from test_board_notes import TABLE_CELL
from test_board_sweep import column_of, tick
from test_live_trials import store  # noqa: F401 - a new store of each kind (fast heartbeats: conftest)

from daskperiment import Experiment

pytestmark = pytest.mark.usefixtures("fast")

POINTS_PER_PART = 6
PARTS = 3
FINISHED = (1, 2, 3)


def loss(epoch: int, n: int) -> float:
    """Point ``epoch`` of the loss of a trial of parameter ``n``."""
    return round(n / (epoch + 1), 6)


def curve(driver: Any) -> list[float] | None:
    """The points of the first curve the Metrics tab draws."""
    ys = column_of(driver, "metric_lines_source", "ys")
    return [round(y, 6) for y in ys[0]] if ys else None


def test_a_running_trial_streams_its_curve_live(store: Any, make_experiment: Any, browser: Any) -> None:  # noqa: F811
    ex: Experiment = make_experiment("live_board", backend=store)
    n = ex.parameter("n")
    gates = [threading.Event() for _ in range(PARTS)]

    @ex.result
    def train(n: int) -> float:
        for part, gate in enumerate(gates):
            for epoch in range(part * POINTS_PER_PART, (part + 1) * POINTS_PER_PART):
                ex.save_metric("loss", epoch, loss(epoch, n))
            if n == 4:  # the trial the test watches waits at the end of each part
                assert gate.wait(120)
        return float(n)

    for value in FINISHED:
        ex.run(train(n), n=value, scheduler="sync")
    ex.set_parameters(n=4)
    future = ex.submit(train(n), scheduler="sync")
    running = future.trial_id
    try:
        for driver in board_in_new_tab(browser, "live_board", store, str(running)):
            assert driver.execute_script(TABLE_CELL, "Status", running) == "running"
            assert [driver.execute_script(TABLE_CELL, "Status", t) for t in FINISHED] == ["finished"] * 3
            wait_for_text(driver, "1 running")
            tick(driver, running)
            open_tab(driver, "Metrics")
            expected = [loss(e, 4) for e in range(PARTS * POINTS_PER_PART)]
            for part, gate in enumerate(gates):
                seen = expected[:(part + 1) * POINTS_PER_PART]
                wait_for(lambda: curve(driver) == seen, f"the curve of the first {len(seen)} points")
                assert f"live: trial {running} running" in page_text(driver)
                gate.set()  # the trial saves its next points (the last time, it ends)
            assert future.result(120) == 4.0
            open_tab(driver, "Trials")
            wait_for(lambda: driver.execute_script(TABLE_CELL, "Status", running) == "finished", "the trial finished")
            wait_for(lambda: driver.execute_script(TABLE_CELL, "Result", running) == "4", "its result")
            assert "1 running" not in page_text(driver)
            open_tab(driver, "Metrics")
            wait_for(lambda: curve(driver) == expected, "the whole curve")
    finally:
        for gate in gates:
            gate.set()
