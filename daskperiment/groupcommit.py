"""Group commit: items handed over while a write is under way are written together by the next one."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
_CLOSE = object()


class GroupCommit(Generic[T]):
    """A thread that writes the items it is given, all those waiting in one call.

    When items arrive faster than they are written (trials of a sweep loaded
    from the cache finish in microseconds), each write takes every item that
    arrived during the previous one, so the per-write cost (a transaction, a
    round trip) is paid once per group instead of once per item. An item
    arriving at an idle writer is written at once: nothing waits for a timer.

    Parameters
    ----------
    write : callable
        Writes a sequence of items (in the order they were given).
    failed : callable
        Called with the items of a write that raised, to write them another way
        (e.g. one by one) and report those that still cannot be written.
    after : callable
        Called with each item once it is written (or its write failed).
    name : str
        Name of the thread.
    """

    def __init__(
        self,
        write: Callable[[Sequence[T]], None],
        failed: Callable[[Sequence[T]], None],
        after: Callable[[T], None],
        name: str,
    ) -> None:
        self._write = write
        self._failed = failed
        self._after = after
        self._items: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        """Hand ``item`` over to be written."""
        self._items.put(item)

    def close(self) -> None:
        """Write every item handed over, then stop the thread."""
        self._items.put(_CLOSE)
        self._thread.join()

    def _run(self) -> None:
        closing = False
        while not closing:
            group = [self._items.get()]
            while True:
                try:
                    group.append(self._items.get_nowait())
                except queue.Empty:
                    break
            if _CLOSE in group:
                closing = True
                group = [item for item in group if item is not _CLOSE]
            if group:
                self._commit(group)

    def _commit(self, group: list[T]) -> None:
        try:
            self._write(group)
        except Exception:
            self._failed(group)
        for item in group:
            try:
                self._after(item)
            except Exception:  # never stop writing the others
                logger.exception("after writing %r", item)
