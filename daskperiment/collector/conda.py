"""The conda installation, as reported by ``conda info --json``."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from daskperiment.collector.base import Collector

TIMEOUT = 30.0
"""Seconds ``conda info`` may take before collection gives up."""


class CondaCollector(Collector):
    """Everything ``conda info --json`` reports (active environment, channels, ...)."""

    category = "conda"

    def available(self) -> bool:
        """Whether a ``conda`` executable is on the ``PATH``.

        Returns
        -------
        bool
            ``True`` when conda can be run.
        """
        return shutil.which("conda") is not None

    def collect(self) -> dict[str, Any]:
        """Run ``conda info --json``.

        Returns
        -------
        dict of str to Any
            The parsed JSON output.

        Raises
        ------
        subprocess.SubprocessError
            When conda fails or takes longer than :data:`TIMEOUT` seconds.
        """
        executable = shutil.which("conda") or "conda"
        completed = subprocess.run(
            [executable, "info", "--json"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        )
        return json.loads(completed.stdout)
