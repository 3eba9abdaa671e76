"""A small on-disk cache for environment facts that are slow to obtain and rarely change."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

from daskperiment.userdirs import cache_dir

logger = logging.getLogger(__name__)


def _cache_file(name: str, key: str) -> Path:
    return cache_dir() / f"{name}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:16]}.json"


def _read(name: str, key: str) -> dict[str, Any] | None:
    try:
        cached = json.loads(_cache_file(name, key).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, RuntimeError, ValueError) as exc:
        logger.debug("ignoring the unreadable %s cache: %s", name, exc)
        return None
    if not isinstance(cached, dict) or cached.get("key") != key or not isinstance(cached.get("value"), dict):
        return None
    return cached["value"]


def _write(name: str, key: str, value: dict[str, Any]) -> None:
    temporary: Path | None = None
    try:
        path = _cache_file(name, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_text(json.dumps({"key": key, "value": value}), encoding="utf-8")
        os.replace(temporary, path)
    except (OSError, RuntimeError, TypeError, ValueError) as exc:
        logger.debug("%s not cached: %s", name, exc)
        if temporary is not None:
            temporary.unlink(missing_ok=True)


def cached(name: str, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``compute()``, or its result cached on disk under ``name`` and ``key``.

    A cache that cannot be read or written is ignored (the value is computed).

    Parameters
    ----------
    name : str
        What is cached (part of the file name), e.g. ``"cpuinfo"``.
    key : str
        Everything the value depends on; another key is another entry.
    compute : callable
        Makes the JSON-serializable value when it is not cached.
    """
    value = _read(name, key)
    if value is None:
        value = compute()
        _write(name, key, value)
    return value
