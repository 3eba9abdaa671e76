"""The workloads; each ``run(adapter, job)`` runs in a worker process and returns JSON-able figures."""

from __future__ import annotations

import statistics
from collections.abc import Iterable

ENGINE_WORKLOADS = ("sweep_sharing", "many_trials", "cluster_overhead")
"""Workloads of the trial engine (ours against plain dask on the same scheduler; local store only)."""
FEATURE_WORKLOADS = ("step_cache", "artifacts")
"""Workloads of the step cache (every store) and of artifacts (local store; a local folder and an S3 server)."""
WORKLOADS = ("trial_overhead", "metric_logging", "history", "command_line", "concurrency", *ENGINE_WORKLOADS,
             *FEATURE_WORKLOADS,
             "physical_floor")
"""Workload names, in the order the runner measures them (``history`` rides on ``trial_overhead``)."""


def median(values: Iterable[float]) -> float | None:
    """Median of ``values``, None when empty."""
    values = list(values)
    return statistics.median(values) if values else None
