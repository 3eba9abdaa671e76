"""daskperiment's folder of the user's machine: where its caches go."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir() -> Path:
    """Directory of daskperiment's on-disk caches (environment facts, downloaded artifacts).

    Returns
    -------
    pathlib.Path
        ``$DASKPERIMENT_CACHE_DIR`` if set, else the platform's user cache
        folder (:func:`platformdirs.user_cache_dir`): ``$XDG_CACHE_HOME/daskperiment``
        or ``~/.cache/daskperiment`` on Linux, ``~/Library/Caches/daskperiment`` on
        macOS, ``%LOCALAPPDATA%\\daskperiment\\Cache`` on Windows.
    """
    configured = os.environ.get("DASKPERIMENT_CACHE_DIR")
    return Path(configured) if configured else Path(platformdirs.user_cache_dir("daskperiment"))
