"""The table: absolute figures, ratios to the baselines of the same run, target verdicts."""

from __future__ import annotations

from typing import Any

from benchmarks import report_engine, report_features, report_floor
from benchmarks.tables import Row, cell, num, ok, ratio, table, verdict_row

def _window_ms(result: Row | None, window: str) -> float | None:
    if not ok(result):
        return None
    return result["windows"].get(window, {}).get("median_ms")


def _load(averages: list[float] | None) -> str:
    return "/".join(f"{a:.1f}" for a in averages) if averages else "?"


def render(results: dict[str, Any]) -> str:
    """The whole report as Markdown (also readable as plain text)."""
    m = results["machine"]
    out = [
        f"# daskperiment benchmarks — {m['date']}",
        "",
        (f"Machine: {m['nproc']} cores, {m['machine']}, Python {m['python']} ({m['platform']}); "
         f"{'QUICK sizes' if results['quick'] else 'full sizes'}; suite took "
         f"{results.get('elapsed_seconds', 0):.0f} s; load average (1, 5, 15 min) "
         f"{_load(m.get('load_average'))} at the start, {_load(results.get('load_average_end'))} at the end."),
        "Peers: " + "; ".join(f"{s}: {v}" for s, v in results["versions"].items() if v) + ".",
        "Ratios in parentheses are to the floor (plain dask.delayed) of the same run unless noted.",
        "",
    ]
    w = results["workloads"]
    windows = [f"{a}-{b}" for a, b in results["sizes"]["windows"]]
    if "trial_overhead" in w:
        out += _overhead(w["trial_overhead"], windows) + [""]
    if "metric_logging" in w:
        out += _metrics(w["metric_logging"]) + [""]
    if "trial_overhead" in w:
        out += _history(w["trial_overhead"]) + [""]
    if "command_line" in w:
        out += _command_line(w["command_line"]) + [""]
    if "concurrency" in w:
        out += _concurrency(w["concurrency"]) + [""]
    out += report_engine.sections(w)
    out += report_features.sections(w)
    if "physical_floor" in w:
        out += report_floor.section(w["physical_floor"]) + [""]
    out += verdicts(results)
    return "\n".join(out)


def _overhead(section: dict[str, Row], windows: list[str]) -> list[str]:
    floor = section.get("floor/local")
    rows = []
    for key, result in section.items():
        system, backend = key.split("/")
        text = cell(result)
        if text:
            rows.append([system, backend, "", *[""] * len(windows), "", text])
            continue
        cells = []
        for window in windows:
            value = _window_ms(result, window)
            cells.append("not reached" if value is None else
                         num(value, 3) + ratio(value, _window_ms(floor, window)))
        first, last = _window_ms(result, windows[0]), None
        for window in reversed(windows):
            if _window_ms(result, window) is not None:
                last = _window_ms(result, window)
                break
        flat = f"{last / first:.2f}" if first and last and len(windows) > 1 else "-"
        note = result.get("stopped") or ""
        note = (note + "; " if note else "") + f"mean {result['mean_ms']:.2f} ms over {result['trials']}"
        rows.append([system, backend, str(result["trials"]), *cells, flat, note])
    return ["## 1. Trial overhead — ms per trial, median of each window (× floor)", ""] + table(
        ["system", "backend", "trials", *[f"trials {w}" for w in windows], "last/first", "note"], rows
    )


def _history(section: dict[str, Row]) -> list[str]:
    rows = []
    for key, result in section.items():
        system, backend = key.split("/")
        if system == "floor":
            continue
        text = cell(result)
        history = result.get("history", {}) if ok(result) else {}
        if not text and "unavailable" in history:
            text = f"n/a: {history['unavailable']}"
        if text:
            rows.append([system, backend, "", "", text])
            continue
        note = f"first call {history['first_seconds']:.3f} s" if "first_seconds" in history else ""
        if history.get("filled"):
            note += f"; {history['filled']:,} of the trials written in bulk (trial loop stopped early)"
        rows.append([system, backend, str(history["rows"]), num(history["median_seconds"], 4), note])
    return ["## 3. History — get_history() after the trials of workload 1 (median)", ""] + table(
        ["system", "backend", "trials", "seconds", "note"], rows
    )


def _metrics(section: dict[str, Row]) -> list[str]:
    rows = []
    for key, result in section.items():
        system, backend = key.split("/")
        text = cell(result)
        if text:
            rows.append([system, backend, "", "", "", "", "", "", text])
            continue
        original = section.get(f"original/{backend}")
        base = original["calls_per_second"] if ok(original) else None
        rate = result["calls_per_second"]
        vs = f"{rate / base:.1f}x" if base and system != "original" else ""
        load = result.get("load", {})
        load_text = num(load.get("median_seconds"), 4) if "median_seconds" in load else "n/a"
        note = ""
        if result["calls"] < result["requested_calls"]:
            note = f"stopped at the time budget after {result['calls']:,} calls"
        rows.append([system, backend, f"{result['calls']:,}", f"{rate:,.0f}", vs,
                     num(result["trial_seconds"], 3), load_text,
                     f"{result['peak_rss_mib']:.0f} (+{result['rss_growth_mib']:.0f})", note])
    return ["## 2. Metric logging — save_metric calls in one trial", ""] + table(
        ["system", "backend", "calls", "calls/s", "× original", "trial s", "load_metric s",
         "peak RSS MiB (growth)", "note"], rows
    )


