"""Metric points written while their trial runs, in batches, by one thread per process.

``ex.save_metric`` only appends to its step's list: no I/O, no lock. The first
point of a step running in the process that started its trial hands the
step's recorder to :class:`MetricStream`, whose thread writes the points saved
since its last write, of every such step of a store, in one batch (one
transaction or round trip): :data:`FLUSH_SECONDS` after the last one, or as
soon as :data:`FLUSH_POINTS` points wait — never spending more than
:data:`BUSY_SHARE` of the time writing, so that a step saving points as fast
as it can keeps most of the interpreter. When the step ends, the stream says
how many of its points (the first ones) it wrote; the trial's record writes
the others, so every point is written once. The artifact files a step uploads
while it runs (see :mod:`daskperiment.capture`) are listed with the next batch
too, so a running trial's files can be read; the trial's record lists them
again as they are when the step ends.

Steps running in other processes (the ``processes`` scheduler, ``dask.distributed``
workers) do not stream: a worker may be lost and its step run again elsewhere,
and only the process that started the trial knows which run counts. Their
points are written with the trial's record, when it ends.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from daskperiment.backend.base import Backend
from daskperiment.context import StepRecorder
from daskperiment.errors import BackendError, BatchSpooledError
from daskperiment.records import ArtifactRecord, MetricPoint, RecordBatch

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 2.0
"""Longest time a saved point waits before it is written (plus the time of a write under way)."""
FLUSH_POINTS = 10_000
"""Points waiting that make the stream write them at once."""
BUSY_SHARE = 0.1
"""Largest share of the time the stream spends writing: after a write of t seconds, it waits 9t."""
POLL_SECONDS = 0.1
"""How often the thread counts the points waiting, while some step streams."""


@dataclass
class _Store:
    """The steps streaming to one store: each with how many of its points are written."""

    written: dict[StepRecorder, int] = field(default_factory=dict)
    listed: dict[StepRecorder, int] = field(default_factory=dict)
    """Number of the listing of each step's artifact files last written (see :meth:`StepArtifacts.listed`)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Held while points are written to the store: a step ending waits for that write."""
    last_write: float = field(default_factory=time.monotonic)
    not_before: float = 0.0
    failing: bool = False

    def waiting(self) -> int:
        return sum(len(recorder.metrics) - count for recorder, count in self.written.items())

    def files_waiting(self) -> bool:
        """Whether a step has uploaded artifact files not listed in the store yet."""
        return any(_listing(recorder)[0] > self.listed.get(recorder, 0) for recorder in self.written)


