"""Tables of recorded trials and metrics, as pandas DataFrames."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

from daskperiment.annotations import tags_text
from daskperiment.records import (
    Annotation, ArtifactRecord, CacheEntry, MetricSeries, TrialColumns, TrialRecord, TrialStart,
)
from daskperiment.status import KILLED

if TYPE_CHECKING:
    import pandas as pd

TRIAL_ID = "Trial ID"
EPOCH = "Epoch"
PROCESS_TIME_LABEL = "Process Time (s)"
"""Title of process times shown to people (command line, dashboard), as :func:`seconds_text` writes them."""
HISTORY_COLUMNS = (
    TRIAL_ID, "Seed", "Result", "Result Type", "Success", "Finished", "Process Time",
    PROCESS_TIME_LABEL, "Description", "Sweep", "Cached", "Status", "Note", "Tags",
)
"""Titles of the history's columns besides the parameters (no parameter may take one)."""


def column_title(column: str) -> str:
    """The title people see for a history column: ``Process Time`` is shown in seconds, as ``Process Time (s)``."""
    return PROCESS_TIME_LABEL if column == "Process Time" else column


def seconds_text(seconds: float) -> str:
    """A process time as the command line and the dashboard show it: seconds, 3 decimals (``"0.125"``)."""
    return f"{seconds:.3f}"


def history_frame(
    trials: Sequence[TrialRecord] | TrialColumns, verbose: bool = False,
    starts: Mapping[int, TrialStart] | None = None, now: float | None = None,
    annotations: Mapping[int, Annotation] | None = None,
) -> pd.DataFrame:
    """The history table: one row per trial, indexed by ``Trial ID``, in 0.5's format plus ``Status``.

    ``trials`` are records ordered by id, or their columns (what
    :meth:`~daskperiment.backend.base.Backend.load_trial_columns` reads: the
    table is the same). Columns are the parameters (in the order they first appear), then
    ``Seed`` (verbose), ``Result`` (NaN for a failed trial), ``Result Type`` (verbose: ``"<class
    'float'>"``, ``"None"`` for a failed trial), ``Success``, ``Finished``,
    ``Process Time``, ``Description`` (the error of a failed trial, NaN for
    the others), ``Sweep`` (when some trial belongs to a sweep),
    ``Cached`` (when some trial loaded steps from the step cache:
    ``"step (trial N), ..."``, empty for the others), ``Status``
    (``finished``, ``failed``, ``interrupted``, ``running`` or ``killed``),
    then ``Note`` and ``Tags`` when some trial has a note or a tag (of
    ``annotations``, by trial id): the note text and the tags sorted and
    joined by ``", "`` (``"baseline, lr-sweep"``), ``""`` for a trial
    without. Tags are text so that the table sorts, groups, compares and
    writes to CSV as it is; ``frame["Tags"].str.split(", ")`` gives lists, and
    ``frame[frame["Tags"].str.split(", ").map(lambda t: "baseline" in t)]``
    selects the trials tagged ``baseline``.

    ``starts`` are trials started and not recorded (see
    :meth:`~daskperiment.backend.base.Backend.load_starts`; those whose id is
    in ``trials`` are left out): rows ``running``, or ``killed`` when their
    heartbeat is stale at POSIX time ``now`` (default: this moment), without
    result, finish or process time. A killed trial's ``Description`` says
    when its process stopped.
    """
    import numpy as np
    import pandas as pd  # imported on first use: it is slow to import

    table = trials if isinstance(trials, TrialColumns) else TrialColumns.of(trials)
    if starts:
        recorded = set(table.trial_ids)
        started = {i: start for i, start in starts.items() if i not in recorded}
        if started:
            table = table.merged(_start_columns(started, time.time() if now is None else now))

    parameters, success, descriptions, sweeps = table.parameters, table.success, table.descriptions, table.sweep_ids
    names = dict.fromkeys(itertools.chain.from_iterable(parameters))  # in the order they first appear
    columns: dict[str, Any] = {name: list(map(dict.get, parameters, itertools.repeat(name))) for name in names}
    if verbose:
        columns["Seed"] = table.seeds
    columns["Result"] = [result if ok else np.nan for result, ok in zip(table.results, success)]
    if verbose:
        columns["Result Type"] = list(map(type_text, table.result_types))
    columns["Success"] = success
    columns["Finished"] = pd.to_datetime(
        [None if when is None else datetime.fromtimestamp(when) for when in table.finished]
    )
    columns["Process Time"] = pd.to_timedelta(np.array(table.process_times, dtype=np.float64), unit="s")
    columns["Description"] = [np.nan if text is None else text for text in descriptions]
    if sweeps.count(None) != len(sweeps):
        columns["Sweep"] = sweeps
    if any(table.cached_steps):
        columns["Cached"] = list(map(describe_cached, table.cached_steps))
    columns["Status"] = table.statuses
    if annotations:
        annotated = list(map(annotations.get, table.trial_ids))
        if any(annotated):
            columns["Note"] = [a.note if a else "" for a in annotated]
            columns["Tags"] = [tags_text(a.tags) if a else "" for a in annotated]
    index = pd.Index(table.trial_ids, name=TRIAL_ID, dtype="int64")
    frame = pd.DataFrame(columns, index=index)
    frame["Success"] = frame["Success"].astype(bool)
    frame["Status"] = frame["Status"].astype(object)
    if descriptions.count(None) == len(descriptions):
        frame["Description"] = frame["Description"].astype("float64")
    return frame


