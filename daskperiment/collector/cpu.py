"""CPU description from py-cpuinfo, cached on disk because it is slow to obtain."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import platform
import socket
import threading
from pathlib import Path
from typing import Any

from daskperiment.collector.base import Collector

logger = logging.getLogger(__name__)

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


def cache_dir() -> Path:
    """Directory of daskperiment's on-disk caches.

    Returns
    -------
    pathlib.Path
        ``$DASKPERIMENT_CACHE_DIR`` if set, else ``~/.cache/daskperiment``.
    """
    configured = os.environ.get("DASKPERIMENT_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "daskperiment"


def _host_key() -> str:
    return json.dumps([socket.gethostname(), platform.machine(), platform.platform()])


def _cache_file(key: str) -> Path:
    return cache_dir() / f"cpuinfo-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:16]}.json"


def _read_cache(key: str) -> dict[str, Any] | None:
    try:
        cached = json.loads(_cache_file(key).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, RuntimeError, ValueError) as exc:
        logger.debug("ignoring unreadable cpu info cache: %s", exc)
        return None
    if not isinstance(cached, dict) or cached.get("key") != key or not isinstance(cached.get("info"), dict):
        return None
    return cached["info"]


def _write_cache(key: str, info: dict[str, Any]) -> None:
    temporary: Path | None = None
    try:
        path = _cache_file(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_text(json.dumps({"key": key, "info": info}), encoding="utf-8")
        os.replace(temporary, path)
    except (OSError, RuntimeError, TypeError, ValueError) as exc:
        logger.debug("cpu info not cached: %s", exc)
        if temporary is not None:
            temporary.unlink(missing_ok=True)


def cpu_info() -> dict[str, Any]:
    """The full result of ``cpuinfo.get_cpu_info()``, from the disk cache when possible.

    The cache holds one JSON file per hostname, machine and platform string;
    when it cannot be read or written the information is simply recomputed.

    Returns
    -------
    dict of str to Any
        Everything py-cpuinfo reports about this host's CPU.
    """
    key = _host_key()
    info = _read_cache(key)
    if info is None:
        import cpuinfo

        info = cpuinfo.get_cpu_info()
        _write_cache(key, info)
    return info


class CPUCollector(Collector):
    """Brand, architecture, core count and frequency of the CPU."""

    category = "cpu"
    labels = {
        "brand": "CPU Brand",
        "vendor": "CPU Vendor",
        "arch": "CPU Architecture",
        "bits": "CPU Bits",
        "count": "CPU Count",
        "hz_advertised": "CPU Advertised Frequency",
        "hz_actual": "CPU Actual Frequency",
        "l2_cache_size": "CPU L2 Cache Size",
        "l3_cache_size": "CPU L3 Cache Size",
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
