"""Operating system, machine, host and working directory."""

from __future__ import annotations

import os
import platform
import socket
from typing import Any

from daskperiment.collector.base import Collector


class PlatformCollector(Collector):
    """The operating system and the host a trial runs on."""

    category = "platform"
    labels = {
        "platform": "Platform Information",
        "system": "Operating System",
        "release": "OS Release",
        "machine": "Machine",
        "hostname": "Device Name",
        "working_directory": "Working Directory",
    }

    def collect(self) -> dict[str, Any]:
        """Gather the platform facts.

        Returns
        -------
        dict of str to Any
            ``platform``, ``system``, ``release``, ``machine``, ``hostname``
            and ``working_directory``.
        """
        return {
            "platform": platform.platform(),
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "hostname": socket.gethostname(),
            "working_directory": os.getcwd(),
        }
