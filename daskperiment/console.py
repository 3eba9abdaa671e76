"""Capturing what steps print, without hiding it from the console.

``sys.stdout`` and ``sys.stderr`` are wrapped (once, and again if something
replaces them) by a :class:`Tee` that writes everything through and also
appends it to the buffer of the step running in the current thread, if any
(a context variable: two steps running at once in two threads keep apart).
Output of other threads and of child processes is not captured.
"""

from __future__ import annotations

import contextvars
import io
import sys
import threading
from typing import Any, TextIO

_buffer: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("daskperiment_output", default=None)
_install_lock = threading.Lock()


class Tee(io.TextIOBase):
    """A text stream writing to ``stream`` and to the capturing step's buffer."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        buffer = _buffer.get()
        if buffer is not None:
            buffer.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _install() -> None:
    if isinstance(sys.stdout, Tee) and isinstance(sys.stderr, Tee):  # every step: no lock when installed
        return
    with _install_lock:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, Tee):
                setattr(sys, name, Tee(stream))


class CapturedOutput:
    """``with CapturedOutput() as printed``: within the block, what this thread prints is also
    appended to ``printed``.

    A class rather than a generator context manager: it is entered around every step.
    """

    __slots__ = ("_buffer", "_reset")

    def __init__(self) -> None:
        self._buffer: list[str] = []

    def __enter__(self) -> list[str]:
        _install()
        self._reset = _buffer.set(self._buffer)
        return self._buffer

    def __exit__(self, *exc: object) -> None:
        _buffer.reset(self._reset)
