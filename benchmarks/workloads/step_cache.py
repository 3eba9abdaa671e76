"""Workload 9: a sweep whose steps are all cached, run cold then again; the cost of a cache hit.

The graph is ``score(features(load(a), b))``, every step ``@ex(cache=True)``
(``score`` is the ``@ex.result(cache=True)``); each step sleeps
``cache_work_seconds`` (it stands for real work that releases the GIL, as
numpy or I/O does) and passes on a list of 1,000 floats. On dask's threaded
scheduler (2 threads), on the store under test (local, Redis, Mongo):

- **sweep**: each round opens a new experiment (a new, empty store) and runs
  ``ex.sweep(result, grid=...)`` of the ``cache_grid`` grid once (cold: every
  step computed; ``load`` once per ``a``), then ``cache_reruns`` times again
  (every step of every trial loaded from the cache, which is checked in the
  history's ``Cached`` column). Reported: the cold run, the re-runs (median)
  and cold / re-run. Baselines in the same round: the same sweep with the steps
  neither cached nor working (the engine's own cost of the sweep), and the
  ideal cold run = step calls × work / threads.
- **cache hit**: ``cache_hit_trials`` single trials ``ex.run(result, a=…, b=…)``
  of points the sweep cached (all 3 steps hits), interleaved one by one with
  the same trials of the baseline graph (3 steps, not cached, no work) on a
  store of the same kind. **Cost of a hit per step** = (median cached trial −
  median baseline trial) / 3: what loading a step from the cache costs beyond
  running a step that does nothing. Also reported: median cached trial / 3
  (everything a cached trial costs, engine included, per step).

Targets (judged in :mod:`benchmarks.report_features`, local store): cold /
re-run ≥ 50×, cost of a hit ≤ 2 ms per step.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from collections.abc import Callable
from typing import Any

from benchmarks.adapters import Adapter
from benchmarks.config import Sizes
from benchmarks.workloads import median
from benchmarks.workloads.engine import new_experiment, require_ours, threads, timed, timed_sweep

STEPS = 3
"""Steps of the graph (every one cached)."""

_CACHED_FROM = re.compile(r"\(trial (\d+)\)")


def functions(work: float) -> tuple[Callable, Callable, Callable]:
    """``load(a)``, ``features(x, b)`` and ``score(f)``, each sleeping ``work`` seconds."""

    def load(a: int) -> list[float]:
        if work:
            time.sleep(work)
        return [float(a + i) for i in range(1000)]

    def features(x: list[float], b: int) -> list[float]:
        if work:
            time.sleep(work)
        return [v * b for v in x]

    def score(f: list[float]) -> float:
        if work:
            time.sleep(work)
        return sum(f) / len(f)

    return load, features, score


def build(backend: str, uri: str | None, work: float, cached: bool) -> tuple[Any, Any]:
    """A new experiment with the 3-step graph; its steps cached (or not); returns it and the result."""
    ex = new_experiment("cache" if cached else "nocache", backend, uri)
    a, b = ex.parameter("a"), ex.parameter("b")
    load, features, score = functions(work)
    step = ex(cache=cached)
    return ex, ex.result(cache=cached)(score)(step(features)(step(load)(a), b))


def checked_sweep(ex: Any, result: Any, grid: dict[str, list[int]], cached_up_to: int | None) -> float:
    """Seconds of one sweep; every trial must succeed and, if ``cached_up_to`` is given,
    have loaded all its steps from trials up to that id."""
    seconds, frame = timed_sweep(ex, result, grid)
    if cached_up_to is not None:
        for text in frame["Cached"]:
            sources = [int(t) for t in _CACHED_FROM.findall(str(text))]
            if len(sources) != STEPS or max(sources) > cached_up_to:
                raise RuntimeError(f"a re-run trial did not load its {STEPS} steps from the cold run: {text!r}")
    return seconds


def sweep_round(backend: str, uri: str | None, sizes: Sizes, grid: dict[str, list[int]]) -> dict[str, Any]:
    """One round: the engine's floor sweep, a cold sweep and its re-runs, each on a new store."""
    floor_ex, floor_result = build(backend, uri, 0.0, cached=False)
    floor = checked_sweep(floor_ex, floor_result, grid, None)
    ex, result = build(backend, uri, sizes.cache_work_seconds, cached=True)
    cold = checked_sweep(ex, result, grid, None)
    cold_trials = ex.trial_id
    reruns = [checked_sweep(ex, result, grid, cold_trials) for _ in range(sizes.cache_reruns)]
    return {"cold": cold, "reruns": reruns, "floor": floor, "experiment": (ex, result)}


