"""Workload 8: per-trial overhead on a LocalCluster against plain dask on the same cluster.

On a 2-process ``LocalCluster``, ``cluster_trials`` trials of workload 1's
2-step graph run one by one with ``ex.run(result, a=i)``, interleaved trial by
trial with the same graph as plain ``dask.delayed`` computed by
``client.compute(graph).result()`` (same load on both). Reported: median and
mean ms per trial of each, and the ratio of the medians. A few trials of each
run first as a warm-up (code shipped to the workers).
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.adapters import Adapter
from benchmarks.config import Sizes
from benchmarks.workloads import median
from benchmarks.workloads.engine import B, fresh_adapter, local_cluster, require_ours, timed

WARM_UP_TRIALS = 5


def run(adapter: Adapter, backend: str, uri: str | None, sizes: Sizes) -> dict[str, Any]:
    """Run the interleaved trials; return ms per trial of ours and of plain dask."""
    require_ours(adapter)
    ours, floor = fresh_adapter("ours", "cluster"), fresh_adapter("floor", "cluster")
    times: dict[str, list[float]] = {"ours": [], "plain": []}
    with local_cluster() as scheduler:
        client = scheduler.client
        for i in range(WARM_UP_TRIALS + sizes.cluster_trials):
            mine = timed(lambda: ours.ex.run(ours.result, a=i))
            plain = timed(lambda: client.compute(floor.graph(i, B)).result())
            if i >= WARM_UP_TRIALS:
                times["ours"].append(mine)
                times["plain"].append(plain)
    figures: dict[str, Any] = {"trials": sizes.cluster_trials, "workers": scheduler.workers}
    for name, values in times.items():
        figures[name] = {"median_ms": median(values) * 1e3, "mean_ms": statistics.fmean(values) * 1e3}
    figures["ratio"] = figures["ours"]["median_ms"] / figures["plain"]["median_ms"]
    return figures
