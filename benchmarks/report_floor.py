"""Report section 11 (a tracked trial against the physical floor) and its target verdicts."""

from __future__ import annotations

from typing import Any

from benchmarks.tables import Row, cell, num, ok, table, verdict_row

FLOOR_RATIO_TARGET = 1.3
"""A tracked trial ≤ 1.3× the physical floor, sync and threads, in every window."""
DRIFT_TARGET = 1.1
"""Flat: ours' last window ÷ first window within 10% of the floor's own drift."""
RSS_TARGET = 1.1
"""Flat memory: RSS after the last window ≤ 1.1× after the first."""
HISTORY_SECONDS_TARGET = 1.0
"""``get_history()`` of 100,000 trials ≤ 1 s (the MongoDB-wire test server excepted)."""


def _bytes(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def section(workload: dict[str, Row]) -> list[str]:
    """The Markdown of section 11."""
    title = "## 11. Physical floor — ms per trial, median of each window (ours × floor, same scheduler)"
    note = ("floor = the scheduler's own get on the prebuilt 2-step graph + one SQLite transaction of the "
            "trial row and its 10 metric rows; old floor = plain dask.delayed rebuilt and computed. Ours runs "
            "2 trials per round (sync, then threads), so a window of N rounds adds 2N trials. History before "
            "each window written in bulk (see benchmarks/workloads/physical_floor.py). Store bytes: "
            "allocated on disk per trial (per trial added since the previous window).")
    header = ["backend", "window", "ours sync", "floor sync", "ours threads", "floor threads",
              "old floor (ours threads ×)", "RSS MiB (growth in the window)", "store B/trial", "floor DB B/trial", "round trips/trial"]
    rows = []
    for key, result in workload.items():
        backend = key.split("/")[1]
        text = cell(result)
        if text:
            rows.append([backend, text, *[""] * (len(header) - 2)])
            continue
        for w in result["windows"]:
            m, r = w["median_ms"], w["ratio"]
            store = _bytes(w.get("ours_bytes_per_trial"))
            if "ours_bytes_per_added_trial" in w:
                store += f" ({_bytes(w['ours_bytes_per_added_trial'])})"
            floor_db = _bytes(w["floor_bytes_per_trial"])
            if "floor_bytes_per_added_trial" in w:
                floor_db += f" ({_bytes(w['floor_bytes_per_added_trial'])})"
            rows.append([
                backend, f"{w['first']:,}-{w['last']:,}",
                f"{num(m['ours_sync'], 3)} ({r['sync']:.2f}x)", num(m["floor_sync"], 3),
                f"{num(m['ours_threads'], 3)} ({r['threads']:.2f}x)", num(m["floor_threads"], 3),
                f"{num(m['old_floor'], 3)} ({r['ours_threads_vs_old_floor']:.2f}x)",
                f"{w['rss_mib']:.0f} (+{w.get('rss_growth_mib', 0):.1f})", store, floor_db,
                num(w.get("round_trips_per_trial"), 2) if "round_trips_per_trial" in w else "-",
            ])
    history = []
    for key, result in workload.items():
        if ok(result):
            h = result["history"]
            history.append(f"{key.split('/')[1]}: get_history() of {h['rows']:,} trials "
                           f"{h['median_seconds']:.3f} s (first call {h['first_seconds']:.3f} s)")
    return [title, "", note, ""] + table(header, rows) + ["", "; ".join(history) + "."]


def verdict_rows(workload: dict[str, Row]) -> list[list[str]]:
    """Rows of the targets table: ratio to the floor, flatness, memory, history."""
    rows = []
    for key, result in workload.items():
        backend = key.split("/")[1]
        if not ok(result):
            rows.append(verdict_row(f"physical floor ({backend})", cell(result) or "-", None))
            continue
        windows = result["windows"]
        first, last = windows[0], windows[-1]
        if backend == "local":
            for scheduler in ("sync", "threads"):
                ratios = [w["ratio"][scheduler] for w in windows]
                rows.append(verdict_row(
                    f"tracked trial ≤ {FLOOR_RATIO_TARGET}× physical floor ({scheduler}, every window)",
                    ", ".join(f"{w['first']:,}: {w['ratio'][scheduler]:.2f}x" for w in windows),
                    max(ratios) <= FLOOR_RATIO_TARGET))
        for scheduler in ("sync", "threads"):
            ours = last["median_ms"][f"ours_{scheduler}"] / first["median_ms"][f"ours_{scheduler}"]
            floor = last["median_ms"][f"floor_{scheduler}"] / first["median_ms"][f"floor_{scheduler}"]
            rows.append(verdict_row(
                f"flat to trial {last['first']:,} ({backend}, {scheduler}): drift within 10% of the floor's",
                f"ours {ours:.2f}, floor {floor:.2f}", ours / floor <= DRIFT_TARGET))
        growth = last["rss_mib"] / first["rss_mib"]
        rows.append(verdict_row(f"RSS flat across the windows ({backend})",
                                f"{first['rss_mib']:.0f} → {last['rss_mib']:.0f} MiB", growth <= RSS_TARGET))
        if "ours_bytes_per_added_trial" in last and len(windows) > 2:
            before, now = windows[-2]["ours_bytes_per_added_trial"], last["ours_bytes_per_added_trial"]
            rows.append(verdict_row(f"store size per trial flat ({backend})",
                                    f"{before:,.0f} → {now:,.0f} B per added trial", now <= 1.1 * before))
        if "round_trips_per_trial" in last:
            rows.append(verdict_row(f"round trips per trial ({backend}): one to allocate, one to write",
                                    f"{last['round_trips_per_trial']:.2f}", last["round_trips_per_trial"] <= 2))
        h = result["history"]
        rows.append(verdict_row(
            f"get_history() ≤ {HISTORY_SECONDS_TARGET:.0f} s ({backend}, {h['rows']:,} trials)",
            f"{h['median_seconds']:.3f} s",
            None if backend == "mongo" else h["median_seconds"] <= HISTORY_SECONDS_TARGET))
    return rows
