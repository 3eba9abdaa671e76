"""Markdown table helpers shared by the report's sections."""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]
"""One job's result: ``status`` (ok/unavailable/error) and its figures."""


def cell(result: Row | None) -> str | None:
    """The text of a row that has no figures (unavailable or failed), else None."""
    if result is None:
        return "not run"
    if result.get("status") == "unavailable":
        return f"n/a: {result.get('reason', '')}"
    if result.get("status") != "ok":
        return f"error: {result.get('reason', '')}"
    return None


def num(value: float | None, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals (thousands separated, no decimals, from 1,000)."""
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def ratio(value: float | None, base: float | None) -> str:
    """`` (value/base x)``, or nothing when either is missing."""
    if value is None or not base:
        return ""
    return f" ({value / base:.2f}x)"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def ok(result: Row | None) -> bool:
    """Whether ``result`` has figures."""
    return result is not None and result.get("status") == "ok"


def verdict_row(target: str, figure: str, met: bool | None) -> list[str]:
    """A row of the targets table: met, NOT met, or n/a (no figure)."""
    return [target, figure, "n/a" if met is None else ("met" if met else "NOT met")]
