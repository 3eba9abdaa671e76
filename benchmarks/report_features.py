"""Report sections 9-10 (step cache, artifacts) and their target verdicts."""

from __future__ import annotations

from typing import Any

from benchmarks.tables import Row, cell, num, ok, table, verdict_row

RERUN_SPEEDUP_TARGET = 50.0
HIT_MS_TARGET = 2.0
COPY_SPEED_TARGET = 0.5
"""Ours at ≥ 50% of a plain copy's speed: copy time / our time ≥ 0.5."""


def sections(workloads: dict[str, dict[str, Row]]) -> list[str]:
    """The Markdown of sections 9-10 for the workloads that ran."""
    out: list[str] = []
    if "step_cache" in workloads:
        out += _step_cache(workloads["step_cache"]) + [""]
    if "artifacts" in workloads:
        out += _artifacts(workloads["artifacts"].get("ours/local")) + [""]
    return out


def _ms(seconds: float) -> str:
    return num(seconds * 1e3, 1)


def _spread(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """``min-max`` of ``values`` × ``scale``."""
    return f"{num(min(values) * scale, digits)}-{num(max(values) * scale, digits)}"


def _step_cache(section: dict[str, Row]) -> list[str]:
    title = "## 9. Step cache — a sweep whose steps are all cached (ours, threads)"
    header = ["backend", "cold sweep s", "re-run s (range)", "cold / re-run (per round)", "uncached no-work sweep s",
              "ideal cold s", "cached trial ms", "baseline trial ms", "hit ms/step", "cached trial ms/step"]
    rows = []
    described = None
    for key, r in section.items():
        backend = key.split("/")[1]
        text = cell(r)
        if text:
            rows.append([backend, text, *[""] * (len(header) - 2)])
            continue
        described = described or r
        h = r["hit"]
        rows.append([
            backend, f"{num(r['cold_seconds'], 3)} ({_spread(r['cold_all_seconds'], digits=3)})",
            f"{num(r['rerun_seconds'], 4)} ({_spread(r['rerun_all_seconds'], digits=4)})",
            f"{r['speedup']:.1f}x ({', '.join(f'{s:.1f}' for s in r['round_speedups'])})",
            f"{num(r['floor_sweep_seconds'], 3)}", num(r["ideal_cold_seconds"], 2),
            num(h["cached_trial_ms"], 3), num(h["baseline_trial_ms"], 3),
            num(h["hit_ms_per_step"], 3), num(h["cached_trial_ms_per_step"], 3),
        ])
    notes = []
    if described:
        n_a, n_b = described["grid"]
        notes = [(f"{n_a} × {n_b} grid of `score(features(load(a), b))`, every step `cache=True` and sleeping "
                  f"{described['work_seconds'] * 1e3:.0f} ms, {described['threads']} threads; "
                  f"{described['rounds']} rounds (each a new store: a cold sweep, then re-runs); uncached no-work "
                  "sweep = the same grid with the steps neither cached nor working (the engine's floor); ideal "
                  "cold = step calls × sleep / threads. Hit cost per step = (median cached single trial − median "
                  "baseline trial) / 3, the baseline being the same 3 steps neither cached nor working, "
                  f"{described['hit']['trials']} trials of each, interleaved."), ""]
    return [title, ""] + notes + table(header, rows)


def _artifacts(result: Row | None) -> list[str]:
    title = "## 10. Artifacts — a large file kept by a step and read back (ours, local trial store)"
    header = ["artifacts in", "capture ms", "read back ms", "ours ms", "baseline", "baseline ms", "baseline / ours",
              "ranges ms: keeping trial, plain trial, baseline"]
    text = cell(result)
    if text:
        return [title, ""] + table(header, [[text, *[""] * (len(header) - 1)]])
    rows = []
    for where, kind, baseline in (("local folder", "local", "shutil.copyfile + read"),
                                  ("S3 (moto_server)", "s3", "s3fs put_file + get_file + read")):
        f = result[kind]
        if "unavailable" in f:
            rows.append([where, f"n/a: {f['unavailable']}", *[""] * (len(header) - 2)])
            continue
        r = f["rounds"]
        ranges = ", ".join(_spread(r[key]["all"], 1e3, 0) for key in ("keep_trial", "plain_trial", f["baseline"]))
        rows.append([where, _ms(f["capture_seconds"]), _ms(r["read_back"]["median"]), _ms(f["ours_seconds"]),
                     baseline, _ms(f["baseline_seconds"]), f"{f['baseline_over_ours']:.2f}", ranges])
    counts = [len(result[kind]["rounds"]["keep_trial"]["all"]) if "rounds" in result[kind] else 0
              for kind in ("local", "s3")]
    note = (f"{result['mib']} MiB written by a step into `ex.artifact_dir('big')`. From the medians over "
            f"{counts[0]} rounds (S3: {counts[1]}) after a warm-up: capture = the trial keeping the file − the "
            "same trial writing it into a plain folder; read back = `ex.get_artifact` + reading the file; "
            "ours = capture + read back.")
    return [title, "", note, ""] + table(header, rows)


def verdict_rows(workloads: dict[str, dict[str, Row]]) -> list[list[str]]:
    """Rows of the targets table for the step cache and artifacts (local store)."""
    rows = []
    if "step_cache" in workloads:
        r: Any = workloads["step_cache"].get("ours/local")
        speed_target = f"all-cached sweep re-run ≥ {RERUN_SPEEDUP_TARGET:.0f}× faster than its first run (local)"
        hit_target = f"cache hit ≤ {HIT_MS_TARGET:.0f} ms per step (local)"
        if ok(r):
            rows.append(verdict_row(
                speed_target, f"{r['cold_seconds']:.3f} s / {r['rerun_seconds']:.4f} s = {r['speedup']:.1f}x",
                r["speedup"] >= RERUN_SPEEDUP_TARGET))
            h = r["hit"]
            rows.append(verdict_row(
                hit_target, f"{h['hit_ms_per_step']:.3f} ms ({h['hit_ms_per_step'] / HIT_MS_TARGET:.2f}× the "
                f"target; whole cached trial / 3: {h['cached_trial_ms_per_step']:.3f} ms)",
                h["hit_ms_per_step"] <= HIT_MS_TARGET))
        else:
            rows += [verdict_row(speed_target, cell(r) or "-", None), verdict_row(hit_target, cell(r) or "-", None)]
    if "artifacts" in workloads:
        r = workloads["artifacts"].get("ours/local")
        target = f"artifact capture + read back ≥ {COPY_SPEED_TARGET:.0%} of a plain copy's speed (local)"
        if ok(r):
            local = r["local"]
            factor = local["baseline_over_ours"]
            rows.append(verdict_row(
                target, f"copy {local['baseline_seconds'] * 1e3:.1f} ms / ours {local['ours_seconds'] * 1e3:.1f} ms "
                f"= {factor:.2f}", factor >= COPY_SPEED_TARGET))
        else:
            rows.append(verdict_row(target, cell(r) or "-", None))
    return rows
