"""The Code and Environment views of one or two trials, as escaped HTML."""

from __future__ import annotations

from dataclasses import dataclass, field

from daskperiment.backend import Backend
from daskperiment.board import render
from daskperiment.board.details import code_of, environment_of
from daskperiment.codecontext import code_diff
from daskperiment.collector import diff_environments, environment_lines
from daskperiment.records import TrialRecord

SUMMARY = "summary"
"""The category showing the summary of an environment."""


@dataclass(frozen=True)
class CodeView:
    """What the Code tab shows."""

    caption: str
    html: str


def code_view(backend: Backend, first: TrialRecord | None, second: TrialRecord | None,
              side_by_side: bool) -> CodeView:
    """The code of ``first``, or its diff with ``second`` (unified or side by side)."""
    if first is None:
        return CodeView(render.caption("No trial yet."), "")
    old = code_of(backend, first)
    if second is None:
        return CodeView(render.caption(f"Code of trial {first.trial_id} (select two trials to compare them)"),
                        render.code_block(old))
    new = code_of(backend, second)
    old_label, new_label = f"trial {first.trial_id}", f"trial {second.trial_id}"
    caption = render.caption(f"Code of {old_label} → {new_label}")
    if side_by_side:
        return CodeView(caption, render.side_by_side_diff(old, new, old_label, new_label))
    return CodeView(caption, render.unified_diff(code_diff(old, new, old_label, new_label)))


@dataclass(frozen=True)
class EnvironmentView:
    """What the Environment tab shows."""

    caption: str
    categories: list[str] = field(default_factory=lambda: [SUMMARY])
    """``summary`` and the categories of the first trial's environment."""
    html: str = ""
    diff_html: str = ""


def environment_view(backend: Backend, first: TrialRecord | None, second: TrialRecord | None,
                     category: str) -> EnvironmentView:
    """The environment of ``first`` in ``category``, and what changed in ``second``'s.

    An unknown ``category`` shows the summary.
    """
    environment = environment_of(backend, first) if first is not None else None
    if first is None or environment is None:
        return EnvironmentView(render.caption("No recorded environment."))
    categories = [SUMMARY, *environment]
    lines = environment_lines(environment, category if category in environment else None)
    html = render.caption(f"Environment of trial {first.trial_id}") + render.code_block("\n".join(lines))
    other = environment_of(backend, second) if second is not None else None
    if second is None or other is None:
        caption = render.caption("Select two trials to see what changed between their environments.")
        return EnvironmentView(caption, categories, html)
    diff = diff_environments(environment, other, old_label=f"trial {first.trial_id}",
                             new_label=f"trial {second.trial_id}")
    return EnvironmentView(
        render.caption(f"Environment of trial {first.trial_id} and what changed in trial {second.trial_id}"),
        categories,
        html,
        render.caption(f"Changes from trial {first.trial_id} to {second.trial_id}") + render.unified_diff(diff),
    )
