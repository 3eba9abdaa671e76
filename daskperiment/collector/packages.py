"""Installed Python distributions, read from their metadata (pip is never run)."""

from __future__ import annotations

import functools
import importlib.metadata
import re
from typing import Any

from daskperiment.collector.base import Collector


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def installed_packages() -> list[dict[str, str]]:
    """Every distribution visible on ``sys.path`` (read once per process).

    When a distribution is found more than once, the first one wins, as it
    does for imports.

    Returns
    -------
    list of dict of str to str
        ``name``, ``version`` and ``location`` of each distribution, sorted
        by lowercase name.
    """
    found: dict[str, dict[str, str]] = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.name
        if not name or _normalized(name) in found:
            continue
        found[_normalized(name)] = {
            "name": name,
            "version": distribution.version,
            "location": str(distribution.locate_file("")),
        }
    return sorted(found.values(), key=lambda package: package["name"].lower())


class PackagesCollector(Collector):
    """Name, version and location of every installed Python package."""

    category = "packages"

    def collect(self) -> dict[str, Any]:
        """Gather the installed packages.

        Returns
        -------
        dict of str to Any
            ``packages``: the list returned by :func:`installed_packages`.
        """
        return {"packages": [dict(package) for package in installed_packages()]}
