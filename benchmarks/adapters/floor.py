"""The floor: the same 2-step graph computed with plain ``dask.delayed``, no tracking."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.adapters.base import N_METRICS, Adapter, Unavailable, timed_loop


class FloorAdapter(Adapter):
    """Plain ``dask.delayed``: what a trial costs with no tracking at all.

    Metrics go to a Python list (the cheapest possible "logging"); there is no
    store, so no history and no read-back.
    """

    name = "floor"
    backends = ("local",)

    def open(self, backend: str, uri: str | None, experiment_id: str) -> None:
        if backend != "local":
            raise Unavailable("the floor has no store")
        from dask import delayed

        self._delayed = delayed
        self.metrics: list[tuple[str, int, float]] = []

        def prepare(a: int, b: int) -> int:
            return a + b

        def score(s: int) -> float:
            for i in range(N_METRICS):
                self.metrics.append((f"m{i}", 0, float(s + i)))
            return s * 0.5

        self._prepare, self._score = prepare, score

    def graph(self, a: int, b: int) -> Any:
        """The 2-step graph ``score(prepare(a, b))`` as a ``dask.delayed`` object, not computed."""
        return self._delayed(self._score)(self._delayed(self._prepare)(a, b))

    def trial(self, a: int, b: int) -> None:
        self.metrics = []
        self.graph(a, b).compute()

    def metric_trial(self, calls: int, budget_seconds: float) -> dict[str, Any]:
        points: list[tuple[str, int, float]] = []
        report: dict[str, Any] = {}

        def log_many(a: int) -> int:
            made, seconds = timed_loop(lambda i: points.append(("loss", i, i * 0.5)), calls, budget_seconds)
            report.update(calls=made, call_seconds=seconds)
            return made

        started = time.perf_counter()
        self._delayed(log_many)(1).compute()
        report["trial_seconds"] = time.perf_counter() - started
        report["trial_id"] = None
        return report
