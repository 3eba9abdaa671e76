"""The benchmark worker: runs one job of one system in its own interpreter.

Started by the runner as ``python -c BOOTSTRAP job.json result.json`` with the
interpreter of the system under test. ``-c`` matters: the original daskperiment
runs trials by itself when its ``__main__`` is a file. The bootstrap imports
this package from its folder without putting the repository on ``sys.path``, so
a venv's own ``daskperiment`` (the original) is never shadowed by ours.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

BOOTSTRAP = """\
import importlib.util, sys
spec = importlib.util.spec_from_file_location(
    "benchmarks", {init!r}, submodule_search_locations=[{folder!r}])
module = importlib.util.module_from_spec(spec)
sys.modules["benchmarks"] = module
spec.loader.exec_module(module)
from benchmarks.worker import main
main(sys.argv[1], sys.argv[2])
"""


def bootstrap_code() -> str:
    """The ``python -c`` program that runs a job in any interpreter."""
    folder = Path(__file__).resolve().parent
    return BOOTSTRAP.format(init=str(folder / "__init__.py"), folder=str(folder))


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run ``job`` (system, workload, backend, uri, sizes, ...) and return its figures."""
    from benchmarks.adapters import Unavailable, load_adapter
    from benchmarks.config import sizes_from
    from benchmarks.workloads import ENGINE_WORKLOADS

    sizes = sizes_from(job["sizes"])
    try:
        adapter = load_adapter(job["system"])
        workload = job["workload"]
        args = (adapter, job["backend"], job.get("uri"))
        if workload in ("trial_overhead", "metric_logging", "step_cache", "physical_floor", *ENGINE_WORKLOADS):  # run(*args, sizes)
            module = importlib.import_module(f"benchmarks.workloads.{workload}")
            figures = module.run(*args, sizes)
        elif workload == "artifacts":
            from benchmarks.workloads import artifacts

            figures = artifacts.run(*args, sizes, job.get("s3"))
        elif workload == "concurrency":
            from benchmarks.workloads import concurrency

            figures = concurrency.run(*args, sizes, job["rendezvous"], job["worker"])
        elif workload == "concurrency_count":
            from benchmarks.workloads import concurrency

            figures = concurrency.count(*args)
        else:
            raise ValueError(f"unknown workload {workload!r}")
        adapter.close()
    except Unavailable as exc:
        return {"status": "unavailable", "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 - any failure of the system under test is a row
        traceback.print_exc()
        return {"status": "error", "reason": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
    return {"status": "ok", **figures}


def main(job_path: str, result_path: str) -> None:
    """Entry point of the bootstrap: read the job, write the result as JSON."""
    with open(job_path) as f:
        job = json.load(f)
    os.chdir(job["workdir"])
    result = run_job(job)
    with open(result_path, "w") as f:
        json.dump(result, f)
    sys.stdout.flush()
    os._exit(0)  # do not wait for daemon threads of the system under test
