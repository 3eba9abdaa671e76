"""Environments stored as content-addressed blobs, and the fingerprint of this process's."""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
from typing import Any

from dask.base import tokenize

from daskperiment.records import Blob

_DISTRIBUTION_SUFFIXES = (".dist-info", ".egg-info")


def environment_blob(environment: dict[str, Any]) -> Blob:
    """The blob of a captured environment (JSON, categories in collection order)."""
    return Blob.of(json.dumps(environment, default=str).encode("utf-8"))


def load_environment(blob: Blob) -> dict[str, Any]:
    """The environment stored in ``blob``."""
    return json.loads(blob.content)


@functools.cache
def environment_fingerprint() -> str:
    """A cheap token that differs whenever this process's environment may differ.

    Made of the host, the interpreter, its version and the installed
    distributions (their metadata folders name each one with its version), so
    processes of one machine and one installation (the ``"processes"``
    scheduler, a local cluster) share it without capturing anything.
    """
    distributions = sorted(
        entry.name
        for folder in sys.path
        if os.path.isdir(folder)
        for entry in os.scandir(folder)
        if entry.name.endswith(_DISTRIBUTION_SUFFIXES)
    )
    return tokenize(platform.node(), sys.executable, sys.version, distributions)
