"""The dashboard with many trials, in headless Chromium: ``python -m benchmarks.board``.

For each size (10,000 and 100,000 trials by default) a local store is written
straight through the backend (trials of 3 parameters in sweeps of 1,000, one in
a hundred with a note and two tags), then:

- **server ready**: from starting ``daskperiment board ID`` (a new process) to its
  line saying where it listens (imports, reading every trial, building the table);
- **first paint**: from ``driver.get(url)`` to the first page of the table drawn
  (its last trial's row) with the trial count in the summary;
- **filter round trip**: a filter typed into the box (its ``change`` event) until
  the table's caption shows the matching count: median of several, two filters
  taken in turn, timed inside the page;
- **parallel tab**: from clicking the tab to its lines drawn;
- **server memory**: RSS of the server process after those, and its peak (VmHWM).

Per-trial ratios compare the sizes: (figure at N / N) / (figure at the smallest
size / its size); below 1 means the figure grows slower than the history.
``--baseline TREE`` also runs the dashboard of another source tree (for instance
the main branch's worktree) on the same stores, in the same run. Needs Debian's
``chromium`` and ``chromium-driver`` and selenium (as the browser tests).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent
EXPERIMENT = "bench_board"
CHUNK = 5000
ANNOTATED_EVERY = 100
FILTERS = ("model=m3, lr<0.5", "depth>=2, model!=m1")
ROUND_TRIPS = 6
WAIT_SECONDS = 600.0

PAGE_INFO = """
const deep = (root, found) => {
  for (const el of root.querySelectorAll('*')) {
    if (el.shadowRoot) { found.push(el.shadowRoot.textContent); deep(el.shadowRoot, found); }
  }
  return found;
};
const line = deep(document, [document.body.textContent]).join('\\n').split('\\n')
  .map(s => s.trim()).find(s => /^page \\d+ of \\d+ · /.test(s));
