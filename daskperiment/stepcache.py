"""The step cache: outputs of cached step calls, stored once and loaded by later trials.

An entry is written by the task that computed the output, as soon as the step
has finished (a trial killed later still leaves the outputs of its finished
steps, so running it again resumes where it stopped). Entries are content
addressed by their cache key (:mod:`daskperiment.cachekeys`): writing one twice
stores the same thing, whichever process does it. Small outputs are kept in
the experiment's store, larger ones in the artifact store. The cache is kept
under a size limit by evicting the least recently used entries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from daskperiment import serialization
from daskperiment.backend.base import Backend
from daskperiment.context import SavedPoint
from daskperiment.errors import BackendError, CacheError, UnreadableCacheError, UnreadableValueError
from daskperiment.records import CacheEntry, RecordBatch

if TYPE_CHECKING:
    from daskperiment.artifactstore import ArtifactStore

logger = logging.getLogger(__name__)

INLINE_LIMIT = 1 << 20
"""Outputs up to this many serialized bytes are kept in the store, larger ones in the artifact store."""

USE_RESOLUTION = 60.0
"""Seconds: an entry's last use is recorded again only when older than this (one write saved per hit)."""

DEFAULT_LIMIT = 10 << 30
"""Size limit of an experiment's cache unless set with :meth:`StepCache.set_limit` (10 GiB)."""

LIMIT_SETTING = "cache_limit_bytes"
ENFORCE_INTERVAL = 10.0
"""Seconds between two checks of the size limit by one process."""


