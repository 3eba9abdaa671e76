"""Adapters for the daskperiment API: ours and the original 0.5.0 share it."""

from __future__ import annotations

import logging
import time
from typing import Any

from benchmarks.adapters.base import N_METRICS, Adapter, Unavailable, timed_loop


class DaskperimentAdapter(Adapter):
    """Drives ``daskperiment.Experiment`` through its public, 0.5-compatible API."""

    name = "daskperiment"
    backends = ("local", "redis", "mongo")

    def _import(self) -> Any:
        import daskperiment

        return daskperiment

    def _backend_argument(self, backend: str, uri: str | None) -> Any:
        return "local" if backend == "local" else uri

    def open(self, backend: str, uri: str | None, experiment_id: str) -> None:
        daskperiment = self._import()
        logging.getLogger("daskperiment").setLevel(logging.WARNING)
        try:
            ex = daskperiment.Experiment(id=experiment_id, backend=self._backend_argument(backend, uri))
        except Exception as exc:  # an unknown backend kind, a missing driver, ...
            if backend == "local":
                raise
            raise Unavailable(f"backend not available: {type(exc).__name__}: {exc}") from exc
        logging.getLogger("daskperiment").setLevel(logging.WARNING)
        self.ex = ex
        a, b = ex.parameter("a"), ex.parameter("b")

        @ex
        def prepare(a: int, b: int) -> int:
            return a + b

        @ex.result
        def score(s: int) -> float:
            for i in range(N_METRICS):
                ex.save_metric(f"m{i}", epoch=0, value=float(s + i))
            return s * 0.5

        self.result = score(prepare(a, b))  # workloads 6-8 pass it to ex.run / ex.submit / ex.sweep
        self._metric_plan: tuple[int, float] = (0, 0.0)
        self._metric_report: dict[str, Any] = {}

        @ex.result
        def log_many(a: int) -> int:
            calls, budget = self._metric_plan
            save = ex.save_metric
            made, seconds = timed_loop(lambda i: save("loss", i, i * 0.5), calls, budget)
            self._metric_report = {"calls": made, "call_seconds": seconds}
            return made

        self._metric_result = log_many(a)

    def trial(self, a: int, b: int) -> None:
        self.ex.set_parameters(a=a, b=b)
        self.result.compute()

    def metric_trial(self, calls: int, budget_seconds: float) -> dict[str, Any]:
        self._metric_plan = (calls, budget_seconds)
        self.ex.set_parameters(a=1, b=2)
        started = time.perf_counter()
        self._metric_result.compute()
        report = dict(self._metric_report)
        report["trial_seconds"] = time.perf_counter() - started
        report["trial_id"] = self.ex.trial_id
        return report

    def load_metric(self, key: str, trial_id: Any) -> int:
        return int(self.ex.load_metric(key, trial_id=trial_id).count().sum())

    def history(self) -> int:
        return len(self.ex.get_history())


class OursAdapter(DaskperimentAdapter):
    """This repository's daskperiment (the current interpreter, /work/main importable)."""

    name = "ours"


    def fill_history(self, rows: int) -> int:
        """Bring the history to ``rows`` trials with copies of the last trial record.

        Written through the store's own ``write_batch``, 1,000 trials a batch
        (the trial-id counter is not advanced: this experiment is scratch).
        Used when the trial loop stopped before ``rows`` (a slow server), so that
        ``get_history`` is still measured at its target size. Returns trials added.
        """
        from dataclasses import replace

        from daskperiment.records import RecordBatch

        backend = self.ex.backend
        last = backend.last_trial_id()
        template = backend.load_trials([last])[0]
        added = 0
        while last + added < rows:
            n = min(1000, rows - last - added)
            first = last + added + 1
            backend.write_batch(RecordBatch(trials=[replace(template, trial_id=first + i) for i in range(n)]))
            added += n
        return added


class OriginalAdapter(DaskperimentAdapter):
    """daskperiment 0.5.0 from PyPI, in its own virtual environment."""

    name = "original"

    def _import(self) -> Any:
        # 0.5.0 checks isinstance(uri, pymongo.mongo_client.MongoClient) without
        # importing the submodules; current pymongo needs them imported first.
        try:
            import pymongo.database
            import pymongo.mongo_client  # noqa: F401
        except ImportError:
            pass
        import daskperiment

        return daskperiment
