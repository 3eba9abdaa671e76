"""Workload 11: a tracked trial against the physical floor, along a history of 100,000 trials.

The *physical floor* of a tracked trial is what any tracker must at least do:
the scheduler's own ``get`` on the prebuilt graph of workload 1 (2 steps, the
second appending 10 metrics to a list), then one SQLite transaction holding
the rows a trial stores — its trial row and its 10 metric rows — in a database
of the local store's layout (write-ahead log, ``synchronous=NORMAL``, the
metrics index). The *old floor* (plain ``dask.delayed`` rebuilt and computed
each time, workload 1's) is measured beside it.

Each window ``(first, last)`` of :attr:`Sizes.floor_windows` runs
``last - first + 1`` rounds once the history holds ``first - 1`` trials; a
round is, one after the other in this process: ours with the synchronous
scheduler (``result.compute(scheduler="sync")``), the floor and the live
floor with ``dask.local.get_sync``, ours with threads (``scheduler="threads"``),
the floor and the live floor with ``dask.threaded.get``, and the old floor. Ours records two trials per
round (both schedulers write one experiment), so a window of 100 rounds holds
trials ``first`` to ``first + 199``.

Between windows the history is brought to ``first - 1`` trials by bulk
writes, not by running trials (100,000 real trials would take minutes per
system): ours through its store's own ``allocate_trial_ids`` (the counter
moves as trials would move it) and ``write_batch``, 1,000 copies of its last
trial record (with 10 metric points each) per batch (100 on the MongoDB-wire
test server); the floor's database by
``executemany`` of as many rows. The store thus holds what real trials would
leave, code files included.

Reported per window: the medians, the ratios (ours ÷ floor, same scheduler),
the process's RSS at the end of the window (memory the bulk writes freed is
handed back to the system first) and its growth during the window, and each store's size on disk
per trial (blocks allocated, every inode counted once) with the size added
per trial since the previous window. On a server store (Redis, MongoDB)
ours is compared with the same SQLite floor, and the round trips of its
trials are counted (client side: each request the client library sends).
After the last window: ``get_history()`` of the whole history (first call
apart, then the median of ``history_repeats``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.adapters import Adapter
from benchmarks.adapters.base import N_METRICS
from benchmarks.config import Sizes
from benchmarks.workloads import median
from benchmarks.workloads.engine import B, fresh_adapter, require_ours, unique_id

FILL_BATCH = 1000
"""Trials per bulk write when the history is brought to the next window."""
FILL_BATCH_MONGO = 100
"""The same on the MongoDB-wire test server, whose bulk writes of 10,000 documents outlast the client's timeout."""
SYSTEMS = ("ours_sync", "floor_sync", "live_floor_sync", "ours_threads", "floor_threads", "live_floor_threads",
           "old_floor")

_FLOOR_SCHEMA = (
    """CREATE TABLE trials (
        trial_id INTEGER PRIMARY KEY, parameters BLOB NOT NULL, result BLOB NOT NULL,
        result_type TEXT NOT NULL, success INTEGER NOT NULL, finished REAL NOT NULL,
        process_time REAL NOT NULL, description TEXT, seed INTEGER, code_digest TEXT NOT NULL,
        environment_digest TEXT, sweep_id TEXT, worker_environments TEXT, cached_steps TEXT)""",
    "CREATE TABLE metrics (key TEXT NOT NULL, trial_id INTEGER NOT NULL, epoch INTEGER NOT NULL, value REAL)",
    "CREATE INDEX metrics_by_trial ON metrics (trial_id, key, epoch)",
    "CREATE TABLE trial_starts (trial_id INTEGER PRIMARY KEY, parameters TEXT NOT NULL, started REAL NOT NULL)",
)
_DIGEST = "0" * 64


