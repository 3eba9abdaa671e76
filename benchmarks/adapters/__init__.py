"""Systems under test, one adapter each (imported lazily: each runs in its own venv)."""

from __future__ import annotations

import importlib

from benchmarks.adapters.base import Adapter, Unavailable

ADAPTERS: dict[str, str] = {
    "floor": "benchmarks.adapters.floor:FloorAdapter",
    "ours": "benchmarks.adapters.daskperiment_api:OursAdapter",
    "original": "benchmarks.adapters.daskperiment_api:OriginalAdapter",
    "mlflow": "benchmarks.adapters.mlflow_peer:MlflowAdapter",
    "sacred": "benchmarks.adapters.sacred_peer:SacredAdapter",
}
"""System name -> ``module:class`` of its adapter."""


def load_adapter(system: str) -> Adapter:
    """A new adapter of ``system`` (imports only that system's module)."""
    module, _, cls = ADAPTERS[system].partition(":")
    return getattr(importlib.import_module(module), cls)()


__all__ = ["ADAPTERS", "Adapter", "Unavailable", "load_adapter"]