class StepCache:
    """The step cache of one experiment.

    Parameters
    ----------
    backend : Backend
        The experiment's store (entries, small payloads, the size limit).
    artifacts : ArtifactStore
        Where payloads larger than ``inline_limit`` are kept (it connects
        only when one is written or read).
    inline_limit : int
        Largest payload kept in the store itself.

    Notes
    -----
    It pickles as its backend and artifact store: dask sends it to the tasks
    of cached steps, which write their entries where they run.
    """

    def __init__(
        self, backend: Backend, artifacts: "ArtifactStore", inline_limit: int = INLINE_LIMIT
    ) -> None:
        self.backend = backend
        self.artifacts = artifacts
        self.inline_limit = inline_limit
        self._enforced = 0.0
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        return StepCache, (self.backend, self.artifacts, self.inline_limit)

    # -- trials ---------------------------------------------------------------------
    def lookup(self, keys: Iterable[str]) -> dict[str, CacheEntry]:
        """The entries stored under ``keys`` (one store round trip); marks them used.

        The last use of an entry is recorded to :data:`USE_RESOLUTION`: entries
        used more recently are not written again.
        A store that cannot answer means no entry: the steps are computed.
        """
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        try:
            found = self.backend.load_cache_entries(wanted)
            now = time.time()
            stale = sorted(key for key, entry in found.items() if now - entry.last_used >= USE_RESOLUTION)
            if stale:
                self.backend.touch_cache_entries(stale, now)
        except BackendError as exc:
            logger.warning("the step cache could not be read (the steps are computed): %s", exc)
            return {}
        return found

    def entry(
        self, key: str, step: str, trial_id: int, output: Any, payload: bytes | None,
        metrics: Sequence[SavedPoint],
    ) -> CacheEntry | None:
        """The entry keeping ``output`` (serialized as ``payload`` if given), its large payload uploaded.

        A failure is logged and gives None: a trial is never lost because its
        step's output could not be cached.
        """
        try:
            data = payload if payload is not None else serialization.dumps(output)
            location = self.artifacts.put_bytes(data) if len(data) > self.inline_limit else None
        except Exception as exc:  # unserializable output, bucket unreachable
            logger.warning("the output of step %s was not cached: %s", step, exc)
            return None
        now = time.time()
        return CacheEntry(
            key=key, step=step, trial_id=trial_id, size=len(data),
            payload=None if location else data, location=location,
            metrics=tuple((key, epoch, value) for key, epoch, value, _ in metrics), created=now, last_used=now,
        )

    def store(self, entry: CacheEntry) -> None:
        """Write ``entry`` now (a failure is logged: the trial goes on)."""
        try:
            self.backend.write_batch(RecordBatch(cache_entries=[entry]))
        except Exception as exc:
            logger.warning("the output of step %s was not cached: %s", entry.step, exc)

    def payload(self, entry: CacheEntry) -> bytes:
        """The serialized output of ``entry``.

        Raises
        ------
        CacheError
            When the entry has disappeared (evicted or cleared meanwhile), or
            its content cannot be read (a damaged entry is removed, so that
            running the trial again computes the step).
        """
        try:
            data = (
                self.artifacts.get_bytes(entry.location)
                if entry.location is not None
                else self.backend.load_cache_payload(entry.key)
            )
        except BackendError as exc:
            raise CacheError(
                f"the cached output of step {entry.step!r} (from trial {entry.trial_id}) could "
                f"not be read: {exc}. Run the trial again, or with cache=False to compute it"
            ) from exc
        except Exception as exc:  # a damaged or missing object of the artifact store
            raise self._damaged(entry, exc) from exc
        if data is None:
            raise CacheError(
                f"the cached output of step {entry.step!r} (from trial {entry.trial_id}) was "
                "removed while the trial started (evicted or cleared); run the trial again"
            )
        return data

    def output(self, data: bytes, entry: CacheEntry) -> Any:
        """The output ``data`` (the payload of ``entry``) holds, deserialized.

        Raises
        ------
        UnreadableCacheError
            When it may not be loaded here (signed with another key, an older
            store's pickle) or its class cannot be imported here: the entry is kept.
        CacheError
            When it cannot be deserialized otherwise (the entry is removed).
        """
        try:
            return serialization.load_value(data)
        except UnreadableValueError as exc:
            raise UnreadableCacheError(
                f"the cached output of step {entry.step!r} (from trial {entry.trial_id}) cannot be "
                f"used here: {exc}. Or compute the step again: run the trial with cache=False "
                "(--no-cache), or clear the entry (`daskperiment cache ID --clear STEP`)"
            ) from None
        except Exception as exc:
            raise self._damaged(entry, exc) from exc

    def _damaged(self, entry: CacheEntry, error: Exception) -> CacheError:
        """Remove a damaged entry (best effort); the error saying so."""
        try:
            self.backend.delete_cache_entries([entry.key])
        except BackendError as exc:
            logger.warning("the damaged cache entry of step %s could not be removed: %s", entry.step, exc)
        return CacheError(
            f"the cached output of step {entry.step!r} (from trial {entry.trial_id}) cannot be "
            f"read back ({type(error).__name__}: {error}); the entry was removed: run the trial "
            "again to compute the step"
        )

    # -- size -----------------------------------------------------------------------
    def entries(self) -> list[CacheEntry]:
        """Every entry, without payload, least recently used first."""
        return self.backend.cache_entries()

    def limit(self) -> int:
        """The size limit in bytes."""
        saved = self.backend.load_setting(LIMIT_SETTING)
        return DEFAULT_LIMIT if saved is None else int(saved)

    def set_limit(self, limit: int | str) -> int:
        """Set the size limit (bytes, or a text such as ``"2GB"``); evict down to it now.

        Raises
        ------
        ValueError
            For a size that is not a non-negative number of bytes.
        """
        nbytes = parse_size(limit)
        self.backend.save_setting(LIMIT_SETTING, str(nbytes))
        self.evict(nbytes)
        return nbytes

    def enforce_limit(self) -> None:
        """Evict down to the size limit, at most once every few seconds per process."""
        now = time.monotonic()
        with self._lock:
            if now - self._enforced < ENFORCE_INTERVAL:
                return
            self._enforced = now
        try:
            self.evict(self.limit())
        except BackendError as exc:
            logger.warning("the step cache's size could not be checked: %s", exc)

    def evict(self, limit: int) -> list[CacheEntry]:
        """Remove least recently used entries until the cache holds at most ``limit`` bytes."""
        entries = self.backend.cache_entries()
        excess = sum(entry.size for entry in entries) - limit
        evicted = []
        for entry in entries:
            if excess <= 0:
                break
            evicted.append(entry)
            excess -= entry.size
        if evicted:
            self.remove(evicted, kept=entries[len(evicted):])
            logger.info("evicted %d step cache entries to stay under %d bytes", len(evicted), limit)
        return evicted

    def clear(self, steps: Sequence[str] | None = None) -> list[CacheEntry]:
        """Remove every entry, or those of the named steps; return what was removed."""
        entries = self.backend.cache_entries()
        removed = [e for e in entries if steps is None or e.step in steps]
        self.remove(removed, kept=[e for e in entries if not (steps is None or e.step in steps)])
        return removed

    def remove(self, entries: Sequence[CacheEntry], kept: Sequence[CacheEntry]) -> None:
        """Delete ``entries``, and their large payloads that no ``kept`` entry shares."""
        if not entries:
            return
        self.backend.delete_cache_entries([entry.key for entry in entries])
        shared = {entry.location for entry in kept}
        orphans = sorted({e.location for e in entries if e.location is not None} - shared)
        if orphans:
            self.artifacts.delete(orphans)


def parse_size(size: object) -> int:
    """A size in bytes from an int or a text such as ``"500MB"`` or ``"2 GiB"``.

    Raises
    ------
    ValueError
        When it is not a non-negative size.
    """
    from dask.utils import parse_bytes

    try:
        if isinstance(size, bool):
            raise TypeError
        nbytes = parse_bytes(size) if isinstance(size, str) else int(size)  # type: ignore[arg-type]
        if isinstance(size, float) and not size.is_integer():
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(
            f"invalid cache size {size!r}: give a number of bytes or a text such as '500MB' or '2GiB'"
        ) from None
    if nbytes < 0:
        raise ValueError(f"invalid cache size {size!r}: a size cannot be negative")
    return nbytes
