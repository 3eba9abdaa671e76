"""``daskperiment show ID TRIAL --follow``: a trial's new metric points and status, until it ends."""

from __future__ import annotations

import time
from collections.abc import Callable

from daskperiment.backend.base import Backend
from daskperiment.errors import TrialIDNotFoundError
from daskperiment.records import MetricSeries
from daskperiment.status import FINISHED, RUNNING


def follow(
    backend: Backend, trial_id: int, interval: float, write: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Write the metric points of trial ``trial_id`` as the store gets them, and its status, until it ends.

    One line per point (``key<TAB>epoch<TAB>value``), one per status
    (``status: running``, ``status: finished, result 0.5``). The store is read
    every ``interval`` seconds.

    Returns
    -------
    int
        The exit status: 0 when the trial finished, 1 when it failed, was
        interrupted or killed.

    Raises
    ------
    TrialIDNotFoundError
        When the store holds no trial ``trial_id``, started or recorded.
    """
    shown: dict[str, int] = {}
    status = None
    while True:
        starts = backend.load_starts([trial_id])  # before the record: a trial ending meanwhile is in it
        records = backend.load_trials([trial_id])
        if records:
            record = records[0]
            now_status = record.status
            ended = f"{record.status}, " + (
                f"result {record.result!r}" if record.success else str(record.description)
            )
        elif trial_id in starts:
            now_status = starts[trial_id].status(time.time())
            ended = now_status
        else:
            last = backend.last_trial_id()
            raise TrialIDNotFoundError(
                f"trial {trial_id} of experiment {backend.experiment_id!r} does not exist"
                + (f": its trial ids go up to {last}" if last else ": it has no trial yet")
            )
        if status is None and now_status == RUNNING:
            write(f"status: {RUNNING}")
        for key in backend.metric_keys():
            series = backend.load_metrics(key, [trial_id])
            for line in _point_lines(series, shown.get(key, 0)):
                write(line)
            shown[key] = len(series)
        if now_status != RUNNING:
            write(f"status: {ended}")
            return 0 if now_status == FINISHED else 1
        status = now_status
        sleep(interval)


def _point_lines(series: MetricSeries, start: int) -> list[str]:
    values = series.values[start:].tolist()
    shown = [str(int(v)) for v in values] if series.integer else [repr(v) for v in values]
    return [f"{series.key}\t{epoch}\t{value}" for epoch, value in zip(series.epochs[start:].tolist(), shown)]
