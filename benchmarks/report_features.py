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
    header = ["artifacts in", "capture ms", "read back ms", "ours ms", "baseline", "baseline ms",
              "baseline / ours (per round)"]
    text = cell(result)
    if text:
        return [title, ""] + table(header, [[text, *[""] * (len(header) - 1)]])
    local = result["local"]
    rows = [["local folder", _ms(local["capture"]["median"]), _ms(local["read_back"]["median"]),
             _ms(local["ours"]["median"]), "shutil.copyfile + read", _ms(local["copy"]["median"]),
             f"{local['copy']['median'] / local['ours']['median']:.2f} "
             f"({_spread(local['copy_over_ours']['all'])})"]]
    s3 = result["s3"]
    if "unavailable" in s3:
        rows.append(["S3 (moto_server)", f"n/a: {s3['unavailable']}", *[""] * (len(header) - 2)])
    else:
        rows.append(["S3 (moto_server)", _ms(s3["capture"]["median"]), _ms(s3["read_back"]["median"]),
                     _ms(s3["ours"]["median"]), "s3fs put_file + get_file + read", _ms(s3["plain_s3"]["median"]),
                     f"{s3['plain_s3']['median'] / s3['ours']['median']:.2f}"])
    note = (f"{result['mib']} MiB written by a step into `ex.artifact_dir('big')`; capture = that trial − the "
            "same trial writing into a plain folder; read back = `ex.get_artifact` + reading the file; medians "
            f"over {len(local['ours']['all'])} rounds (S3: {len(s3.get('ours', {}).get('all', []))}) after a "
            f"warm-up; every figure is a median of its own (ours = capture + read back per round); local "
            f"captures {_spread(local['capture']['all'], 1e3, 1)} ms, "
            f"copies {_spread(local['copy']['all'], 1e3, 1)} ms.")
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
            factor = local["copy"]["median"] / local["ours"]["median"]
            rows.append(verdict_row(
                target, f"copy {local['copy']['median'] * 1e3:.1f} ms / ours {local['ours']['median'] * 1e3:.1f} ms "
                f"= {factor:.2f}", factor >= COPY_SPEED_TARGET))
        else:
            rows.append(verdict_row(target, cell(r) or "-", None))
    return rows
