"""Heartbeats of running trials: one thread per process marks them alive in their stores.

Every :data:`daskperiment.status.HEARTBEAT_SECONDS`, the thread sends each
store holding trials this process runs one :meth:`Backend.beat_trials` (one
round trip per store, whatever the number of trials). Readers show a started
trial whose heartbeat is stale as killed. The thread idles while no trial runs,
waking once per interval: a trial starting is not a reason to wake it (its start
is its first beat, and the idle thread wakes within an interval of it), so a
loop of short trials never switches threads — unless the interval was made
shorter than the one the thread sleeps.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable

from daskperiment import status
from daskperiment.backend.base import Backend

logger = logging.getLogger(__name__)


class Heartbeats:
    """The trials this process runs, by store, and the thread beating for them."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._running: dict[Backend, set[int]] = {}
        self._failing: set[Backend] = set()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._last_beat = 0.0
        """When the trials running were last marked alive (monotonic clock): a start counts as a beat."""
        self._wake_at = 0.0
        """When the thread wakes up next, unless notified."""

    def add(self, backend: Backend, trial_ids: Iterable[int]) -> None:
        """Beat for ``trial_ids`` of ``backend`` from now on (they were started with a heartbeat)."""
        with self._changed:
            if not self._running:
                self._last_beat = time.monotonic()
            self._running.setdefault(backend, set()).update(trial_ids)
            if self._thread is None or self._pid != os.getpid():  # none yet, or forked
                self._pid = os.getpid()
                self._wake_at = 0.0
                self._thread = threading.Thread(target=self._run, name="daskperiment-heartbeat", daemon=True)
                self._thread.start()
            elif self._wake_at > self._last_beat + status.HEARTBEAT_SECONDS:
                self._changed.notify()  # it sleeps longer than the (shortened) interval

    def discard(self, backend: Backend, trial_ids: Iterable[int]) -> None:
        """Stop beating for ``trial_ids`` of ``backend`` (their end is recorded, or cannot be)."""
        with self._changed:
            running = self._running.get(backend)
            if running is None:
                return
            running.difference_update(trial_ids)
            if not running:
                del self._running[backend]

    def _run(self) -> None:
        while True:
            with self._changed:
                interval = status.HEARTBEAT_SECONDS
                now = time.monotonic()
                # idle: the next trial starts with a heartbeat of its own, within an interval of now
                remaining = self._last_beat + interval - now if self._running else interval
                if remaining > 0:
                    self._wake_at = now + remaining
                    self._changed.wait(remaining)  # woken early by a start shortening the interval
                    continue
                due = [(backend, sorted(ids)) for backend, ids in self._running.items()]
                self._last_beat = time.monotonic()
            now = time.time()
            for backend, ids in due:
                self._beat(backend, ids, now)

    def _beat(self, backend: Backend, trial_ids: list[int], now: float) -> None:
        try:
            backend.beat_trials(trial_ids, now)
        except Exception as exc:  # never stop beating: the store may come back
            if backend not in self._failing:
                self._failing.add(backend)
                logger.warning(
                    "the heartbeat of running trials %s could not be written (%s: %s): readers show "
                    "them as killed if this lasts %d heartbeats; beating on",
                    _listed(trial_ids), type(exc).__name__, exc, status.MISSED_BEATS,
                )
            return
        if backend in self._failing:
            self._failing.discard(backend)
            logger.warning("the heartbeat of running trials %s is written again", _listed(trial_ids))


def _listed(trial_ids: list[int]) -> str:
    shown = ", ".join(map(str, trial_ids[:10]))
    return shown + (f" and {len(trial_ids) - 10} more" if len(trial_ids) > 10 else "")


_heartbeats = Heartbeats()


def heartbeats() -> Heartbeats:
    """The heartbeats of this process."""
    return _heartbeats
