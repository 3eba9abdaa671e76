"""Workload 4: one trial of a small script run as a new process (``python script.py a=1 b=2``).

The wall time includes interpreter start, imports, environment capture and
the trial. Every system runs the equivalent script in its own interpreter, in
one fresh folder per system; the first run (which creates the store) is a
warm-up, then ``cli_repeats`` rounds run each system once (interleaved, so
load from other processes hits all alike); the median is reported. This
workload runs in the runner (it starts the processes itself).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.workloads import median

_DASKPERIMENT = '''\
{preamble}import daskperiment

ex = daskperiment.Experiment(id="cli_demo"{backend})
a = ex.parameter("a")
b = ex.parameter("b")


@ex
def prepare(a, b):
    return a + b


@ex.result
def score(s):
    for i in range(10):
        ex.save_metric("m%d" % i, epoch=0, value=float(s + i))
    return s * 0.5


score(prepare(a, b))  # script mode: this call runs one trial with a, b from argv
'''

_ORIGINAL_PREAMBLE = '''\
try:  # daskperiment 0.5.0 needs these submodules imported with current pymongo
    import pymongo.mongo_client, pymongo.database  # noqa: E401,F401
except ImportError:
    pass
'''

_FLOOR = '''\
import sys

from dask import delayed

params = dict(arg.split("=", 1) for arg in sys.argv[1:])
metrics = []


def prepare(a, b):
    return a + b


def score(s):
    for i in range(10):
        metrics.append(("m%d" % i, 0, float(s + i)))
    return s * 0.5


delayed(score)(delayed(prepare)(int(params["a"]), int(params["b"]))).compute()
'''

_MLFLOW = '''\
import os
import sys
import time

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
import mlflow
from dask import delayed
from mlflow.entities import Metric

params = dict(arg.split("=", 1) for arg in sys.argv[1:])
mlflow.set_tracking_uri("sqlite:///" + os.path.abspath("mlflow.db"))
mlflow.set_experiment("cli_demo")
client = mlflow.tracking.MlflowClient()

with mlflow.start_run() as run:
    mlflow.log_params(params)

    def prepare(a, b):
        return a + b

    def score(s):
        now = int(time.time() * 1000)
        client.log_batch(run.info.run_id, metrics=[Metric("m%d" % i, float(s + i), now, 0) for i in range(10)])
        return s * 0.5

    delayed(score)(delayed(prepare)(int(params["a"]), int(params["b"]))).compute()
'''

_SACRED = '''\
from dask import delayed
from sacred import Experiment
from sacred.observers import FileStorageObserver

ex = Experiment("cli_demo")
ex.observers.append(FileStorageObserver("sacred_runs"))


@ex.config
def config():
    a = 1
    b = 2


@ex.automain
def main(_run, a, b):
    def prepare(a, b):
        return a + b

    def score(s):
        for i in range(10):
            _run.log_scalar("m%d" % i, float(s + i), 0)
        return s * 0.5

    return delayed(score)(delayed(prepare)(a, b)).compute()
'''


def script_for(system: str) -> tuple[str, list[str]]:
    """Source of the script of ``system`` and its command-line arguments."""
    if system == "ours":
        return _DASKPERIMENT.format(preamble="", backend=""), ["a=1", "b=2"]
    if system == "original":
        return _DASKPERIMENT.format(preamble=_ORIGINAL_PREAMBLE, backend=""), ["a=1", "b=2"]
    if system == "floor":
        return _FLOOR, ["a=1", "b=2"]
    if system == "mlflow":
        return _MLFLOW, ["a=1", "b=2"]
    if system == "sacred":
        return _SACRED, ["with", "a=1", "b=2"]
    raise KeyError(system)


def _once(python: str, env: dict[str, str], folder: Path, arguments: list[str],
          timeout: float) -> float | str:
    """One run of ``folder/script.py``: its wall time, or the error text."""
    started = time.perf_counter()
    try:
        done = subprocess.run([python, str(folder / "script.py"), *arguments], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    wall = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
        return f"exit {done.returncode}: {tail[0][:200]}"
    return wall


def run(systems: dict[str, tuple[str, dict[str, str]]], scratch: Path, repeats: int,
        timeout: float, log=print) -> dict[str, dict[str, Any]]:
    """Time the script of every system (name -> (python, env)), interleaved.

    Each system gets its own folder and a warm-up run (which creates the store
    and fills caches); then ``repeats`` rounds run every system once each, so
    that load from other processes on the machine is shared evenly.
    """
    results: dict[str, dict[str, Any]] = {}
    plans = {}
    for system, (python, env) in systems.items():
        folder = scratch / f"cli-{system}"
        folder.mkdir(parents=True, exist_ok=True)
        source, arguments = script_for(system)
        (folder / "script.py").write_text(source)
        outcome = _once(python, env, folder, arguments, timeout)
        if isinstance(outcome, str):
            results[system] = {"status": "error", "reason": outcome}
            log(f"command_line: {system} -> error {outcome}")
        else:
            plans[system] = (python, env, folder, arguments)
            results[system] = {"status": "ok", "all_seconds": [], "warmup_seconds": outcome}
    for _ in range(repeats):
        for system, (python, env, folder, arguments) in plans.items():
            if results[system]["status"] != "ok":
                continue
            outcome = _once(python, env, folder, arguments, timeout)
            if isinstance(outcome, str):
                results[system] = {"status": "error", "reason": outcome}
            else:
                results[system]["all_seconds"].append(outcome)
    for system, result in results.items():
        if result["status"] == "ok":
            result["median_seconds"] = median(result["all_seconds"])
            result["runs"] = len(result["all_seconds"])
            log(f"command_line: {system} -> {result['median_seconds']:.3f} s")
    return results


def python_env(extra_path: str | None) -> dict[str, str]:
    """The environment for a system's processes: ``extra_path`` first on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    if extra_path:
        env["PYTHONPATH"] = extra_path
    return env
