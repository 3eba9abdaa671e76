"""Workload 6: a sweep whose trials share work, against its ideal and a sequential loop.

The graph is ``result(combine(shared(a), b))``: ``shared`` sleeps
``sweep_sleep_seconds`` (it stands for real work and releases the GIL) and
depends on ``a`` only, so in a sweep of the ``a`` × ``b`` grid it runs once
per value of ``a``; ``combine`` and ``result`` are cheap. On each scheduler
(threads, then a 2-process ``LocalCluster``):

- **sweep**: wall time of ``ex.sweep(result, grid=...)`` (median of ``sweep_repeats``);
- **cheap sweep**: the same sweep of the same graph with ``shared`` not sleeping,
  interleaved with it: the engine's cost per trial in this run;
- **ideal** = values of ``a`` × sleep / workers + trials × the cheap sweep's cost per trial;
- **sequential**: ``set_parameters`` + ``.compute()`` for every point of the grid, once;
- **plain dask**: the same grid as ``dask.delayed`` calls of the same functions
  (``shared`` pure, so computed once per ``a``), one ``dask.compute``: the floor.

Targets (judged in :mod:`benchmarks.report_engine`): sweep / ideal ≤ 1.3, sequential / sweep ≥ 7.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dask
from dask import delayed

from benchmarks.adapters import Adapter
from benchmarks.config import Sizes
from benchmarks.workloads import median
from benchmarks.workloads.engine import SCHEDULERS, Scheduler, new_experiment, require_ours, timed, timed_sweep

def functions(sleep: float) -> tuple[Callable[[int], int], Callable[[int, int], int], Callable[[int], float]]:
    """The graph's three functions: ``shared(a)`` (sleeps ``sleep`` s), ``combine(x, b)``, ``result(y)``."""

    def shared(a: int) -> int:
        if sleep:
            time.sleep(sleep)
        return a * 2

    def combine(x: int, b: int) -> int:
        return x + b

    def result(y: int) -> float:
        return float(y)

    return shared, combine, result


def build(sleep: float) -> tuple[Any, Any]:
    """A new experiment with the sweep's graph; returns it and the graph's result."""
    ex = new_experiment("sweep")
    a, b = ex.parameter("a"), ex.parameter("b")
    shared, combine, result = functions(sleep)
    return ex, ex.result(result)(ex(combine)(ex(shared)(a), b))


def plain_seconds(sleep: float, grid: dict[str, list[int]]) -> float:
    """Wall time of the same grid as plain ``dask.delayed`` (one ``shared`` per ``a``), built and computed at once."""
    shared, combine, result = functions(sleep)

    def compute() -> None:
        firsts = {a: delayed(shared, pure=True)(a) for a in grid["a"]}
        dask.compute(*[delayed(result)(delayed(combine)(firsts[a], b)) for a in grid["a"] for b in grid["b"]])

    return timed(compute)


def sweep_seconds(sleep: float, grid: dict[str, list[int]]) -> float:
    """Wall time of one sweep of ``grid`` on a fresh store; every trial must succeed."""
    ex, result = build(sleep)
    return timed_sweep(ex, result, grid)[0]


def sequential_seconds(sleep: float, grid: dict[str, list[int]]) -> float:
    """Wall time of one ``set_parameters`` + ``.compute()`` per point of ``grid``, on a fresh store."""
    ex, result = build(sleep)

    def loop() -> None:
        for a in grid["a"]:
            for b in grid["b"]:
                ex.set_parameters(a=a, b=b)
                result.compute()

    return timed(loop)


def measure(scheduler: Scheduler, sizes: Sizes) -> dict[str, Any]:
    """The figures of one scheduler."""
    n_a, n_b = sizes.sweep_grid
    grid = {"a": list(range(n_a)), "b": list(range(n_b))}
    trials = n_a * n_b
    sleep = sizes.sweep_sleep_seconds
    sweep_seconds(0.0, {"a": [0, 1], "b": [0, 1]})  # warm-up: first-call imports, code shipped to workers
    sequential_seconds(0.0, {"a": [0], "b": [0]})
    plain_seconds(0.0, {"a": [0, 1], "b": [0, 1]})
    cheap, slow, plain = [], [], []
    for _ in range(sizes.sweep_repeats):
        cheap.append(sweep_seconds(0.0, grid))
        slow.append(sweep_seconds(sleep, grid))
        plain.append(plain_seconds(sleep, grid))
    sequential = sequential_seconds(sleep, grid)
    cheap_per_trial = median(cheap) / trials
    ideal = n_a * sleep / scheduler.workers + trials * cheap_per_trial
    sweep = median(slow)
    return {
        "workers": scheduler.workers,
        "trials": trials,
        "sweep_seconds": sweep,
        "sweep_all_seconds": slow,
        "cheap_sweep_seconds": median(cheap),
        "cheap_all_seconds": cheap,
        "cheap_ms_per_trial": cheap_per_trial * 1e3,
        "ideal_seconds": ideal,
        "ideal_ratio": sweep / ideal,
        "plain_seconds": median(plain),
        "plain_all_seconds": plain,
        "sequential_seconds": sequential,
        "speedup": sequential / sweep,
    }


def run(adapter: Adapter, backend: str, uri: str | None, sizes: Sizes) -> dict[str, Any]:
    """Measure on every scheduler; return the figures by scheduler name."""
    require_ours(adapter)
    figures: dict[str, Any] = {"grid": list(sizes.sweep_grid), "sleep_seconds": sizes.sweep_sleep_seconds}
    for name, open_scheduler in SCHEDULERS.items():
        with open_scheduler() as scheduler:
            figures[name] = measure(scheduler, sizes)
    return figures
