"""Sizes of the workloads: the full run (~15 minutes) and ``--quick`` (~1-2 minutes)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Sizes:
    """Every size and time budget of one run of the suite."""

    windows: tuple[tuple[int, int], ...] = ((1, 100), (1000, 1100), (10000, 10100))
    """Trial-overhead windows (first and last trial, inclusive): median per-trial time."""
    trial_budget_seconds: float = 45.0
    """Trial overhead: a slow system (original, peers) stops after this long."""
    ours_server_budget_seconds: float = 90.0
    """Trial overhead: ours on Redis/Mongo stops after this long (the test Mongo server is slow)."""
    history_rows: int = 10_000
    """History: ours is brought to this many trials (bulk copies) if its loop stopped earlier."""
    original_max_trials: int = 2000
    """Trial overhead: the original stops here at the latest (it slows down with history)."""
    metric_calls: int = 100_000
    metric_budget_seconds: float = 15.0
    """Metric logging: a system that is slower stops calling after this long."""
    metric_repeats: int = 3
    load_repeats: int = 5
    history_repeats: int = 5
    cli_repeats: int = 5
    concurrency_processes: int = 4
    concurrency_trials: int = 250
    """Trials per process in the concurrency workload."""
    concurrency_budget_seconds: float = 20.0
    sweep_grid: tuple[int, int] = (10, 10)
    """Sweep with shared work: values of ``a`` (the shared, sleeping step) and of ``b``."""
    sweep_sleep_seconds: float = 0.05
    """Sweep with shared work: what the step on ``a`` sleeps (stands for real work)."""
    sweep_repeats: int = 3
    """Sweep with shared work: sweeps per scheduler (median); the sequential loop runs once."""
    many_trials: int = 1000
    """Trivial trials at once, threaded scheduler."""
    many_trials_cluster: int = 1000
    """Trivial trials at once, on the LocalCluster."""
    many_repeats: int = 3
    """Trivial trials at once: rounds on the threaded scheduler (median); the cluster runs one."""
    cluster_trials: int = 300
    """Per-trial overhead on the LocalCluster: trials of ours and of plain dask, interleaved."""
    cache_grid: tuple[int, int] = (10, 10)
    """Step cache: values of ``a`` and ``b`` of the all-cached sweep."""
    cache_work_seconds: float = 0.02
    """Step cache: what each step sleeps (stands for real work)."""
    cache_rounds: int = 2
    """Step cache: cold sweeps, each on a new store (median)."""
    cache_reruns: int = 3
    """Step cache: all-cached re-runs after each cold sweep (median over every round)."""
    cache_hit_trials: int = 200
    """Step cache: single all-cached trials, interleaved with as many uncached baseline trials."""
    artifact_mib: int = 100
    """Artifacts: size of the file a step keeps."""
    artifact_rounds: int = 9
    """Artifacts: rounds on the local disk (median), after a warm-up round."""
    artifact_s3_rounds: int = 3
    """Artifacts: rounds with the artifacts on the S3 server (median), after a warm-up round."""
    floor_windows: tuple[tuple[int, int], ...] = ((1, 100), (10_000, 10_100), (100_000, 100_100))
    """Physical floor: windows (first trial, last round) on the local store and Redis; the history
    is brought to each window's first trial by bulk writes."""
    floor_mongo_windows: tuple[tuple[int, int], ...] = ((1, 100), (10_000, 10_100))
    """Physical floor: windows on the MongoDB-wire test server (slow: pure Python)."""
    job_timeout_seconds: float = 420.0

    def as_dict(self) -> dict:
        """Plain JSON-able form (sent to workers, stored in the JSON output)."""
        return asdict(self)


FULL = Sizes()
QUICK = Sizes(
    windows=((1, 50), (200, 250)),
    trial_budget_seconds=4.0,
    ours_server_budget_seconds=4.0,
    history_rows=250,
    original_max_trials=250,
    metric_calls=20_000,
    metric_budget_seconds=2.0,
    metric_repeats=2,
    load_repeats=2,
    history_repeats=2,
    cli_repeats=2,
    concurrency_trials=20,
    concurrency_budget_seconds=4.0,
    sweep_grid=(10, 5),
    sweep_repeats=1,
    many_trials=200,
    many_trials_cluster=100,
    many_repeats=1,
    cluster_trials=30,
    cache_grid=(5, 4),
    cache_rounds=1,
    cache_reruns=2,
    cache_hit_trials=30,
    artifact_mib=20,
    artifact_rounds=2,
    artifact_s3_rounds=1,
    floor_windows=((1, 30), (1000, 1030)),
    floor_mongo_windows=((1, 30), (500, 530)),
    job_timeout_seconds=120.0,
)


def sizes_from(data: dict) -> Sizes:
    """Rebuild :class:`Sizes` from :meth:`Sizes.as_dict` output."""
    data = dict(data)
    data["windows"] = tuple(tuple(w) for w in data["windows"])
    data["sweep_grid"] = tuple(data["sweep_grid"])
    data["cache_grid"] = tuple(data["cache_grid"])
    for name in ("floor_windows", "floor_mongo_windows"):
        data[name] = tuple(tuple(w) for w in data[name])
    return Sizes(**data)
