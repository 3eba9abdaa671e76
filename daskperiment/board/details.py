"""What the dashboard shows of chosen trials: code, environment and metric curves."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
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
    """The points of one metric of one trial."""

    trial_id: int
    epochs: list[int]
    values: list[float]


def metric_curves(backend: Backend, key: str, trial_ids: Sequence[int]) -> list[Curve]:
    """Curves of metric ``key`` for the trials that saved it, thinned when long.

    An epoch saved several times keeps its last value.
    """
    by_trial: dict[int, dict[int, float]] = {t: {} for t in trial_ids}
    for point in backend.load_metrics(key, list(trial_ids)):
        by_trial.setdefault(point.trial_id, {})[point.epoch] = point.value
    curves = []
    for trial_id, points in by_trial.items():
        if not points:
            continue
        epochs = sorted(points)
        step = max(1, -(-len(epochs) // MAX_POINTS_PER_CURVE))
        kept = epochs[::step]
        if kept[-1] != epochs[-1]:
            kept.append(epochs[-1])
        curves.append(Curve(trial_id, kept, [points[e] for e in kept]))
    return curves
