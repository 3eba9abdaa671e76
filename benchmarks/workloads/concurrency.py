"""Workload 5: 4 processes writing one experiment at once; trials per second overall.

The runner starts ``concurrency_processes`` workers. Each opens the experiment,
runs one warm-up trial, signals it is ready, waits for the common start signal, then runs
``concurrency_trials`` trials (stopping at ``concurrency_budget_seconds``).
Throughput = all trials / (last end - first start). A final process counts the
trials the store holds, so lost writes show.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from benchmarks.adapters.base import Adapter
from benchmarks.config import Sizes


def run(adapter: Adapter, backend: str, uri: str | None, sizes: Sizes, rendezvous: str,
        worker: int) -> dict[str, Any]:
    """One writer: open, meet the others, run the trials; return its start and end times."""
    adapter.open(backend, uri, f"bench_concurrent_{adapter.name}")
    adapter.trial(worker, 1)  # warm up (lazy imports, first write) before the clock starts
    folder = Path(rendezvous)
    (folder / f"ready-{worker}").touch()
    deadline = time.time() + 120
    while not (folder / "go").exists():
        if time.time() > deadline:
            raise TimeoutError("no start signal")
        time.sleep(0.005)
    started = time.time()
    done = 0
    for n in range(sizes.concurrency_trials):
        adapter.trial(worker * 100_000 + n, os.getpid() % 7)
        done += 1
        if time.time() - started > sizes.concurrency_budget_seconds:
            break
    return {"trials": done, "start": started, "end": time.time()}


def count(adapter: Adapter, backend: str, uri: str | None) -> dict[str, Any]:
    """Trials the store holds after the writers finished (warm-up trials included)."""
    adapter.open(backend, uri, f"bench_concurrent_{adapter.name}")
    return {"rows": adapter.history()}
