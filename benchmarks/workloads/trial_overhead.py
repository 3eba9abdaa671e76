"""Workloads 1 and 3: per-trial time along a growing history, then ``get_history``.

Trials of the 2-step graph (2 parameters, 10 metrics) run back to back in one
process; the per-trial time is the median over each window of trial numbers
(e.g. 1-100, 1,000-1,100, 10,000-10,100). A slow system stops at a time
budget (and the original at ``original_max_trials``): windows it did not reach
are reported as such. Ours always runs every trial on the local store; on a
server it stops at ``ours_server_budget_seconds`` and its history is then
brought to ``history_rows`` trials in bulk (see ``fill_history``). After the last trial, the history of every trial is
loaded once (the first call, which may import pandas, is reported apart) and
then ``history_repeats`` times (median).
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.adapters.base import Adapter, Unavailable
from benchmarks.config import Sizes
from benchmarks.workloads import median


def run(adapter: Adapter, backend: str, uri: str | None, sizes: Sizes) -> dict[str, Any]:
    """Run the trials and the history loads; return the figures."""
    adapter.open(backend, uri, f"bench_overhead_{adapter.name}")
    last = max(end for _, end in sizes.windows)
    limit = last
    if adapter.name == "floor" or (adapter.name == "ours" and backend == "local"):
        budget = float("inf")
    elif adapter.name == "ours":
        budget = sizes.ours_server_budget_seconds
    else:
        budget = sizes.trial_budget_seconds
    if adapter.name == "original":
        limit = min(limit, sizes.original_max_trials)
    times: list[float] = []
    started = time.perf_counter()
    stop_reason = None
    for n in range(1, limit + 1):
        t0 = time.perf_counter()
        adapter.trial(n, 2)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - started > budget and n < limit:
            stop_reason = f"time budget {budget:.0f} s reached at trial {n}"
            break
    else:
        if limit < last:
            stop_reason = f"capped at {limit} trials"
    total = time.perf_counter() - started
    windows = {}
    for first, end in sizes.windows:
        chunk = times[first - 1:end]
        complete = len(times) >= end
        windows[f"{first}-{end}"] = {
            "median_ms": None if not complete else median(chunk) * 1e3,
            "mean_ms": None if not complete else sum(chunk) / len(chunk) * 1e3,
        }
    blocks = [sum(times[i:i + 100]) / len(times[i:i + 100]) * 1e3 for i in range(0, len(times), 100)]
    result: dict[str, Any] = {
        "trials": len(times),
        "total_seconds": total,
        "mean_ms": total / len(times) * 1e3,
        "stopped": stop_reason,
        "windows": windows,
        "block_means_ms": blocks,
    }
    try:
        filled = 0
        if len(times) < sizes.history_rows and hasattr(adapter, "fill_history"):
            filled = adapter.fill_history(sizes.history_rows)
        t0 = time.perf_counter()
        adapter.history()  # the first call also pays lazy imports (pandas): reported apart
        first = time.perf_counter() - t0
        loads = []
        for _ in range(sizes.history_repeats):
            t0 = time.perf_counter()
            rows = adapter.history()
            loads.append(time.perf_counter() - t0)
        result["history"] = {"rows": rows, "median_seconds": median(loads), "all_seconds": loads,
                             "first_seconds": first, "filled": filled}
    except Unavailable as exc:
        result["history"] = {"unavailable": str(exc)}
    return result