def hit_cost(cached: tuple[Any, Any], backend: str, uri: str | None, sizes: Sizes,
             grid: dict[str, list[int]]) -> dict[str, Any]:
    """Single trials of cached points interleaved with the uncached, no-work baseline graph."""
    ex, result = cached
    base_ex, base_result = build(backend, uri, 0.0, cached=False)
    points = [(a, b) for b in grid["b"] for a in grid["a"]]
    first = ex.trial_id + 1
    hits, base = [], []
    for i in range(sizes.cache_hit_trials):
        a, b = points[i % len(points)]
        hits.append(timed(lambda: ex.run(result, a=a, b=b)))
        base.append(timed(lambda: base_ex.run(base_result, a=a, b=b)))
    history = ex.get_history().loc[first:]
    missed = [t for t, text in history["Cached"].items() if len(_CACHED_FROM.findall(str(text))) != STEPS]
    if missed:
        raise RuntimeError(f"single trials {missed[:5]} did not load all {STEPS} steps from the cache")
    hit_ms, base_ms = median(hits) * 1e3, median(base) * 1e3
    return {
        "trials": sizes.cache_hit_trials,
        "cached_trial_ms": hit_ms,
        "baseline_trial_ms": base_ms,
        "hit_ms_per_step": (hit_ms - base_ms) / STEPS,
        "cached_trial_ms_per_step": hit_ms / STEPS,
    }


def run(adapter: Adapter, backend: str, uri: str | None, sizes: Sizes) -> dict[str, Any]:
    """Measure the sweep rounds and the hit cost on the store ``backend``; return the figures."""
    require_ours(adapter)
    n_a, n_b = sizes.cache_grid
    grid = {"a": list(range(n_a)), "b": list(range(n_b))}
    work = sizes.cache_work_seconds
    with threads() as scheduler:
        warm = sweep_round(backend, uri, replace(sizes, cache_work_seconds=0.0, cache_reruns=1),
                           {"a": [0, 1], "b": [0, 1]})  # imports, first store connections
        hit_cost(warm["experiment"], backend, uri, replace(sizes, cache_hit_trials=4), {"a": [0, 1], "b": [0, 1]})
        rounds = [sweep_round(backend, uri, sizes, grid) for _ in range(sizes.cache_rounds)]
        hits = hit_cost(rounds[-1]["experiment"], backend, uri, sizes, grid)
    calls = n_a + 2 * n_a * n_b  # load once per a; features and score once per trial
    cold = median(r["cold"] for r in rounds)
    rerun = median(t for r in rounds for t in r["reruns"])
    return {
        "grid": [n_a, n_b],
        "work_seconds": work,
        "threads": scheduler.workers,
        "rounds": len(rounds),
        "cold_seconds": cold,
        "cold_all_seconds": [r["cold"] for r in rounds],
        "rerun_seconds": rerun,
        "rerun_all_seconds": [t for r in rounds for t in r["reruns"]],
        "speedup": cold / rerun,
        "round_speedups": [r["cold"] / median(r["reruns"]) for r in rounds],
        "floor_sweep_seconds": median(r["floor"] for r in rounds),
        "floor_all_seconds": [r["floor"] for r in rounds],
        "ideal_cold_seconds": calls * work / scheduler.workers,
        "hit": hits,
    }