class MetricStream:
    """The steps of this process whose points are written while they run, and the thread writing them."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._stores: dict[Backend, _Store] = {}
        self._store_of: dict[StepRecorder, Backend] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._idle = False
        """Whether the thread waits for a step to stream (else it polls every POLL_SECONDS)."""

    def watch(self, backend: Backend, recorder: StepRecorder) -> None:
        """Write the points of ``recorder``'s step to ``backend`` while it runs (call :meth:`release` at its end)."""
        with self._changed:
            self._stores.setdefault(backend, _Store()).written[recorder] = 0
            self._store_of[recorder] = backend
            recorder.stream = self
            if self._thread is None or self._pid != os.getpid():  # none yet, or forked
                self._pid = os.getpid()
                self._idle = False
                self._thread = threading.Thread(target=self._run, name="daskperiment-metrics", daemon=True)
                self._thread.start()
            elif self._idle:  # a polling thread sees it at its next poll: no thread switch per step
                self._changed.notify()

    def release(self, recorder: StepRecorder) -> int:
        """Stop writing the points of a step that ended; return how many of them (the first ones) were written.

        Waits for a write under way, so that no point is written after this
        returns: the trial's record writes the others.
        """
        with self._changed:
            backend = self._store_of.get(recorder)
            store = self._stores.get(backend) if backend is not None else None
        if store is None:
            return 0
        with store.lock:
            with self._changed:
                return self._forget(backend, store, recorder)  # type: ignore[arg-type]

    def finish_trials(self, backend: Backend, trial_ids: Collection[int]) -> None:
        """Write the waiting points of steps of ``trial_ids`` that never ended, then stop streaming them.

        For a trial ending without its steps' records (interrupted, or its
        scheduler failed): the points its steps saved are kept, as far as the
        store takes them.
        """
        ids = set(trial_ids)
        with self._changed:
            store = self._stores.get(backend)
            if store is None or not any(ids.intersection(r.context.trial_ids) for r in store.written):
                return
        with store.lock:
            with self._changed:
                chosen = [r for r in store.written if ids.intersection(r.context.trial_ids)]
                parts = [(r, store.written[r], len(r.metrics)) for r in chosen]
            self._write(backend, store, parts)
            with self._changed:
                for recorder in chosen:
                    self._forget(backend, store, recorder)

    def _forget(self, backend: Backend, store: _Store, recorder: StepRecorder) -> int:
        """Stop streaming ``recorder`` (with ``_changed`` held); return how many of its points were written."""
        self._store_of.pop(recorder, None)
        store.listed.pop(recorder, None)
        written = store.written.pop(recorder, 0)
        if not store.written and self._stores.get(backend) is store:
            del self._stores[backend]
        return written

    # -- the thread --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._changed:
                if not self._stores:
                    self._idle = True
                    self._changed.wait()  # until a step streams
                    self._idle = False
                # a poll, even if that step ended meanwhile: steps of the next trials
                # find the thread polling (no wake-up per step)
                self._changed.wait(POLL_SECONDS)
                now = time.monotonic()
                due = [(backend, store) for backend, store in self._stores.items() if _is_due(store, now)]
            for backend, store in due:
                try:
                    self._flush(backend, store)
                except Exception:  # never stop streaming the other steps
                    logger.exception("metric points of running trials could not be written")

    def _flush(self, backend: Backend, store: _Store) -> None:
        with store.lock:
            with self._changed:
                parts = [(r, count, len(r.metrics)) for r, count in store.written.items()]
            self._write(backend, store, parts)

    def _write(
        self, backend: Backend, store: _Store, parts: list[tuple[StepRecorder, int, int]]
    ) -> None:
        """Write points ``start:end`` of each recorder of ``parts``, in one batch (``store.lock`` held)."""
        began = time.monotonic()
        batch = RecordBatch()
        batch.metrics = [
            MetricPoint(trial_id, *point)
            for recorder, start, end in parts
            for trial_id in recorder.context.trial_ids
            for point in recorder.metrics[start:end]
        ]
        listings = {recorder: _listing(recorder) for recorder, _, _ in parts}
        listings = {r: listing for r, listing in listings.items() if listing[0] > store.listed.get(r, 0)}
        batch.artifacts = [
            ArtifactRecord(trial_id, kept.name, kept.path, kept.digest, kept.size, recorder.step)
            for recorder, (_, files) in listings.items()
            for trial_id in recorder.context.trial_ids
            for kept in files
        ]
        if batch and self._written(backend, store, batch):
            with self._changed:
                for recorder, _, end in parts:
                    if recorder in store.written:
                        store.written[recorder] = end
                        if recorder in listings:
                            store.listed[recorder] = listings[recorder][0]
        store.last_write = time.monotonic()
        store.not_before = store.last_write + (store.last_write - began) * (1 / BUSY_SHARE - 1)

    def _written(self, backend: Backend, store: _Store, batch: RecordBatch) -> bool:
        """Write ``batch``; whether the store has it (or a spool that re-sends it)."""
        try:
            if batch.artifacts:
                backend.write_batch(batch)
            else:
                backend.write_metrics(batch.metrics)
        except BatchSpooledError:
            return True  # the server is down: the spool re-sends them
        except (BackendError, OSError) as exc:
            if not store.failing:
                logger.warning(
                    "metric points of running trials could not be written to %r yet (%s): they are "
                    "written later, at the latest with their trial's record", backend, exc,
                )
            store.failing = True
            return False
        if store.failing:
            logger.warning("metric points of running trials are written to %r again", backend)
        store.failing = False
        return True


def _is_due(store: _Store, now: float) -> bool:
    if now < store.not_before:
        return False
    waiting = store.waiting()
    if waiting >= FLUSH_POINTS:
        return True
    return now - store.last_write >= FLUSH_SECONDS and (waiting > 0 or store.files_waiting())


def _listing(recorder: StepRecorder) -> tuple[int, list[Any]]:
    """The last listing of the artifact files ``recorder``'s step uploaded while it runs ((0, []): none)."""
    return recorder.artifacts.listed() if recorder.artifacts is not None else (0, [])


_stream = MetricStream()


def metric_stream() -> MetricStream:
    """The metric stream of this process."""
    return _stream