class PhysicalFloor:
    """The floor: a scheduler's ``get`` on the prebuilt graph, then one transaction of its rows.

    Parameters
    ----------
    path : pathlib.Path
        The SQLite database it writes (created).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")
        for statement in _FLOOR_SCHEMA:
            self.connection.execute(statement)
        self.trials = 0
        self.metrics: list[tuple[str, int, float]] = []

        def prepare(a: int, b: int) -> int:
            return a + b

        def score(s: int) -> float:
            for i in range(N_METRICS):
                self.metrics.append((f"m{i}", 0, float(s + i)))
            return s * 0.5

        self._graph = {"prepare": (prepare, "a", "b"), "score": (score, "prepare")}

    def trial(self, get: Callable[..., Any], a: int, b: int, live: bool = False) -> None:
        """One trial: the graph through ``get``, then its trial row and metric rows in one transaction.

        ``live``: the trial's start is recorded first, in a transaction of its
        own, and its end deletes it (a trial shown as running while it runs).
        """
        started = time.perf_counter()
        self.metrics = []
        self.trials += 1
        trial_id = self.trials
        connection = self.connection
        if live:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO trial_starts VALUES (?, ?, ?)", (trial_id, json.dumps({"a": a, "b": b}), time.time()))
            connection.execute("COMMIT")
        graph = {**self._graph, "a": a, "b": b}
        result = get(graph, "score")
        row = self._row(trial_id, {"a": a, "b": b}, result, time.perf_counter() - started)
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(f"INSERT INTO trials VALUES ({', '.join('?' * len(row))})", row)
        connection.executemany(
            "INSERT INTO metrics VALUES (?, ?, ?, ?)",
            [(key, trial_id, epoch, value) for key, epoch, value in self.metrics],
        )
        if live:
            connection.execute("DELETE FROM trial_starts WHERE trial_id = ?", (trial_id,))
        connection.execute("COMMIT")

    @staticmethod
    def _row(trial_id: int, parameters: dict[str, Any], result: Any, seconds: float) -> tuple:
        return (trial_id, json.dumps(parameters), json.dumps(result), "float", 1, time.time(), seconds,
                None, 1, _DIGEST, _DIGEST, None, None, None)

    def fill(self, trials: int) -> None:
        """Bring the database to ``trials`` rows (and their metrics) by bulk inserts."""
        while self.trials < trials:
            ids = range(self.trials + 1, min(trials, self.trials + FILL_BATCH) + 1)
            with self.connection:
                self.connection.execute("BEGIN")
                self.connection.executemany(
                    "INSERT INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [self._row(t, {"a": t, "b": B}, t * 0.5, 0.001) for t in ids],
                )
                self.connection.executemany(
                    "INSERT INTO metrics VALUES (?, ?, ?, ?)",
                    [(f"m{i}", t, 0, float(t + i)) for t in ids for i in range(N_METRICS)],
                )
            self.trials = ids[-1]


def fill_ours(ex: Any, trials: int, batch: int = FILL_BATCH) -> None:
    """Bring ``ex``'s history to ``trials`` trials with copies of its last trial (and its metrics).

    Ids come from the store's own counter (``allocate_trial_ids``), so trials
    run afterwards continue after them, as they would after real trials.
    """
    from daskperiment.records import MetricPoint, RecordBatch

    backend = ex.backend
    template = backend.load_trials([backend.last_trial_id()])[0]
    while True:
        missing = trials - backend.last_trial_id()
        if missing <= 0:
            return
        ids = backend.allocate_trial_ids(min(batch, missing))
        backend.write_batch(RecordBatch(
            trials=[replace(template, trial_id=t, parameters={"a": t, "b": B}, result=t * 0.5) for t in ids],
            metrics=[MetricPoint(t, f"m{i}", 0, float(t + i)) for t in ids for i in range(N_METRICS)],
        ))


def disk_bytes(path: Path) -> int:
    """Bytes allocated on disk to the files below ``path`` (each inode once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            status = os.lstat(os.path.join(folder, name))
            if (status.st_dev, status.st_ino) not in seen:
                seen.add((status.st_dev, status.st_ino))
                total += status.st_blocks * 512
    return total


def release_freed_memory() -> None:
    """Hand memory freed by the bulk writes back to the system (glibc), so RSS counts live memory."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def rss_mib() -> float:
    """The resident memory of this process now, MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RoundTrips:
    """Counts the requests the Redis or MongoDB client library sends (one per round trip)."""

    def __init__(self, backend: str) -> None:
        self.count = 0
        if backend == "redis":
            import redis.connection

            original = redis.connection.AbstractConnection.send_packed_command

            def counted(connection: Any, command: Any, check_health: bool = True) -> None:
                self.count += 1
                original(connection, command, check_health)

            redis.connection.AbstractConnection.send_packed_command = counted
        elif backend == "mongo":
            from pymongo import monitoring

            counter = self

            class Listener(monitoring.CommandListener):
                def started(self, event: Any) -> None:
                    counter.count += 1

                def succeeded(self, event: Any) -> None:
                    pass

                def failed(self, event: Any) -> None:
                    pass

            monitoring.register(Listener())


def run(adapter: Adapter, backend: str, uri: str | None, sizes: Sizes) -> dict[str, Any]:
    """Run the windows; return the figures."""
    require_ours(adapter)
    import dask.local
    import dask.threaded

    round_trips = RoundTrips(backend) if backend != "local" else None  # before any client exists
    windows = sizes.floor_windows if backend != "mongo" else sizes.floor_mongo_windows
    ours = adapter
    ours.open(backend, uri, unique_id("floor"))
    ours.ex.set_parameters(b=B)
    old = fresh_adapter("floor", "old_floor")
    floor = PhysicalFloor(Path.cwd() / f"{unique_id('physical_floor')}.sqlite3")
    store = getattr(ours.ex.backend, "directory", None)

    def ours_trial(a: int, scheduler: str) -> None:
        ours.ex.set_parameters(a=a)
        ours.result.compute(scheduler=scheduler)

    steps: dict[str, Callable[[int], None]] = {
        "ours_sync": lambda a: ours_trial(a, "sync"),
        "floor_sync": lambda a: floor.trial(dask.local.get_sync, a, B),
        "live_floor_sync": lambda a: floor.trial(dask.local.get_sync, a, B, live=True),
        "ours_threads": lambda a: ours_trial(a, "threads"),
        "floor_threads": lambda a: floor.trial(dask.threaded.get, a, B),
        "live_floor_threads": lambda a: floor.trial(dask.threaded.get, a, B, live=True),
        "old_floor": lambda a: old.trial(a, B),
    }
    for a in range(3):  # warm-up: imports, the first trial's code and environment
        for step in steps.values():
            step(a)
    results: list[dict[str, Any]] = []
    previous: tuple[int, int, int, int] | None = None  # ours trials, ours bytes, floor bytes, floor trials
    for first, last in windows:
        t0 = time.perf_counter()
        fill_ours(ours.ex, first - 1, FILL_BATCH_MONGO if backend == "mongo" else FILL_BATCH)
        filled = time.perf_counter() - t0
        floor.fill(first - 1)
        release_freed_memory()
        rss_before = rss_mib()
        times: dict[str, list[float]] = {name: [] for name in SYSTEMS}
        trips_during_ours = 0
        for a in range(first, last + 1):
            for name, step in steps.items():
                before = round_trips.count if round_trips else 0
                t = time.perf_counter()
                step(a)
                times[name].append(time.perf_counter() - t)
                if round_trips and name.startswith("ours"):
                    trips_during_ours += round_trips.count - before
        window: dict[str, Any] = {
            "first": first, "last": last, "rounds": last - first + 1,
            "ours_trials_after": ours.ex.backend.last_trial_id(),
            "fill_seconds": filled,
            "median_ms": {name: median(values) * 1e3 for name, values in times.items()},
            "rss_mib": rss_mib(),
            "rss_growth_mib": rss_mib() - rss_before,
        }
        m = window["median_ms"]
        window["ratio"] = {
            "sync": m["ours_sync"] / m["floor_sync"],
            "threads": m["ours_threads"] / m["floor_threads"],
            "live_sync": m["ours_sync"] / m["live_floor_sync"],
            "live_threads": m["ours_threads"] / m["live_floor_threads"],
            "ours_threads_vs_old_floor": m["ours_threads"] / m["old_floor"],
        }
        if round_trips:
            window["round_trips_per_trial"] = trips_during_ours / (2 * (last - first + 1))
        trials = window["ours_trials_after"]
        ours_bytes = disk_bytes(store) if store is not None else None
        floor_bytes = sum(disk_bytes(p) if p.is_dir() else p.stat().st_blocks * 512
                          for p in floor.path.parent.glob(floor.path.name + "*"))
        window["floor_bytes_per_trial"] = floor_bytes / floor.trials
        if ours_bytes is not None:
            window["ours_bytes_per_trial"] = ours_bytes / trials
            if previous is not None:
                window["ours_bytes_per_added_trial"] = (ours_bytes - previous[1]) / (trials - previous[0])
                window["floor_bytes_per_added_trial"] = (floor_bytes - previous[2]) / (floor.trials - previous[3])
            previous = (trials, ours_bytes, floor_bytes, floor.trials)
        results.append(window)
    t0 = time.perf_counter()
    rows = len(ours.ex.get_history())
    first_call = time.perf_counter() - t0
    loads = []
    for _ in range(sizes.history_repeats):
        t0 = time.perf_counter()
        ours.ex.get_history()
        loads.append(time.perf_counter() - t0)
    return {"windows": results, "history": {"rows": rows, "first_seconds": first_call,
                                            "median_seconds": median(loads)}}
