"""Profile our per-trial path and our command-line start-up (not part of the table).

    python -m benchmarks.profiling [--trials 2000] [--top 25]
    python -m benchmarks.profiling --interleaved 10100

1. cProfile over ``--trials`` trials of the workload-1 graph (2 steps, 2
   parameters, 10 metrics) on the local store, after 50 warm-up trials: the
   functions with the most own time and the most cumulative time.
2. ``python -X importtime script.py a=1 b=2`` of the workload-4 script: the
   slowest imports, and the wall time of one run.

With ``--interleaved N``, only ours and the floor alternating trial by trial
for N trials in one process (see :func:`interleaved`).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository, not this folder

from benchmarks.envs import REPOSITORY
from benchmarks.workloads import command_line


def profile_trials(trials: int, top: int) -> str:
    """cProfile statistics of ``trials`` trials of ours (local store)."""
    sys.path.insert(0, str(REPOSITORY))
    from benchmarks.adapters.daskperiment_api import OursAdapter
    from benchmarks.adapters.floor import FloorAdapter

    out = io.StringIO()
    with tempfile.TemporaryDirectory() as folder:
        import os

        os.chdir(folder)
        ours, floor = OursAdapter(), FloorAdapter()
        ours.open("local", None, "profile")
        floor.open("local", None, "profile")
        for n in range(50):
            ours.trial(n, 2)
            floor.trial(n, 2)
        for name, adapter in (("floor", floor), ("ours", ours)):
            started = time.perf_counter()
            for n in range(trials):
                adapter.trial(n, 2)
            out.write(f"{name}: {(time.perf_counter() - started) / trials * 1e3:.3f} ms/trial "
                      f"(unprofiled, {trials} trials)\n")
        profiler = cProfile.Profile()
        profiler.enable()
        for n in range(trials):
            ours.trial(n, 2)
        profiler.disable()
        os.chdir(REPOSITORY)
    for order in ("tottime", "cumulative"):
        out.write(f"\n--- ours, {trials} trials, sorted by {order} ---\n")
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(order).print_stats(top)
    return out.getvalue()


def interleaved(trials: int) -> str:
    """Ours and the floor alternating trial by trial in one process (same load for both).

    Prints the median per-trial time of each over the last 100 trials at
    trial 100 and every 1,000 trials: the flatness check least sensitive to
    other processes on the machine.
    """
    import statistics

    sys.path.insert(0, str(REPOSITORY))
    from benchmarks.adapters.daskperiment_api import OursAdapter
    from benchmarks.adapters.floor import FloorAdapter

    out = io.StringIO()
    with tempfile.TemporaryDirectory() as folder:
        import os

        os.chdir(folder)
        ours, floor = OursAdapter(), FloorAdapter()
        ours.open("local", None, "interleaved")
        floor.open("local", None, "interleaved")
        times: list[tuple[float, float]] = []
        for n in range(1, trials + 1):
            t0 = time.perf_counter()
            ours.trial(n, 2)
            t1 = time.perf_counter()
            floor.trial(n, 2)
            times.append((t1 - t0, time.perf_counter() - t1))
            if n == 100 or n % 1000 == 0 or n == trials:
                o = statistics.median(t[0] for t in times[-100:]) * 1e3
                f = statistics.median(t[1] for t in times[-100:]) * 1e3
                out.write(f"trial {n:6d}: ours {o:.3f} ms, floor {f:.3f} ms, ratio {o / f:.2f}x\n")
        os.chdir(REPOSITORY)
    return out.getvalue()


def import_times(top: int) -> str:
    """The slowest imports of the command-line script, and its wall time."""
    out = io.StringIO()
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "script.py"
        script.write_text(command_line.script_for("ours")[0])
        env = command_line.python_env(str(REPOSITORY))
        subprocess.run([sys.executable, str(script), "a=1", "b=2"], cwd=folder, env=env, check=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, str(script), "a=1", "b=2"], cwd=folder, env=env, check=True)
        wall = time.perf_counter() - started
        done = subprocess.run([sys.executable, "-X", "importtime", str(script), "a=1", "b=2"],
                              cwd=folder, env=env, capture_output=True, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "imported package" not in line:
            _, self_us, cumulative_us, name = (part.strip() for part in line.replace("import time:", "|").split("|"))
            indent = len(line.split("|")[2]) - len(line.split("|")[2].lstrip())
            rows.append((int(cumulative_us), int(self_us), name, indent))
    top_level = sum(c for c, _, _, indent in rows if indent <= 1)
    out.write(f"wall time of one command-line trial: {wall:.3f} s; imports (main thread and "
              f"background) total {top_level / 1e6:.3f} s\n")
    out.write("slowest top-level imports (cumulative ms):\n")
    for cumulative, _, name, indent in sorted(rows, reverse=True):
        if indent <= 1:
            out.write(f"  {cumulative / 1e3:8.1f}  {name}\n")
    out.write("slowest daskperiment modules (cumulative ms):\n")
    ours = sorted((r for r in rows if r[2].startswith("daskperiment")), reverse=True)[:top]
    for cumulative, self_us, name, _ in ours:
        out.write(f"  {cumulative / 1e3:8.1f}  (self {self_us / 1e3:6.1f})  {name}\n")
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling")
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--interleaved", type=int, metavar="TRIALS", default=0,
                        help="only run ours and the floor alternating for TRIALS trials")
    args = parser.parse_args(argv)
    if args.interleaved:
        print(interleaved(args.interleaved))
        return 0
    print(profile_trials(args.trials, args.top))
    print(import_times(args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
