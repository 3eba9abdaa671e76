"""A metric's points as a long table: one row per saved point, with the time it was saved."""

from __future__ import annotations

from typing import TYPE_CHECKING

from daskperiment.history import EPOCH, TRIAL_ID
from daskperiment.records import MetricSeries

if TYPE_CHECKING:
    import pandas as pd

VALUE = "Value"
TIME = "Time"


def metric_points_frame(series: MetricSeries) -> pd.DataFrame:
    """The points of ``series``: columns ``Trial ID``, ``Epoch``, ``Value``, ``Time``, one row per point.

    Rows are in store order (by trial, epoch, then the order they were saved;
    an epoch saved several times has several rows). ``Time`` is the time of
    the ``save_metric`` call as a UTC ``datetime64[ns, UTC]``, ``NaT`` for a
    point stored before daskperiment recorded times. ``Value`` is int64 when
    every value saved under the key was an int, float64 otherwise.
    """
    import numpy as np
    import pandas as pd

    values = series.values
    if series.integer and np.isfinite(values).all() and (values == np.round(values)).all():
        values = values.astype(np.int64)
    return pd.DataFrame(
        {
            TRIAL_ID: series.trial_ids,
            EPOCH: series.epochs,
            VALUE: values,
            TIME: pd.to_datetime(series.times, unit="s", utc=True),
        }
    )
