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
    job_timeout_seconds=120.0,
)


def sizes_from(data: dict) -> Sizes:
    """Rebuild :class:`Sizes` from :meth:`Sizes.as_dict` output."""
    data = dict(data)
    data["windows"] = tuple(tuple(w) for w in data["windows"])
    return Sizes(**data)
