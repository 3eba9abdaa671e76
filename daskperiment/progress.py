"""A text progress bar of trials done out of a total, for sweeps asked to show one."""

from __future__ import annotations

import sys
import time
from typing import TextIO

REDRAW_SECONDS = 0.1


class TrialProgressBar:
    """``[#####     ] 37/100 trials, 2 failed | 12.3s`` on one line, redrawn as trials finish.

    Parameters
    ----------
    total : int
        Number of trials.
    stream : file, optional
        Where to draw (default ``sys.stderr``).
    width : int, default 30
        Characters of the bar.
    """

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self._stream = stream if stream is not None else sys.stderr
        self._width = width
        self._started = time.perf_counter()
        self._drawn = 0.0

    def update(self, failed: bool = False) -> None:
        """Count one more finished trial."""
        self.done += 1
        self.failed += failed
        now = time.perf_counter()
        if now - self._drawn >= REDRAW_SECONDS or self.done == self.total:
            self._draw(now)

    def close(self) -> None:
        """Draw the final state (unless already drawn) and end the line."""
        if self.done != self.total:
            self._draw(time.perf_counter())
        self._stream.write("\n")
        self._stream.flush()

    def _draw(self, now: float) -> None:
        filled = self._width * self.done // max(self.total, 1)
        failed = f", {self.failed} failed" if self.failed else ""
        self._stream.write(
            f"\r[{'#' * filled}{' ' * (self._width - filled)}] {self.done}/{self.total} trials"
            f"{failed} | {now - self._started:.1f}s"
        )
        self._stream.flush()
        self._drawn = now
