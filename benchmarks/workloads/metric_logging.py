"""Workload 2: 100,000 ``save_metric`` calls in one trial, read back, peak memory.

Each repeat is one trial whose single step calls ``save_metric("loss", i, x)``
``metric_calls`` times (a slower system stops after ``metric_budget_seconds``).
Reported: calls per second (time inside the calls only, median of repeats),
the whole trial's time (including the write), the time of ``load_metric`` of
the first repeat's points (median after a first call reported apart), and the process's peak RSS growth over
the first repeat.
"""

from __future__ import annotations

import resource
import time
from typing import Any

from benchmarks.adapters.base import Adapter, Unavailable
from benchmarks.config import Sizes
from benchmarks.workloads import median


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run(adapter: Adapter, backend: str, uri: str | None, sizes: Sizes) -> dict[str, Any]:
    """Run the metric trials and the read-backs; return the figures."""
    adapter.open(backend, uri, f"bench_metrics_{adapter.name}")
    adapter.trial(1, 2)  # warm up: the first trial also writes code/environment
    rss_before = _max_rss_mib()
    reports = [adapter.metric_trial(sizes.metric_calls, sizes.metric_budget_seconds)]
    rss_after = _max_rss_mib()
    for _ in range(sizes.metric_repeats - 1):
        reports.append(adapter.metric_trial(sizes.metric_calls, sizes.metric_budget_seconds))
    rates = [r["calls"] / r["call_seconds"] for r in reports if r["call_seconds"] > 0]
    result: dict[str, Any] = {
        "calls": reports[0]["calls"],
        "requested_calls": sizes.metric_calls,
        "calls_per_second": median(rates),
        "trial_seconds": median(r["trial_seconds"] for r in reports),
        "peak_rss_mib": rss_after,
        "rss_growth_mib": rss_after - rss_before,
    }
    try:
        t0 = time.perf_counter()
        adapter.load_metric("loss", reports[0]["trial_id"])  # first call: lazy imports
        first = time.perf_counter() - t0
        loads = []
        for _ in range(sizes.load_repeats):
            t0 = time.perf_counter()
            points = adapter.load_metric("loss", reports[0]["trial_id"])
            loads.append(time.perf_counter() - t0)
        result["load"] = {"points": points, "median_seconds": median(loads), "first_seconds": first}
    except Unavailable as exc:
        result["load"] = {"unavailable": str(exc)}
    return result
