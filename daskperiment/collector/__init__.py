"""Capture of the environment a trial runs in: platform, CPU, Python, packages, git, ...

Collectors only gather plain JSON-serializable data; storing it is the
business of the backends.
"""

from daskperiment.collector.base import Collector
from daskperiment.collector.environment import (
    DEFAULT_COLLECTORS,
    collect_environment,
    diff_environments,
    diff_packages,
    environment_future,
    environment_lines,
    environment_text,
    python_packages,
)

__all__ = [
    "DEFAULT_COLLECTORS",
    "Collector",
    "collect_environment",
    "diff_environments",
    "diff_packages",
    "environment_future",
    "environment_lines",
    "environment_text",
    "python_packages",
]
