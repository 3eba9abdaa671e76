"""Workload 7: 1,000 trivial trials at once, tracked and with plain dask.

The graph is workload 1's ``score(prepare(a, b))`` (10 metrics), ``a`` = 0..n-1,
``b`` = 2. Trials per second of:

- ``submit_all``: ``futures = [ex.submit(result, a=i) ...]``, then every ``.result()``;
- ``run_each``: ``ex.run(result, a=i)`` one after the other;
- ``sweep``: ``ex.sweep(result, trials=[{"a": i} ...])``;
- ``plain_at_once``: the same graphs as ``dask.delayed`` (the floor's), ``dask.compute(*graphs)``;
- ``plain_each``: those graphs computed one by one.

Graph building is inside the timing for every mode. On the threaded scheduler
(``many_trials``, ``many_repeats`` interleaved rounds, median) and on a
2-process ``LocalCluster`` (``many_trials_cluster``, one round); each mode
gets a fresh store, and a small warm-up round runs first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask

from benchmarks.adapters import Adapter
from benchmarks.config import Sizes
from benchmarks.workloads import median
from benchmarks.workloads.engine import SCHEDULERS, B, fresh_adapter, require_ours, timed


def submit_all(ours: Any, n: int) -> None:
    """Submit every trial, then wait for each."""
    futures = [ours.ex.submit(ours.result, a=i) for i in range(n)]
    for future in futures:
        future.result()


def run_each(ours: Any, n: int) -> None:
    """One blocking ``ex.run`` per trial."""
    for i in range(n):
        ours.ex.run(ours.result, a=i)


def sweep(ours: Any, n: int) -> None:
    """One sweep of an explicit list of trials."""
    ours.ex.sweep(ours.result, trials=[{"a": i} for i in range(n)])


def plain_at_once(floor: Any, n: int) -> None:
    """Every plain graph in one ``dask.compute``."""
    dask.compute(*[floor.graph(i, B) for i in range(n)])


def plain_each(floor: Any, n: int) -> None:
    """One ``dask.compute`` per plain graph."""
    for i in range(n):
        dask.compute(floor.graph(i, B))


MODES: dict[str, tuple[str, Callable[[Any, int], None]]] = {
    "plain_at_once": ("floor", plain_at_once),
    "plain_each": ("floor", plain_each),
    "submit_all": ("ours", submit_all),
    "run_each": ("ours", run_each),
    "sweep": ("ours", sweep),
}
"""Mode name -> (system whose adapter it drives, the mode)."""


def one_round(n: int) -> dict[str, float]:
    """Seconds of every mode for ``n`` trials, each on a fresh store."""
    seconds = {}
    for mode, (system, action) in MODES.items():
        adapter = fresh_adapter(system, mode)
        seconds[mode] = timed(lambda: action(adapter, n))
    return seconds


def measure(n: int, repeats: int) -> dict[str, Any]:
    """Trials per second of every mode (median of ``repeats`` rounds) and their ratio to plain at once."""
    one_round(min(n, 10))  # warm-up: first-call imports, code shipped to workers
    rounds = [one_round(n) for _ in range(repeats)]
    modes = {}
    for mode in MODES:
        seconds = median(r[mode] for r in rounds)
        modes[mode] = {"seconds": seconds, "all_seconds": [r[mode] for r in rounds],
                       "trials_per_second": n / seconds}
    base = modes["plain_at_once"]["seconds"]
    for figures in modes.values():
        figures["time_vs_plain_at_once"] = figures["seconds"] / base
    return {"trials": n, "rounds": repeats, "modes": modes}


def run(adapter: Adapter, backend: str, uri: str | None, sizes: Sizes) -> dict[str, Any]:
    """Measure on every scheduler; return the figures by scheduler name."""
    require_ours(adapter)
    plan = {"threads": (sizes.many_trials, sizes.many_repeats), "cluster": (sizes.many_trials_cluster, 1)}
    figures: dict[str, Any] = {}
    for name, open_scheduler in SCHEDULERS.items():
        with open_scheduler():
            figures[name] = measure(*plan[name])
    return figures
