"""Report sections 6-8 (the trial engine against plain dask) and their target verdicts."""

from __future__ import annotations

from typing import Any

from benchmarks.tables import Row, cell, num, ok, ratio, table, verdict_row

SCHEDULER_NAMES = ("threads", "cluster")
MODE_TITLES = {
    "plain_at_once": "plain at once",
    "plain_each": "plain one by one",
    "submit_all": "ex.submit all",
    "run_each": "ex.run one by one",
    "sweep": "ex.sweep",
}
IDEAL_RATIO_TARGET = 1.3
SPEEDUP_TARGET = 7.0


def sections(workloads: dict[str, dict[str, Row]]) -> list[str]:
    """The Markdown of sections 6-8 for the engine workloads that ran."""
    out: list[str] = []
    for name, render in (("sweep_sharing", _sweep), ("many_trials", _many), ("cluster_overhead", _cluster)):
        if name in workloads:
            out += render(workloads[name].get("ours/local")) + [""]
    return out


def _failed(title: str, header: list[str], text: str) -> list[str]:
    """A section whose job gave no figures: one row saying why."""
    return [title, ""] + table(header, [[text, *[""] * (len(header) - 1)]])


def _sweep(result: Row | None) -> list[str]:
    title = "## 6. Sweep with shared work (ours, local store)"
    header = ["scheduler", "workers", "trials", "ex.sweep s", "cheap sweep s (ms/trial)", "ideal s",
              "sweep / ideal", "sequential .compute() s", "speedup", "plain dask s (sweep ×)"]
    text = cell(result)
    if text:
        return _failed(title, header, text)
    n_a, n_b = result["grid"]
    title += f" — {n_a} × {n_b} grid, the step on `a` sleeps {result['sleep_seconds'] * 1e3:.0f} ms"
    rows = []
    for name in SCHEDULER_NAMES:
        f = result[name]
        rows.append([name, str(f["workers"]), str(f["trials"]), num(f["sweep_seconds"], 3),
                     f"{num(f['cheap_sweep_seconds'], 3)} ({num(f['cheap_ms_per_trial'], 2)})",
                     num(f["ideal_seconds"], 3), f"{f['ideal_ratio']:.2f}", num(f["sequential_seconds"], 2),
                     f"{f['speedup']:.1f}x", num(f["plain_seconds"], 3) + ratio(f["sweep_seconds"], f["plain_seconds"])])
    note = ("ideal = values of a × sleep / workers + trials × the cheap sweep's ms/trial (same graph, "
            "no sleep, same run); plain dask = the same grid as dask.delayed, one dask.compute; "
            "sweeps: median of the repeats; sequential: once.")
    return [title, "", note, ""] + table(header, rows)


def _many(result: Row | None) -> list[str]:
    title = "## 7. Trivial trials at once — trials/s (per-trial time × plain dask at once)"
    header = ["scheduler", "trials", *MODE_TITLES.values()]
    text = cell(result)
    if text:
        return _failed(title, header, text)
    rows = []
    for name in SCHEDULER_NAMES:
        f = result[name]
        cells = [f"{num(m['trials_per_second'], 0)} ({m['time_vs_plain_at_once']:.2f}x)"
                 for m in (f["modes"][mode] for mode in MODE_TITLES)]
        rows.append([name, f"{f['trials']:,} ({f['rounds']} rounds)", *cells])
    return [title, ""] + table(header, rows)


def _cluster(result: Row | None) -> list[str]:
    title = "## 8. Per-trial overhead on a LocalCluster — ms per trial, one by one"
    header = ["trials", "ex.run median (mean)", "client.compute(plain).result() median (mean)", "× plain"]
    text = cell(result)
    if text:
        return _failed(title, header, text)
    ours, plain = result["ours"], result["plain"]
    row = [f"{result['trials']} on {result['workers']} workers",
           f"{ours['median_ms']:.2f} ({ours['mean_ms']:.2f})",
           f"{plain['median_ms']:.2f} ({plain['mean_ms']:.2f})", f"{result['ratio']:.2f}x"]
    return [title, ""] + table(header, [row])


def verdict_rows(workloads: dict[str, dict[str, Row]]) -> list[list[str]]:
    """Rows of the targets table for the sweep with shared work, on each scheduler."""
    if "sweep_sharing" not in workloads:
        return []
    result = workloads["sweep_sharing"].get("ours/local")
    rows = []
    for name in SCHEDULER_NAMES:
        ideal_target = f"sweep wall ≤ {IDEAL_RATIO_TARGET}× ideal ({name})"
        speed_target = f"sweep ≥ {SPEEDUP_TARGET:.0f}× the sequential .compute() loop ({name})"
        if not ok(result):
            rows += [verdict_row(ideal_target, cell(result) or "-", None),
                     verdict_row(speed_target, cell(result) or "-", None)]
            continue
        f: dict[str, Any] = result[name]
        rows.append(verdict_row(
            ideal_target, f"{f['sweep_seconds']:.3f} s vs ideal {f['ideal_seconds']:.3f} s = {f['ideal_ratio']:.2f}x",
            f["ideal_ratio"] <= IDEAL_RATIO_TARGET))
        rows.append(verdict_row(
            speed_target, f"{f['sequential_seconds']:.2f} s / {f['sweep_seconds']:.3f} s = {f['speedup']:.1f}x",
            f["speedup"] >= SPEEDUP_TARGET))
    return rows
