"""CPU description from py-cpuinfo, cached on disk because it is slow to obtain."""

from __future__ import annotations

import importlib.util
import json
import platform
import socket
from typing import Any

from daskperiment.collector.base import Collector
from daskperiment.collector.diskcache import cached

# Collected key -> key of ``cpuinfo.get_cpu_info()``.
_FIELDS = {
    "brand": "brand_raw",
    "vendor": "vendor_id_raw",
    "arch": "arch",
    "bits": "bits",
    "count": "count",
    "hz_advertised": "hz_advertised_friendly",
    "hz_actual": "hz_actual_friendly",
    "l2_cache_size": "l2_cache_size",
    "l3_cache_size": "l3_cache_size",
}


def _host_key() -> str:
    return json.dumps([socket.gethostname(), platform.machine(), platform.platform()])


def cpu_info() -> dict[str, Any]:
    """The full result of ``cpuinfo.get_cpu_info()``, from the disk cache when possible.

    The cache holds one JSON file per hostname, machine and platform string;
    when it cannot be read or written the information is simply recomputed.

    Returns
    -------
    dict of str to Any
        Everything py-cpuinfo reports about this host's CPU.
    """
    def compute() -> dict[str, Any]:
        import cpuinfo

        return cpuinfo.get_cpu_info()

    return cached("cpuinfo", _host_key(), compute)


class CPUCollector(Collector):
    """Brand, architecture, core count and frequency of the CPU."""

    category = "cpu"
    labels = {
        "brand": "Device CPU Brand",
        "vendor": "Device CPU Vendor",
        "arch": "Device CPU Architecture",
        "bits": "Device CPU Bits",
        "count": "Device CPU Count",
        "hz_advertised": "Device CPU Advertised Frequency",
        "hz_actual": "Device CPU Actual Frequency",
        "l2_cache_size": "Device CPU L2 Cache Size",
        "l3_cache_size": "Device CPU L3 Cache Size",
    }

    def available(self) -> bool:
        """Whether py-cpuinfo is installed.

        Returns
        -------
        bool
            ``True`` when the ``cpuinfo`` module can be imported.
        """
        return importlib.util.find_spec("cpuinfo") is not None

    def collect(self) -> dict[str, Any]:
        """Gather the CPU facts py-cpuinfo knows about.

        Returns
        -------
        dict of str to Any
            A subset of ``brand``, ``vendor``, ``arch``, ``bits``, ``count``,
            ``hz_advertised``, ``hz_actual``, ``l2_cache_size`` and ``l3_cache_size``.
        """
        info = cpu_info()
        return {name: info[source] for name, source in _FIELDS.items() if source in info}