def _command_line(section: dict[str, Row]) -> list[str]:
    floor = section.get("floor/local")
    original = section.get("original/local")
    rows = []
    for key, result in section.items():
        system = key.split("/")[0]
        text = cell(result)
        if text:
            rows.append([system, "", "", "", text])
            continue
        value = result["median_seconds"]
        vs_floor = f"{value / floor['median_seconds']:.2f}x" if ok(floor) else ""
        vs_original = f"{value / original['median_seconds']:.2f}x" if ok(original) else ""
        rows.append([system, num(value, 3), vs_floor, vs_original, f"median of {result['runs']}"])
    return ["## 4. Command line — `python script.py a=1 b=2`, wall time of one trial", ""] + table(
        ["system", "seconds", "× floor", "× original", "note"], rows
    )


def _concurrency(section: dict[str, Row]) -> list[str]:
    floor = section.get("floor/local")
    rows = []
    for key, result in section.items():
        system, backend = key.split("/")
        text = cell(result)
        if text:
            rows.append([system, backend, "", "", "", text])
            continue
        rate = result["trials_per_second"]
        base = floor["trials_per_second"] if ok(floor) else None
        stored = result.get("rows_stored")
        expected = result.get("rows_expected", result["trials"])
        stored_text = "-" if system == "floor" else f"{stored}/{expected}"
        note = "" if system == "floor" or stored == expected else "trials lost or unreadable"
        rows.append([system, backend, f"{result['processes']} x {result['trials'] // result['processes']}",
                     f"{rate:.1f}" + (f" ({rate / base:.2f}x)" if base else ""), stored_text, note])
    return ["## 5. Concurrency — processes writing one experiment at once", ""] + table(
        ["system", "backend", "processes x trials", "trials/s (× floor)", "stored", "note"], rows
    )


def verdicts(results: dict[str, Any]) -> list[str]:
    """Each target of issues 6, 9 and 11: met or not, with the figure of this run."""
    w = results["workloads"]
    lines = ["## Targets (ours, this run)", ""]
    rows: list[list[str]] = []

    def add(target: str, figure: str, met: bool | None) -> None:
        rows.append(verdict_row(target, figure, met))

    over = w.get("trial_overhead", {})
    windows = [f"{a}-{b}" for a, b in results["sizes"]["windows"]]
    ours, floor = over.get("ours/local"), over.get("floor/local")
    if ok(ours) and ok(floor):
        ratios = {wd: _window_ms(ours, wd) / _window_ms(floor, wd) for wd in windows
                  if _window_ms(ours, wd) and _window_ms(floor, wd)}
        add("per-trial overhead ≤ 1.5× floor (local, every window)",
            ", ".join(f"{wd}: {r:.2f}x" for wd, r in ratios.items()), max(ratios.values()) <= 1.5)
        last_o, first_o = _window_ms(ours, windows[-1]), _window_ms(ours, windows[0])
        if last_o:
            flat = last_o / first_o
            add(f"flat: trials {windows[-1]} within 20% of {windows[0]}", f"{flat:.2f}", flat <= 1.2)
    for backend, limit in (("local", 0.2), ("redis", 0.5), ("mongo", 0.5)):
        r = over.get(f"ours/{backend}")
        if ok(r) and "median_seconds" in r.get("history", {}):
            h = r["history"]
            add(f"get_history ≤ {limit} s ({backend}, {h['rows']:,} trials)",
                f"{h['median_seconds']:.3f} s", h["median_seconds"] <= limit)
        elif r is not None:
            add(f"get_history ≤ {limit} s ({backend})", cell(r) or "-", None)
    met = w.get("metric_logging", {})
    r = met.get("ours/local")
    if ok(r):
        add("save_metric ≥ 1,000,000 calls/s (local)", f"{r['calls_per_second']:,.0f}/s",
            r["calls_per_second"] >= 1e6)
        load = r.get("load", {})
        if "median_seconds" in load:
            add(f"load_metric of {load['points']:,} points ≤ 0.2 s", f"{load['median_seconds']:.3f} s",
                load["median_seconds"] <= 0.2)
    for backend in ("local", "redis", "mongo"):
        o, g = met.get(f"ours/{backend}"), met.get(f"original/{backend}")
        if ok(o) and ok(g):
            factor = o["calls_per_second"] / g["calls_per_second"]
            add(f"save_metric ≥ 10× original ({backend})", f"{factor:.1f}x", factor >= 10)
        elif o is not None or g is not None:
            add(f"save_metric ≥ 10× original ({backend})",
                f"ours: {cell(o) or 'ok'}; original: {cell(g) or 'ok'}", None)
    cli = w.get("command_line", {})
    o, g = cli.get("ours/local"), cli.get("original/local")
    if ok(o) and ok(g):
        factor = o["median_seconds"] / g["median_seconds"]
        add("command-line trial ≤ 1/3 of the original", f"{o['median_seconds']:.2f} s vs "
            f"{g['median_seconds']:.2f} s = {factor:.2f}x", factor <= 1 / 3)
    rows += report_engine.verdict_rows(w)
    rows += report_features.verdict_rows(w)
    if "physical_floor" in w:
        rows += report_floor.verdict_rows(w["physical_floor"])
    return lines + table(["target", "figure", "verdict"], rows)
