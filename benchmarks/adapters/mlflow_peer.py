"""MLflow as users run it locally: a SQLite tracking store, one run per trial."""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks.adapters.base import N_METRICS, Adapter, Unavailable, timed_loop


class MlflowAdapter(Adapter):
    """One MLflow run per trial: 2 params, 10 metrics, the same ``dask.delayed`` graph.

    Runs go through ``MlflowClient`` with explicit run ids (MLflow's active-run
    stack is per thread, and dask runs steps in worker threads). Metrics of a
    trial are logged as one ``log_batch``; the 100k-call workload calls
    ``log_metric`` (synchronous: each call is stored when it returns). MLflow's
    asynchronous mode only defers the same inserts to a background thread,
    which then needs minutes to flush 20,000 points into SQLite, so its call
    rate would measure a queue, not logging. MLflow has no Redis or MongoDB store.
    """

    name = "mlflow"
    backends = ("local",)

    def open(self, backend: str, uri: str | None, experiment_id: str) -> None:
        if backend != "local":
            raise Unavailable("MLflow has no Redis/MongoDB tracking store")
        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
        import mlflow
        from dask import delayed
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        self._mlflow = mlflow
        tracking = f"sqlite:///{os.path.abspath('mlflow.db')}"
        mlflow.set_tracking_uri(tracking)
        self.client = MlflowClient(tracking_uri=tracking)
        existing = self.client.get_experiment_by_name(experiment_id)
        self.experiment = (
            existing.experiment_id if existing else self.client.create_experiment(experiment_id)
        )
        self._delayed, self._Metric, self._Param = delayed, Metric, Param
        self.run_ids: list[str] = []

    def _start(self, params: dict[str, Any]) -> str:
        run = self.client.create_run(self.experiment)
        run_id = run.info.run_id
        self.client.log_batch(run_id, params=[self._Param(k, str(v)) for k, v in params.items()])
        return run_id

    def trial(self, a: int, b: int) -> None:
        run_id = self._start({"a": a, "b": b})
        client, Metric = self.client, self._Metric

        def prepare(a: int, b: int) -> int:
            return a + b

        def score(s: int) -> float:
            now = int(time.time() * 1000)
            client.log_batch(
                run_id, metrics=[Metric(f"m{i}", float(s + i), now, 0) for i in range(N_METRICS)]
            )
            return s * 0.5

        try:
            self._delayed(score)(self._delayed(prepare)(a, b)).compute()
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")
        self.run_ids.append(run_id)

    def metric_trial(self, calls: int, budget_seconds: float) -> dict[str, Any]:
        started = time.perf_counter()
        run_id = self._start({"a": 1, "b": 2})
        client = self.client
        report: dict[str, Any] = {}

        def log_many(a: int) -> int:
            made, seconds = timed_loop(
                lambda i: client.log_metric(run_id, "loss", i * 0.5, step=i),
                calls,
                budget_seconds,
            )
            report.update(calls=made, call_seconds=seconds)
            return made

        self._delayed(log_many)(1).compute()
        client.set_terminated(run_id, "FINISHED")
        report["trial_seconds"] = time.perf_counter() - started
        report["trial_id"] = run_id
        return report

    def load_metric(self, key: str, trial_id: Any) -> int:
        return len(self.client.get_metric_history(trial_id, key))

    def history(self) -> int:
        frame = self._mlflow.search_runs(experiment_ids=[self.experiment], max_results=100_000)
        return len(frame)
