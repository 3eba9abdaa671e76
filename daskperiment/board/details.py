"""What the dashboard shows of chosen trials: code, environment and metric curves."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from daskperiment.backend import Backend
from daskperiment.records import TrialRecord

MAX_POINTS_PER_CURVE = 2000
"""Longer metric curves are thinned to about this many points (first and last kept)."""


def code_of(backend: Backend, trial: TrialRecord) -> str:
    """The code of the steps as ``trial`` ran them ("" when it was not stored)."""
    blob = backend.load_blob(trial.code_digest)
    return blob.content.decode("utf-8", errors="replace") if blob is not None else ""


def environment_of(backend: Backend, trial: TrialRecord) -> dict[str, dict[str, Any]] | None:
    """The environment ``trial`` ran in, None when it could not be captured or stored."""
    if not trial.environment_digest:
        return None
    blob = backend.load_blob(trial.environment_digest)
    return json.loads(blob.content) if blob is not None else None


@dataclass(frozen=True)
class Curve:
    """The points of one metric of one trial.

    ``xs`` are where the points are drawn (their epochs, or seconds into the
    trial); ``times`` the POSIX time each point was saved (NaN when unknown),
    empty once drawn.
    """

    trial_id: int
    epochs: list[int]
    values: list[float]
    times: list[float] = field(default_factory=list)
    xs: list[float] = field(default_factory=list)

    @property
    def timed(self) -> bool:
        """Whether every point has the time it was saved (points stored before daskperiment kept times have none)."""
        return bool(self.times) and not any(math.isnan(t) for t in self.times)


def metric_curves(backend: Backend, key: str, trial_ids: Sequence[int]) -> list[Curve]:
    """Curves of metric ``key`` for the trials that saved it (in the order of ``trial_ids``), thinned when long.

    An epoch saved several times keeps its last value (and that value's time).
    """
    points = _points(backend, key, trial_ids)
    curves = []
    for trial_id in trial_ids:
        if trial_id not in points.groups:
            continue
        rows = points.get_group(trial_id)
        epochs, values, times = rows["epoch"].tolist(), rows["value"].tolist(), rows["time"].tolist()
        step = max(1, -(-len(epochs) // MAX_POINTS_PER_CURVE))
        kept = list(range(0, len(epochs), step))
        if kept[-1] != len(epochs) - 1:
            kept.append(len(epochs) - 1)
        curves.append(
            Curve(trial_id, [epochs[i] for i in kept], [values[i] for i in kept], [times[i] for i in kept])
        )
    return curves


def _points(backend: Backend, key: str, trial_ids: Sequence[int]) -> Any:
    """The points of ``key`` of the trials, one per epoch (the last saved), grouped by trial."""
    import pandas as pd

    series = backend.load_metrics(key, list(trial_ids))
    table = pd.DataFrame(
        {"trial": series.trial_ids, "epoch": series.epochs, "value": series.values, "time": series.times}
    )
    table = table.drop_duplicates(["trial", "epoch"], keep="last").sort_values(["trial", "epoch"], kind="stable")
    return table.groupby("trial", sort=False)


SUMMARY_STATISTICS = ("last", "min", "max")
"""What :func:`metric_summaries` tells of a metric: its value at the last epoch, its lowest and highest."""


@dataclass(frozen=True)
class MetricSummary:
    """A metric of one trial in three numbers."""

    last: float
    """Value at the last epoch."""
    min: float
    max: float


def metric_summaries(backend: Backend, key: str, trial_ids: Sequence[int]) -> dict[int, MetricSummary]:
    """Per trial of ``trial_ids`` that saved metric ``key``: its last, lowest and highest value."""
    points = _points(backend, key, trial_ids)
    last, low, high = (points["value"].agg(how) for how in ("last", "min", "max"))
    return {int(t): MetricSummary(float(last[t]), float(low[t]), float(high[t])) for t in last.index}


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """``values`` smoothed by an exponential moving average of ``weight`` (0: as they are), debiased at the start.

    Raises
    ------
    ValueError
        When ``weight`` is not from 0 (included) to 1 (excluded).
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"a smoothing weight is from 0 to 1 (excluded), not {weight!r}")
    smoothed, average, count = [], 0.0, 0
    for value in values:
        if math.isnan(value):  # a hole stays a hole; the average goes on after it
            smoothed.append(value)
            continue
        count += 1
        average = weight * average + (1 - weight) * value
        smoothed.append(average / (1 - weight**count))
    return smoothed


def seconds_since(times: Sequence[float], start: float) -> list[float]:
    """Seconds from POSIX time ``start`` to each of ``times``, the start taken no later than the earliest of them.

    A recorded trial's start is its end minus its process time, and its end
    is stamped once its record is ready (after its artifacts are uploaded):
    a few milliseconds late, or more. Its earliest point is then the start.
    """
    origin = min([start, *times])
    return [when - origin for when in times]


def epoch_times(epochs: Sequence[int], seconds: float) -> list[float]:
    """Seconds into a trial of ``seconds`` at each of ``epochs``, its epochs taken as evenly spread over its time.

    For points stored without their time (before daskperiment kept times): epoch ``e`` of a trial whose
    epochs go from ``first`` to ``last`` is placed at ``seconds * (e - first + 1) / (last - first + 1)``.
    """
    if not epochs:
        return []
    first, span = epochs[0], epochs[-1] - epochs[0] + 1
    return [seconds * (epoch - first + 1) / span for epoch in epochs]
