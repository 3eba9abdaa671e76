"""Metric points written while their trial runs: save_metric's cost and the flush latency (not part of the table).

    python -m benchmarks.metric_streaming [--calls 6000000] [--backends local,redis,mongo]

For each store, with the library's defaults (points written every
``FLUSH_SECONDS`` or ``FLUSH_POINTS``):

1. **save_metric calls/s with streaming on**: one trial (``sync`` scheduler)
   whose step calls ``ex.save_metric("loss", i, x)`` ``--calls`` times, long
   enough for several writes to land while it runs (the points the store
   holds when the loop ends are reported). Its baseline, in the same process
   just before and after: ``points.append(("loss", i, x))`` into a plain
   list, the same number of times. Reported: both rates and their ratio, and
   the rate of the same trial with nothing written while it runs (the cost
   of streaming itself).
2. **Flush latency**: a trial saving one point every 10 ms for ``--seconds``;
   another process reads the store every 5 ms and notes when each point shows.
   Reported: median, 90th percentile and largest delay between a save and its
   point showing there (wall clocks of one machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository, not this folder

from benchmarks.servers import servers


def _appends_per_second(calls: int) -> float:
    points: list[tuple[str, int, float]] = []
    append = points.append
    started = time.perf_counter()
    for i in range(calls):
        append(("loss", i, 0.5))
    return calls / (time.perf_counter() - started)


def save_metric_rate(backend: Any, calls: int) -> dict[str, float]:
    """Calls/s of save_metric in a streaming trial, of list appends around it, and of save_metric not streaming."""
    from daskperiment import Experiment, metricstream

    ex = Experiment("bench_stream_rate", backend=backend, script_mode=False)
    measured: dict[str, float] = {}

    @ex.result
    def train():
        save = ex.save_metric
        started = time.perf_counter()
        for i in range(calls):
            save("loss", i, 0.5)
        measured["seconds"] = time.perf_counter() - started
        measured["written_while_running"] = len(ex.backend.load_metrics("loss", [ex.current_trial_id]))
        return 0

    before = _appends_per_second(calls)
    train().compute(scheduler="sync")
    after = _appends_per_second(calls)
    rate = calls / measured["seconds"]
    written = measured["written_while_running"]
    interval, points = metricstream.FLUSH_SECONDS, metricstream.FLUSH_POINTS
    metricstream.FLUSH_SECONDS = metricstream.FLUSH_POINTS = float("inf")  # nothing written while it runs
    try:
        train().compute(scheduler="sync")
    finally:
        metricstream.FLUSH_SECONDS, metricstream.FLUSH_POINTS = interval, points
    quiet = calls / measured["seconds"]
    baseline = statistics.mean([before, after])
    return {
        "calls": calls,
        "save_metric_per_second": rate,
        "list_append_per_second": baseline,
        "ratio_to_list_append": rate / baseline,
        "save_metric_not_streaming_per_second": quiet,
        "ratio_to_not_streaming": rate / quiet,
        "points_written_while_running": written,
        "loop_seconds": calls / rate,
    }


READER = """
import json, sys, time
from pathlib import Path
from daskperiment.backend import open_backend

spec = sys.argv[1] if "://" in sys.argv[1] else Path(sys.argv[1])
backend = open_backend(spec, sys.argv[2])
print("ready", flush=True)
trial = None
while trial is None:  # the trial the benchmark starts next
    starts = backend.load_starts()
    trial = next(iter(starts), None)
    time.sleep(0.002)
seen, count = [], 0
while backend.load_starts([trial]):
    now = len(backend.load_metrics("value", [trial]))
    moment = time.time()
    seen.extend([moment] * (now - count))
    count = now
    time.sleep(0.005)
print(json.dumps(seen))
"""


def flush_latency(backend: Any, seconds: float) -> dict[str, float]:
    """Delays between saving a point and another process reading it from the store, while the trial runs."""
    import subprocess

    from daskperiment import Experiment

    ex = Experiment("bench_stream_latency", backend=backend, script_mode=False)
    ex.backend.allocate_trial_id()  # the store exists before the reader opens it
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(backend), ex.id], stdout=subprocess.PIPE, text=True,
    )
    assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
    saved: list[float] = []

    @ex.result
    def train():
        end = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < end:
            saved.append(time.time())
            ex.save_metric("value", i, float(i))
            i += 1
            time.sleep(0.01)
        return i

    train().compute(scheduler="sync")
    seen = json.loads(reader.communicate(timeout=120)[0])
    delays = [moment - when for moment, when in zip(seen, saved)]
    return {
        "points": len(saved),
        "seen_while_running": len(delays),
        "median_seconds": statistics.median(delays) if delays else float("nan"),
        "p90_seconds": statistics.quantiles(delays, n=10)[-1] if len(delays) > 1 else float("nan"),
        "max_seconds": max(delays) if delays else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=6_000_000)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the latency trial")
    parser.add_argument("--backends", default="local,redis,mongo")
    args = parser.parse_args(argv)
    from daskperiment import metricstream

    wanted = args.backends.split(",")
    results: dict[str, Any] = {
        "flush_seconds": metricstream.FLUSH_SECONDS, "flush_points": metricstream.FLUSH_POINTS,
    }
    with servers({kind for kind in wanted if kind != "local"}, lambda text: print(text, file=sys.stderr)) as uris:
        for kind in wanted:
            if kind == "local":
                backend: Any = Path(tempfile.mkdtemp(prefix="daskperiment-bench-stream-"))
            else:
                backend = uris.get(kind)
                if backend is None:
                    results[kind] = "n/a: the server did not start"
                    continue
            results[kind] = {
                "save_metric": save_metric_rate(backend, args.calls),
                "latency": flush_latency(backend, args.seconds),
            }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
