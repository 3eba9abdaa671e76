"""Workload 12: the first trial of a fresh process, ours against plain dask.

Each round starts one new Python process per system, in a new folder (ours
then creates its store there), running workload 1's 2-step graph once: ours
as ``result.compute()`` of an experiment, plain dask as
``dask.delayed(score)(dask.delayed(prepare)(a, b)).compute()``. The script
reports the seconds of its imports and definitions, the seconds of its first
trial (the ``compute()`` call), and whether numpy was imported by then; the
runner times the whole process. After a warm-up process each (caches of the
user's cache folder filled), ``cli_repeats`` rounds run both systems
interleaved; medians are reported. This workload runs in the runner.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.workloads import median

_REPORT = '''
print(json.dumps({"setup_seconds": t1 - t0, "first_trial_seconds": t2 - t1, "numpy": "numpy" in sys.modules}))
'''

SCRIPTS = {
    "ours": '''\
import json, sys, time
t0 = time.perf_counter()
import daskperiment

ex = daskperiment.Experiment("first_trial", script_mode=False)
a, b = ex.parameter("a"), ex.parameter("b")


@ex
def prepare(a, b):
    return a + b


@ex.result
def score(s):
    for i in range(10):
        ex.save_metric("m%d" % i, epoch=0, value=float(s + i))
    return s * 0.5


ex.set_parameters(a=1, b=2)
result = score(prepare(a, b))
t1 = time.perf_counter()
result.compute()
t2 = time.perf_counter()
''' + _REPORT,
    "floor": '''\
import json, sys, time
t0 = time.perf_counter()
from dask import delayed

metrics = []


def prepare(a, b):
    return a + b


def score(s):
    for i in range(10):
        metrics.append(("m%d" % i, 0, float(s + i)))
    return s * 0.5


result = delayed(score)(delayed(prepare)(1, 2))
t1 = time.perf_counter()
result.compute()
t2 = time.perf_counter()
''' + _REPORT,
}


def _once(python: str, env: dict[str, str], folder: Path, timeout: float) -> dict[str, Any] | str:
    """One fresh process running ``folder/script.py``: its figures, or the error text."""
    started = time.perf_counter()
    try:
        done = subprocess.run([python, "script.py"], cwd=folder, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    wall = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
        return f"exit {done.returncode}: {tail[0][:200]}"
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "process_seconds": wall}


def run(systems: dict[str, tuple[str, dict[str, str]]], scratch: Path, repeats: int,
        timeout: float, log=print) -> dict[str, dict[str, Any]]:
    """Time the first trial of ``systems`` (``ours``/``floor`` -> (python, env)), interleaved rounds."""
    runs: dict[str, list[dict[str, Any]]] = {system: [] for system in systems}
    errors: dict[str, str] = {}
    for round_number in range(repeats + 1):  # round 0: warm-up
        for system, (python, env) in systems.items():
            if system in errors:
                continue
            folder = scratch / f"first-{system}-{round_number}"  # a new folder: a new store
            folder.mkdir(parents=True)
            (folder / "script.py").write_text(SCRIPTS[system])
            outcome = _once(python, env, folder, timeout)
            if isinstance(outcome, str):
                errors[system] = outcome
            elif round_number:
                runs[system].append(outcome)
    results: dict[str, dict[str, Any]] = {}
    for system in systems:
        if system in errors:
            results[system] = {"status": "error", "reason": errors[system]}
            continue
        figures = runs[system]
        results[system] = {
            "status": "ok", "runs": len(figures), "numpy": any(f["numpy"] for f in figures),
            **{name: median(f[name] for f in figures)
               for name in ("setup_seconds", "first_trial_seconds", "process_seconds")},
        }
        log(f"first_trial: {system} -> {results[system]['first_trial_seconds']:.3f} s")
    return results
