"""What the workloads of ours alone (6-10) share: schedulers, fresh experiments, timing.

The trial-engine workloads (6-8) measure this repository's trial engine
(``ex.run``, ``ex.submit``, ``ex.sweep``) against plain dask on the same
scheduler in the same process, so they run for ``ours`` on the local store
only; the step cache and artifacts workloads (9-10) also use these helpers.
Each measurement gets an experiment of its own (a new id, hence a new store
folder below the job's fresh working directory, or new keys on a server).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from benchmarks.adapters import Adapter, Unavailable, load_adapter

CLUSTER_WORKERS = 2
"""Worker processes of the ``LocalCluster`` (one thread each)."""

B = 2
"""The value of parameter ``b`` in the trials of workload 1's graph (``a`` varies)."""

_ids = itertools.count(1)


@dataclass(frozen=True)
class Scheduler:
    """Where the trials of a measurement run.

    Attributes
    ----------
    name : str
        ``threads`` (dask's default local scheduler) or ``cluster``.
    workers : int
        How many tasks it runs at once.
    client : distributed.Client or None
        The cluster's client (also the default scheduler while it is open).
    """

    name: str
    workers: int
    client: Any = None


@contextmanager
def threads() -> Iterator[Scheduler]:
    """dask's threaded scheduler with its default pool (one thread per core)."""
    from dask.system import CPU_COUNT

    yield Scheduler("threads", CPU_COUNT)


@contextmanager
def local_cluster(workers: int = CLUSTER_WORKERS) -> Iterator[Scheduler]:
    """A ``LocalCluster`` of ``workers`` single-threaded processes, its client the default scheduler."""
    import distributed

    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        yield Scheduler("cluster", workers, client)


SCHEDULERS: dict[str, Callable[[], Any]] = {"threads": threads, "cluster": local_cluster}
"""Scheduler name -> context manager yielding a :class:`Scheduler` (threads first:
``distributed`` is imported only once the cluster starts)."""


def require_ours(adapter: Adapter) -> None:
    """These workloads drive this repository's API: any other system is unavailable."""
    if adapter.name != "ours":
        raise Unavailable(f"{adapter.name} has no ex.run / ex.submit / ex.sweep")


def unique_id(tag: str) -> str:
    """A new experiment id (a new store) for one measurement."""
    return f"bench_{tag}_{next(_ids)}"


def fresh_adapter(system: str, tag: str) -> Any:
    """An adapter of ``system`` (workload 1's 2-step graph) opened on a store of its own.

    Ours gets ``b`` = :data:`B` with ``set_parameters``: its trials give ``a``.
    """
    adapter = load_adapter(system)
    adapter.open("local", None, unique_id(tag))
    if system == "ours":
        adapter.ex.set_parameters(b=B)
    return adapter


def new_experiment(tag: str, backend: str = "local", uri: str | None = None, artifacts: Any = None) -> Any:
    """A ``daskperiment.Experiment`` on a store of its own (``backend``: local, or the server at ``uri``),
    logging warnings only; ``artifacts`` as for ``Experiment``.

    Raises
    ------
    Unavailable
        When the server store cannot be opened (a missing driver, an unknown URI kind).
    """
    import daskperiment

    try:
        ex = daskperiment.Experiment(unique_id(tag), backend="local" if backend == "local" else uri,
                                     artifacts=artifacts)
    except Exception as exc:
        if backend == "local":
            raise
        raise Unavailable(f"backend not available: {type(exc).__name__}: {exc}") from exc
    logging.getLogger("daskperiment").setLevel(logging.WARNING)
    return ex


def timed(action: Callable[[], Any]) -> float:
    """Seconds ``action()`` takes."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def timed_sweep(ex: Any, result: Any, grid: dict[str, list[int]]) -> tuple[float, Any]:
    """Seconds of ``ex.sweep(result, grid=grid)`` and its rows; every trial of the grid must succeed."""
    frames = []
    seconds = timed(lambda: frames.append(ex.sweep(result, grid=grid)))
    frame = frames[0]
    expected = len(grid["a"]) * len(grid["b"])
    if len(frame) != expected or not frame["Success"].all():
        raise RuntimeError(f"sweep recorded {int(frame['Success'].sum())} successful trials of {expected}")
    return seconds, frame
