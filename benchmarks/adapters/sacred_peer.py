"""Sacred with its FileStorageObserver (or MongoObserver): one run per trial."""

from __future__ import annotations

import glob
import json
import os
import time
from typing import Any

from benchmarks.adapters.base import N_METRICS, Adapter, Unavailable, timed_loop


class SacredAdapter(Adapter):
    """One Sacred run per trial: config ``a``, ``b``; metrics via ``_run.log_scalar``.

    Sacred's defaults are kept (output capture mode, host info), as a user gets
    them. The experiment is created ``interactive=True`` because the benchmark
    drives it from ``python -c``. Sacred has no history API: the history is
    built from the observer's stored runs into a DataFrame, as a user would.
    """

    name = "sacred"
    backends = ("local", "mongo")

    def open(self, backend: str, uri: str | None, experiment_id: str) -> None:
        if backend not in self.backends:
            raise Unavailable("Sacred has no Redis observer")
        from dask import delayed
        from sacred import Experiment
        from sacred.observers import FileStorageObserver

        self._delayed = delayed
        self.ex = Experiment(experiment_id, interactive=True)
        self.backend = backend
        if backend == "local":
            self.root = os.path.abspath("sacred_runs")
            self.ex.observers.append(FileStorageObserver(self.root))
        else:
            try:
                from sacred.observers import MongoObserver

                self.ex.observers.append(MongoObserver(url=uri, db_name=experiment_id))
            except Exception as exc:
                raise Unavailable(f"MongoObserver: {type(exc).__name__}: {exc}") from exc
            self.db_name, self.uri = experiment_id, uri
        self._plan: dict[str, Any] = {"calls": 0}
        self._report: dict[str, Any] = {}
        ex, adapter = self.ex, self

        @ex.config
        def config() -> None:
            a = 1  # noqa: F841
            b = 2  # noqa: F841
            calls = 0  # noqa: F841
            budget = 0.0  # noqa: F841

        @ex.main
        def main(_run: Any, a: int, b: int, calls: int, budget: float) -> Any:
            if calls:
                def log_many(a: int) -> int:
                    made, seconds = timed_loop(
                        lambda i: _run.log_scalar("loss", i * 0.5, i), calls, budget
                    )
                    adapter._report = {"calls": made, "call_seconds": seconds}
                    return made

                return delayed(log_many)(a).compute()

            def prepare(a: int, b: int) -> int:
                return a + b

            def score(s: int) -> float:
                for i in range(N_METRICS):
                    _run.log_scalar(f"m{i}", float(s + i), 0)
                return s * 0.5

            return delayed(score)(delayed(prepare)(a, b)).compute()

    def trial(self, a: int, b: int) -> None:
        self.ex.run(config_updates={"a": a, "b": b})

    def metric_trial(self, calls: int, budget_seconds: float) -> dict[str, Any]:
        started = time.perf_counter()
        run = self.ex.run(config_updates={"calls": calls, "budget": budget_seconds})
        report = dict(self._report)
        report["trial_seconds"] = time.perf_counter() - started
        report["trial_id"] = run._id
        return report

    def load_metric(self, key: str, trial_id: Any) -> int:
        if self.backend == "local":
            with open(os.path.join(self.root, str(trial_id), "metrics.json")) as f:
                return len(json.load(f)[key]["values"])
        import pymongo

        db = pymongo.MongoClient(self.uri)[self.db_name]
        return sum(len(doc["values"]) for doc in db.metrics.find({"run_id": trial_id, "name": key}))

    def history(self) -> int:
        import pandas as pd

        rows = []
        if self.backend == "local":
            for folder in glob.glob(os.path.join(self.root, "[0-9]*")):
                with open(os.path.join(folder, "config.json")) as f:
                    row = dict(json.load(f))
                with open(os.path.join(folder, "run.json")) as f:
                    run = json.load(f)
                row.update(status=run.get("status"), result=run.get("result"),
                           start=run.get("start_time"), stop=run.get("stop_time"))
                row["id"] = int(os.path.basename(folder))
                rows.append(row)
        else:
            import pymongo

            db = pymongo.MongoClient(self.uri)[self.db_name]
            for run in db.runs.find({}, {"config": 1, "status": 1, "result": 1, "start_time": 1,
                                         "stop_time": 1}):
                row = dict(run.get("config", {}))
                row.update(id=run["_id"], status=run.get("status"), result=run.get("result"),
                           start=run.get("start_time"), stop=run.get("stop_time"))
                rows.append(row)
        return len(pd.DataFrame(rows).set_index("id").sort_index()) if rows else 0