def _start_columns(starts: Mapping[int, TrialStart], now: float) -> TrialColumns:
    """Trials started and not recorded as history rows: no result, finish nor process time; running or killed."""
    statuses = [start.status(now) for start in starts.values()]
    count = len(starts)
    return TrialColumns(
        trial_ids=list(starts),
        parameters=[start.parameters for start in starts.values()],
        results=[None] * count,
        result_types=[""] * count,
        success=[False] * count,
        finished=[None] * count,
        process_times=[float("nan")] * count,
        descriptions=[
            f"killed: process {start.process} stopped marking it alive at "
            f"{datetime.fromtimestamp(start.heartbeat).isoformat(sep=' ', timespec='seconds')}"
            if status == KILLED else None
            for start, status in zip(starts.values(), statuses)
        ],
        seeds=[start.seed for start in starts.values()],
        sweep_ids=[start.sweep_id for start in starts.values()],
        cached_steps=[()] * count,
        statuses=statuses,
    )


def type_text(result_type: str) -> str:
    """A recorded result type as 0.5 showed it: ``"<class 'int'>"``, ``"None"`` when empty (failed)."""
    return f"<class '{result_type}'>" if result_type else "None"


def describe_cached(cached_steps: Sequence[tuple[str, int]]) -> str:
    """The steps a trial loaded from the step cache, e.g. ``"prepare (trial 3), train (trial 3)"``."""
    return ", ".join(f"{step} (trial {trial_id})" for step, trial_id in cached_steps)


def metric_frame(series: MetricSeries, trial_ids: Sequence[int]) -> pd.DataFrame:
    """Metric values indexed by ``Epoch`` with one column per trial (``Trial ID``).

    When a trial saved one epoch several times, its last value is kept. The
    values are int64 when every value saved under the key was an int and no
    trial lacks an epoch another has (as in daskperiment 0.5), else float64.
    """
    import numpy as np
    import pandas as pd

    table = pd.DataFrame({TRIAL_ID: series.trial_ids, EPOCH: series.epochs, "value": series.values})
    table = table.drop_duplicates([TRIAL_ID, EPOCH], keep="last")
    frame = table.pivot(index=EPOCH, columns=TRIAL_ID, values="value")
    frame = frame.reindex(columns=pd.Index(list(trial_ids), name=TRIAL_ID)).sort_index()
    frame.index = frame.index.astype("int64")
    values = frame.to_numpy(dtype="float64")
    if series.integer and np.isfinite(values).all() and (values == np.round(values)).all():
        frame = frame.astype("int64")
    return frame


def cache_frame(entries: Sequence[CacheEntry]) -> pd.DataFrame:
    """The step cache's entries: one row per key, in the given order."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "Step": [entry.step for entry in entries],
            TRIAL_ID: pd.array([entry.trial_id for entry in entries], dtype="int64"),
            "Size": pd.array([entry.size for entry in entries], dtype="int64"),
            "Stored In": ["artifacts" if entry.location else "store" for entry in entries],
            "Created": pd.to_datetime([datetime.fromtimestamp(e.created) for e in entries]),
            "Last Used": pd.to_datetime([datetime.fromtimestamp(e.last_used) for e in entries]),
        },
        index=pd.Index([entry.key for entry in entries], name="Key", dtype=object),
    )
    return frame


def artifact_frame(records: Sequence[ArtifactRecord]) -> pd.DataFrame:
    """The files of a trial's artifacts: one row per file, in the given order."""
    import pandas as pd

    return pd.DataFrame(
        {
            "Artifact": [record.name for record in records],
            "Path": [record.path for record in records],
            "Size": pd.array([record.size for record in records], dtype="int64"),
            "Step": [record.step for record in records],
            "Digest": [record.digest for record in records],
        }
    )
