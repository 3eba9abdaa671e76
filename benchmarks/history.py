"""``get_history()`` of a long history, this tree against another: ``python -m benchmarks.history``.

A store of each kind (local, and Redis and the MongoDB-wire test server
started by :mod:`benchmarks.servers`) is brought to ``--trials`` trials
(``--mongo-trials`` on the MongoDB-wire server, whose bulk writes are slow) as
workload 11 does: one real trial of workload 1's graph, then bulk writes of
copies of it (:func:`benchmarks.workloads.physical_floor.fill_ours`). Then,
round after round, a new process of each source tree — this one, and
``--baseline TREE`` (for instance an export of the branch before a change) —
opens the experiment and calls ``get_history()`` once (the first call, which
imports pandas) and ``--repeats`` times more; the trees take turns within each
round, on the same stores, so both see the same machine load. Reported per
store and tree: the first call, the median and best of the repeated calls
(wall clock) and the median CPU time of the process during them, with the load
average at the start and at the end of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.servers import servers

REPOSITORY = Path(__file__).resolve().parent.parent
EXPERIMENT = "history_bench"
"""Prefix of the experiments measured (one per store kind)."""
_MEASURE = """
import json, sys, time
import daskperiment
ex = daskperiment.Experiment({experiment!r}, backend={backend!r}, script_mode=False)
t0 = time.perf_counter()
rows = len(ex.get_history())
first = time.perf_counter() - t0
walls, cpus = [], []
for _ in range({repeats}):
    w0, c0 = time.perf_counter(), time.process_time()
    ex.get_history()
    walls.append(time.perf_counter() - w0)
    cpus.append(time.process_time() - c0)
print(json.dumps({{"rows": rows, "first": first, "walls": walls, "cpus": cpus}}))
"""


def fill(backend: str, experiment: str, trials: int, folder: Path) -> None:
    """Bring ``experiment`` of ``backend`` to ``trials`` trials (one run, then bulk copies)."""
    import daskperiment
    from benchmarks.workloads.physical_floor import FILL_BATCH, FILL_BATCH_MONGO, fill_ours

    os.chdir(folder)
    ex = daskperiment.Experiment(experiment, backend=backend, script_mode=False)
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex
    def prepare(a, b):
        return a + b

    @ex.result
    def score(s):
        return s * 0.5

    ex.run(score(prepare(a, b)), a=1, b=2, scheduler="sync")
    fill_ours(ex, trials, FILL_BATCH_MONGO if backend.startswith("mongodb") else FILL_BATCH)
    ex.backend.close()


def measure(tree: Path, backend: str, experiment: str, repeats: int, folder: Path) -> dict[str, Any]:
    """The figures of one process of source tree ``tree`` reading the history of ``experiment``."""
    code = _MEASURE.format(experiment=experiment, backend=backend, repeats=repeats)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode:
        raise RuntimeError(f"{tree} failed on {backend}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.history", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--mongo-trials", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="local,redis,mongo")
    parser.add_argument("--baseline", type=Path, help="another source tree, measured in turn with this one")
    args = parser.parse_args(argv)
    trees = {"this": REPOSITORY, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    kinds = args.backends.split(",")
    load_start = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="daskperiment-bench-history-") as scratch, \
            servers(set(kinds) - {"local"}, lambda line: print(line, file=sys.stderr)) as uris:
        folder = Path(scratch)
        stores = {kind: "local" if kind == "local" else uris.get(kind) for kind in kinds}
        for kind, backend in stores.items():
            if backend is None:
                print(f"{kind}: server not available", file=sys.stderr)
                continue
            t0 = time.perf_counter()
            experiment = f"{EXPERIMENT}_{kind}"
            fill(backend, experiment, args.mongo_trials if kind == "mongo" else args.trials, folder)
            print(f"{kind}: store filled in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            for _ in range(args.rounds):
                for name, tree in trees.items():
                    results.setdefault((kind, name), []).append(measure(tree, backend, experiment, args.repeats, folder))
    load_end = os.getloadavg()
    print(f"get_history(), {started}, load average {' / '.join(f'{x:.2f}' for x in load_start)} at the start, "
          f"{' / '.join(f'{x:.2f}' for x in load_end)} at the end; {args.rounds} rounds of {args.repeats} calls\n")
    print("| store | tree | trials | first call s | median s | best s | CPU median s | median vs baseline |")
    print("|---|---|---|---|---|---|---|---|")
    for (kind, name), runs in results.items():
        walls = [w for run in runs for w in run["walls"]]
        base = results.get((kind, "baseline"))
        ratio = ""
        if base and name == "this":
            ratio = f"{statistics.median(walls) / statistics.median([w for r in base for w in r['walls']]):.2f}x"
        print(f"| {kind} | {name} | {runs[0]['rows']:,} | {statistics.median(r['first'] for r in runs):.3f} | "
              f"{statistics.median(walls):.3f} | {min(walls):.3f} | "
              f"{statistics.median([c for run in runs for c in run['cpus']]):.3f} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