return line || null;
"""
FILTER_ROUND_TRIP = """
const [text, expected, done] = arguments;
const deep = (root, found) => {
  for (const el of root.querySelectorAll('*')) {
    if (el.matches('input')) found.push(el);
    if (el.shadowRoot) deep(el.shadowRoot, found);
  }
  return found;
};
const texts = (root, found) => {
  for (const el of root.querySelectorAll('*')) {
    if (el.shadowRoot) { found.push(el.shadowRoot.textContent); texts(el.shadowRoot, found); }
  }
  return found;
};
const box = deep(document, []).find(i => (i.placeholder || '').startsWith('filter'));
const start = performance.now();
box.value = text;
box.dispatchEvent(new Event('change', {bubbles: true}));
const poll = () => {
  if (texts(document, []).some(t => t.includes(expected))) done(performance.now() - start);
  else if (performance.now() - start > 600000) done(-1);
  else requestAnimationFrame(poll);
};
poll();
"""
ROW_DRAWN = """
const deep = (root, found) => {
  for (const el of root.querySelectorAll('*')) {
    if (el.matches('.slick-row')) found.push(el);
    if (el.shadowRoot) deep(el.shadowRoot, found);
  }
  return found;
};
return deep(document, []).some(r => {
  const cells = r.querySelectorAll('.slick-cell');
  return cells.length > 1 && cells[1].textContent.trim() === arguments[0];
});
"""
OPEN_PARALLEL = """
const done = arguments[arguments.length - 1];
const deep = (root, found) => {
  for (const el of root.querySelectorAll('*')) {
    if (el.matches('.bk-tab')) found.push(el);
    if (el.shadowRoot) deep(el.shadowRoot, found);
  }
  return found;
};
const tab = deep(document, []).find(t => t.textContent.trim() === 'Parallel');
if (!tab) { done(null); return; }
const start = performance.now();
tab.click();
const poll = () => {
  const source = Bokeh.documents[0].get_model_by_name('parallel_lines');
  const trials = source && (source.data.get ? source.data.get('trial') : source.data['trial']);
  if (trials && trials.length > 0) done(performance.now() - start);
  else if (performance.now() - start > 600000) done(-1);
  else requestAnimationFrame(poll);
};
poll();
"""


@dataclass
class Figures:
    """What one dashboard showed with one history."""

    tree: str
    trials: int
    store_seconds: float
    ready_seconds: float
    first_paint_seconds: float
    filter_ms: list[float]
    parallel_ms: float | None
    rss_mib: float
    peak_rss_mib: float

    @property
    def filter_median_ms(self) -> float:
        return statistics.median(self.filter_ms)


def parameters_of(trial_id: int, trials: int) -> dict[str, Any]:
    """The parameters of trial ``trial_id`` of a history of ``trials``."""
    return {"lr": trial_id / trials, "depth": trial_id % 5, "model": f"m{trial_id % 7}"}


def expected_count(text: str, trials: int) -> int:
    """How many trials filter ``text`` keeps (computed here, as a check of the dashboard's)."""
    checks = {
        FILTERS[0]: lambda p: p["model"] == "m3" and p["lr"] < 0.5,
        FILTERS[1]: lambda p: p["depth"] >= 2 and p["model"] != "m1",
    }
    return sum(checks[text](parameters_of(t, trials)) for t in range(1, trials + 1))


def write_store(folder: Path, trials: int) -> float:
    """Write a history of ``trials`` trials into a local store in ``folder``; the seconds it took."""
    from daskperiment.backend import LocalBackend
    from daskperiment.records import AnnotationEdit, Blob, RecordBatch, TrialRecord

    started = time.perf_counter()
    backend = LocalBackend(folder / EXPERIMENT, EXPERIMENT)
    code = Blob.of(b"def train(lr, depth, model):\n    return lr * depth\n")
    backend.write_batch(RecordBatch(blobs=[code]))
    for first in range(1, trials + 1, CHUNK):
        ids = backend.allocate_trial_ids(min(CHUNK, trials - first + 1))
        records = [
            TrialRecord(
                trial_id=t, parameters=parameters_of(t, trials), result=((t * 37) % 101) / 100,
                result_type="float", success=t % 50 != 0, finished=1_700_000_000.0 + t, process_time=0.01 + t % 7,
                description=None if t % 50 else "ValueError(diverged)", seed=t, code_digest=code.digest,
                environment_digest=None, sweep_id=f"sweep-{(t - 1) // 1000 + 1}",
            )
            for t in ids
        ]
        backend.write_batch(RecordBatch(trials=records))
    backend.edit_annotations([  # one trial in a hundred has a note and tags (read at every refresh)
        AnnotationEdit(t, note=f"trial {t}: looked at", add_tags=frozenset({"seen", f"batch-{t // 1000}"}))
        for t in range(ANNOTATED_EVERY, trials + 1, ANNOTATED_EVERY)
    ])
    backend.close()
    return time.perf_counter() - started


def memory_mib(pid: int) -> tuple[float, float]:
    """RSS and peak RSS (VmHWM) of process ``pid``, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def start_server(tree: Path, folder: Path) -> tuple[subprocess.Popen, str, float]:
    """``daskperiment board`` of source tree ``tree`` on the store in ``folder``: process, URL, ready seconds."""
    environment = dict(os.environ, PYTHONPATH=str(tree), DASKPERIMENT_CACHE_DIR=str(folder / ".cache"))
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "daskperiment.cli", "board", EXPERIMENT, "--backend", str(folder), "--port", "0"],
        cwd=folder, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = process.stdout.readline()
    ready = time.perf_counter() - started
    match = re.search(r"at (http://\S+)", line)
    if match is None:
        process.kill()
        raise RuntimeError(f"the dashboard did not start: {line!r} {process.stderr.read()}")
    return process, match.group(1), ready


def browser(window: tuple[int, int] = (1440, 1000)) -> Any:
    """Headless Chromium driven by chromedriver (Debian's), its window ``window`` pixels wide and high."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                 "--disable-background-networking", "--no-first-run", f"--window-size={window[0]},{window[1]}",
                 "--force-device-scale-factor=1", f"--user-data-dir={tempfile.mkdtemp(prefix='bench-chromium-')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    driver.set_script_timeout(WAIT_SECONDS)
    return driver


def wait_for(condition: Any, what: str) -> Any:
    """The value of ``condition()`` once it is truthy (polled; RuntimeError after WAIT_SECONDS)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise RuntimeError(f"gave up waiting for {what}")


def measure(tree: Path, folder: Path, trials: int, store_seconds: float, driver: Any) -> Figures:
    """The figures of the dashboard of ``tree`` over the history of ``trials`` trials in ``folder``."""
    process, url, ready = start_server(tree, folder)
    try:
        driver.get("about:blank")
        started = time.perf_counter()
        driver.get(url)
        wait_for(lambda: driver.execute_script(ROW_DRAWN, str(trials)), "the first page of the table")
        wait_for(lambda: f"{trials} trials" in (driver.execute_script(PAGE_INFO) or ""), "the trial count")
        first_paint = time.perf_counter() - started
        round_trips = []
        for i in range(ROUND_TRIPS):
            text = FILTERS[i % 2]
            expected = f"{expected_count(text, trials)} of {trials} trials"
            milliseconds = driver.execute_async_script(FILTER_ROUND_TRIP, text, expected)
            if milliseconds < 0:
                raise RuntimeError(f"the filter {text!r} never showed {expected!r}")
            round_trips.append(milliseconds)
        parallel = driver.execute_async_script(OPEN_PARALLEL)
        rss, peak = memory_mib(process.pid)
    finally:
        process.terminate()
        process.wait(60)
    return Figures(str(tree), trials, store_seconds, ready, first_paint, round_trips, parallel, rss, peak)


def table(results: list[Figures]) -> str:
    """The figures as a Markdown table, with per-trial ratios to the smallest size of the same tree."""
    lines = [
        "| tree | trials | server ready s | first paint s | filter round trip ms (median) | parallel tab ms "
        "| server RSS MiB (peak) | per trial vs smallest: ready · paint · filter · RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for figures in results:
        base = min((f for f in results if f.tree == figures.tree), key=lambda f: f.trials)
        scale = figures.trials / base.trials

        def ratio(value: float, base_value: float) -> str:
            return f"{value / base_value / scale:.2f}"

        ratios = " · ".join([
            ratio(figures.ready_seconds, base.ready_seconds), ratio(figures.first_paint_seconds, base.first_paint_seconds),
            ratio(figures.filter_median_ms, base.filter_median_ms), ratio(figures.rss_mib, base.rss_mib),
        ])
        parallel = "n/a" if figures.parallel_ms is None else f"{figures.parallel_ms:.0f}"
        lines.append(
            f"| {Path(figures.tree).name} | {figures.trials:,} | {figures.ready_seconds:.2f} | "
            f"{figures.first_paint_seconds:.2f} | {figures.filter_median_ms:.0f} | {parallel} | "
            f"{figures.rss_mib:.0f} ({figures.peak_rss_mib:.0f}) | {ratios} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.board", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="numbers of trials, comma-separated")
    parser.add_argument("--baseline", type=Path, help="another source tree to measure on the same stores")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    trees = [REPOSITORY] + ([args.baseline.resolve()] if args.baseline else [])
    sys.path.insert(0, str(REPOSITORY))
    results: list[Figures] = []
    driver = browser()
    try:
        for trials in sizes:
            with tempfile.TemporaryDirectory(prefix="bench-board-") as scratch:
                folder = Path(scratch)
                seconds = write_store(folder, trials)
                print(f"{trials:,} trials written in {seconds:.1f} s", file=sys.stderr, flush=True)
                for tree in trees:
                    figures = measure(tree, folder, trials, seconds, driver)
                    print(f"{tree.name}: {figures}", file=sys.stderr, flush=True)
                    results.append(figures)
    finally:
        driver.quit()
    load = os.getloadavg()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(f) | {"filter_median_ms": f.filter_median_ms} for f in results],
                                        indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
