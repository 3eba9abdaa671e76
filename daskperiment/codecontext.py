"""Code context: the source of every step, as one text per trial, and its diffs."""

from __future__ import annotations

import difflib
import hashlib
import inspect
import logging
import textwrap
import threading
from typing import Callable

from dask.base import tokenize

logger = logging.getLogger(__name__)


def source_of(func: Callable) -> str | None:
    """Source text of ``func`` (decorators included), or None when Python cannot find it."""
    try:
        return textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return None


def unavailable_source(func: Callable) -> str:
    """What the code context shows for a function whose source cannot be found."""
    name = getattr(func, "__qualname__", repr(func))
    return f"# source of {name} is not available (defined by exec or in a shell without history?)\n"


def digest_of(text: str) -> str:
    """SHA-256 digest of a text, as used for code blobs."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class CodeContext:
    """The latest source of each step of an experiment, in the order they were defined."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: dict[str, str] = {}
        self._snapshot: tuple[str, str] | None = None

    def register_step(self, name: str, func: Callable) -> str:
        """Record the source of step ``func``; return the digest identifying its code (for purity)."""
        source = source_of(func)
        if source is None:
            self.register(name, unavailable_source(func))
            return tokenize(func)  # the compiled code stands in for the missing text
        self.register(name, source)
        return digest_of(source)

    def register(self, name: str, source: str) -> None:
        """Record (or replace, when a step is redefined) the source of step ``name``.

        A step redefined with other code (a re-run notebook cell) is warned
        about at once, as 0.5 did: ``Code context has been changed: name``,
        then one WARNING per line of the unified diff of that step.
        """
        source = source if source.endswith("\n") else source + "\n"
        with self._lock:
            previous = self._sources.get(name)
            self._sources[name] = source
            self._snapshot = None
        if previous is not None and previous != source:
            logger.warning("Code context has been changed: %s", name)
            for line in step_diff_lines(previous, source):
                logger.warning("%s", line)

    def snapshot(self) -> tuple[str, str]:
        """``(digest, text)`` of the code of all steps; the text is a Python file."""
        with self._lock:
            if self._snapshot is None:
                text = "\n\n".join(self._sources.values())
                self._snapshot = (digest_of(text), text)
            return self._snapshot


def step_diff_lines(old: str, new: str) -> list[str]:
    """Lines of the unified diff of two versions of one step, from the first ``@@`` hunk header."""
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="")
    return [line for line in lines if not line.startswith(("---", "+++"))]


def code_diff(old: str, new: str, old_label: str, new_label: str) -> str:
    """Unified diff of two code texts ("" when equal)."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=old_label,
            tofile=new_label,
        )
    )
