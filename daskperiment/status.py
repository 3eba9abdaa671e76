"""The status of a trial, and the heartbeat by which a running trial is told from a killed one.

A trial is recorded when it starts (``running``) and again when it ends:
``finished``, ``failed``, or ``interrupted`` (Ctrl+C). The process running it
marks it alive every :data:`HEARTBEAT_SECONDS`; a trial whose heartbeat is
older than :data:`MISSED_BEATS` of its process's intervals was ``killed``
(SIGKILL, a crash, a machine lost) — any reader derives it, nothing is written.
Readers compare heartbeats with their own clock: the clocks of the machines
sharing a store must agree within that margin (30 s by default).
"""

from __future__ import annotations

RUNNING = "running"
FINISHED = "finished"
FAILED = "failed"
INTERRUPTED = "interrupted"
KILLED = "killed"
STATUSES = (RUNNING, FINISHED, FAILED, INTERRUPTED, KILLED)
"""Every status, in the order a trial may go through them."""

HEARTBEAT_SECONDS = 10.0
"""Seconds between two heartbeats of a process running trials (read when a trial starts and at each beat)."""
MISSED_BEATS = 3
"""Heartbeats a running trial may miss before readers show it as killed."""


def outcome_status(error: BaseException | None) -> str:
    """The status a trial ends with: ``finished`` without ``error``, ``interrupted`` for Ctrl+C, else ``failed``."""
    if error is None:
        return FINISHED
    return INTERRUPTED if isinstance(error, KeyboardInterrupt) else FAILED


def is_stale(heartbeat: float, interval: float, now: float) -> bool:
    """Whether a heartbeat at POSIX time ``heartbeat``, beating every ``interval`` s, is stale at ``now``."""
    return now - heartbeat > MISSED_BEATS * interval
