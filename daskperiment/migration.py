"""Re-encoding the values an earlier daskperiment stored as unsigned pickles.

Stores written before values were stored as data hold raw pickles: reading
them never loads a pickle that calls anything (see
:mod:`daskperiment.serialization`), so such values read as placeholders. A
user who trusts the store migrates it: every old pickle is loaded (running
whatever it holds) and stored again as data, or signed with this process's key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from daskperiment import serialization
from daskperiment.backend.base import Backend
from daskperiment.records import PersistedValue, RecordBatch
from daskperiment.serialization import Trust, UnreadableValue

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
"""Trials re-written per batch (one transaction or round trip each)."""


@dataclass
class MigrationReport:
    """What :func:`migrate_store` did."""

    trials: int = 0
    """Trials written again, their values as data or signed pickles."""
    persisted: int = 0
    """Persisted values re-encoded."""
    cache_entries: int = 0
    """Cache entries re-encoded."""
    cache_entries_removed: int = 0
    """Old cache entries that could not be loaded, removed (their steps are computed again when needed)."""
    spooled: int = 0
    """Spooled batches re-sent to the server."""
    unreadable: list[str] = field(default_factory=list)
    """What could not be loaded even trusting old pickles (left as it was), with why."""


def migrate_store(backend: Backend) -> MigrationReport:
    """Load every old pickle of ``backend`` and store its value again as data or a signed pickle.

    Loading a pickle runs the code it names: call this only for a store whose
    writers you trust. Values that are already data or signed are kept as they
    are; values that cannot be loaded are left and listed in the report.

    Raises
    ------
    BackendError
        When the store cannot be read or written.
    """
    report = MigrationReport()
    with serialization.trusting(Trust.OLD_PICKLES):
        sync = getattr(backend, "sync", None)
        if sync is not None:  # a server store: first re-send what an earlier version spooled
            report.spooled = sync()
        _migrate_trials(backend, report)
        _migrate_persisted(backend, report)
        _migrate_cache(backend, report)
    return report


def _migrate_trials(backend: Backend, report: MigrationReport) -> None:
    trials = []
    for trial in backend.load_trials():
        unreadable = [
            f"{name} {value!r}" for name, value in (*trial.parameters.items(), ("result", trial.result))
            if isinstance(value, UnreadableValue)
        ]
        if unreadable:
            report.unreadable.append(f"trial {trial.trial_id}: {', '.join(unreadable)}")
        else:
            trials.append(trial)
    for start in range(0, len(trials), BATCH_SIZE):
        backend.rewrite_trials(trials[start : start + BATCH_SIZE])
    report.trials = len(trials)


def _migrate_persisted(backend: Backend, report: MigrationReport) -> None:
    for trial_id, step in backend.persisted_keys():
        stored = backend.load_persisted(step, trial_id)
        if stored is None or serialization.is_current(stored.payload):
            continue
        value = _old_value(stored.payload, f"the output of step {step!r} persisted in trial {trial_id}", report)
        if value is not _UNREADABLE:
            payload = serialization.dumps(value)
            backend.write_batch(RecordBatch(persisted=[PersistedValue(trial_id, step, payload)]))
            report.persisted += 1


def _migrate_cache(backend: Backend, report: MigrationReport) -> None:
    for entry in backend.cache_entries():
        if entry.location is not None:  # large, in the artifact store: `daskperiment cache --clear` drops it
            continue
        payload = backend.load_cache_payload(entry.key)
        if payload is None or serialization.is_current(payload):
            continue
        value = _old_value(payload, f"the cached output of step {entry.step!r}", report)
        if value is _UNREADABLE:
            backend.delete_cache_entries([entry.key])
            report.cache_entries_removed += 1
            continue
        data = serialization.dumps(value)
        backend.write_batch(RecordBatch(cache_entries=[replace(entry, payload=data, size=len(data))]))
        report.cache_entries += 1


_UNREADABLE = object()


def _old_value(payload: bytes, what: str, report: MigrationReport) -> object:
    """The value of an old pickle, or ``_UNREADABLE`` (listed in ``report``)."""
    try:
        return serialization.load_value(payload)
    except ValueError as exc:
        report.unreadable.append(f"{what}: {exc}")
        return _UNREADABLE
