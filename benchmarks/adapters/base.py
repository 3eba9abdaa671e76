"""The interface every system under test implements (standard library only).

An adapter runs inside the benchmark worker, in the interpreter of its own
system (ours, the original daskperiment 0.5.0, MLflow, Sacred, or the plain
``dask.delayed`` floor). Workloads only talk to this interface, so every
system runs exactly the same measurement code.
"""

from __future__ import annotations

import time
from typing import Any


class Unavailable(Exception):
    """The system cannot run this workload or backend (the table says why)."""


N_METRICS = 10
"""Metrics saved by each trial of the trial-overhead workload."""


class Adapter:
    """One system under test.

    Subclasses implement :meth:`open` and the operations the workloads use;
    an operation a system does not have raises :class:`Unavailable`.
    """

    name = "?"
    backends: tuple[str, ...] = ("local",)
    """Backend kinds (``local``, ``redis``, ``mongo``) this system can store to."""

    def open(self, backend: str, uri: str | None, experiment_id: str) -> None:
        """Open (create) the experiment ``experiment_id`` on ``backend``.

        ``uri`` is the server address for ``redis``/``mongo`` (None for local);
        the working directory is a fresh temporary folder.
        """
        raise NotImplementedError

    def trial(self, a: int, b: int) -> None:
        """Run one trial of the 2-step graph with parameters ``a`` and ``b``.

        The graph is ``score(prepare(a, b))``; ``score`` saves
        :data:`N_METRICS` metrics (keys ``m0``..``m9``, epoch 0).
        """
        raise NotImplementedError

    def metric_trial(self, calls: int, budget_seconds: float) -> dict[str, Any]:
        """Run one trial whose step calls ``save_metric("loss", i, float)`` ``calls`` times.

        Stops early once ``budget_seconds`` have been spent in the calls.
        Returns ``calls`` (made), ``call_seconds`` (time in the calls),
        ``trial_seconds`` (the whole trial including the write) and ``trial_id``.
        """
        raise NotImplementedError

    def load_metric(self, key: str, trial_id: Any) -> int:
        """Read back metric ``key`` of one trial; return the number of points."""
        raise Unavailable("no metric store")

    def history(self) -> int:
        """Load the history of every trial as a table; return its number of rows."""
        raise Unavailable("no history")

    def close(self) -> None:
        """Release resources at the end of the job."""


def timed_loop(body, calls: int, budget_seconds: float) -> tuple[int, float]:
    """Call ``body(i)`` for i in 0..calls-1, checking the clock every 256 calls.

    Returns (calls made, seconds spent).
    """
    started = time.perf_counter()
    done = 0
    deadline = started + budget_seconds
    while done < calls:
        stop = min(calls, done + 256)
        for i in range(done, stop):
            body(i)
        done = stop
        if time.perf_counter() > deadline:
            break
    return done, time.perf_counter() - started
