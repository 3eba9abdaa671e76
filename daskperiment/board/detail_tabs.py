"""The Code, Environment and Artifacts tabs: what the selected trials ran, where, and the files they kept."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bokeh.layouts import column, row
from bokeh.models import Div, RadioButtonGroup, Select

from daskperiment.board.artifacts import artifacts_view
from daskperiment.board.views import SUMMARY, code_view, environment_view

if TYPE_CHECKING:
    from daskperiment.board.session import Session
    from daskperiment.records import TrialRecord


def _shown(session: Session, default: int) -> list[TrialRecord]:
    """The selected trials, else the ``default`` latest ones, as far as they are loaded."""
    ids = session.selection or [int(t) for t in session.scope().index[-default:]]
    return [t for t in (session.cache.trial(i) for i in ids) if t is not None]


def _pair(session: Session) -> tuple[TrialRecord | None, TrialRecord | None]:
    """The first two selected trials (or the latest one)."""
    trials = _shown(session, 1)[:2]
    return (trials[0] if trials else None), (trials[1] if len(trials) > 1 else None)


class CodeTab:
    """A trial's code, or the diff between the first two selected trials."""

    def __init__(self, session: Session, width: int) -> None:
        self.session = session
        self.diff_mode = RadioButtonGroup(labels=["Unified diff", "Side by side"], active=1, width=240)
        self.diff_mode.on_change("active", session.guard.on_change(self.update))
        self.caption = Div(text="", name="code_caption", width=width - 260, stylesheets=[session.style])
        self.code = Div(text="", name="code_view", width=width, stylesheets=[session.style])
        self.layout = column(row(self.diff_mode, self.caption), self.code)

    def update(self) -> None:
        """Show the code of one trial, or the diff between the first two selected."""
        view = code_view(self.session.cache.backend, *_pair(self.session), side_by_side=self.diff_mode.active == 1)
        self.caption.text = view.caption
        self.code.text = view.html


class EnvironmentTab:
    """A trial's environment by category, and what changed between two trials."""

    def __init__(self, session: Session, width: int) -> None:
        self.session = session
        self.category = Select(title="Category", value=SUMMARY, options=[SUMMARY], width=220)
        self.category.on_change("value", session.guard.on_change(self.update))
        self.caption = Div(text="", name="environment_caption", width=width - 260, stylesheets=[session.style])
        self.environment = Div(text="", name="environment_view", width=width // 2 - 10, stylesheets=[session.style])
        self.diff = Div(text="", name="environment_diff", width=width // 2 - 10, stylesheets=[session.style])
        self.layout = column(row(self.category, self.caption), row(self.environment, self.diff))

    def update(self) -> None:
        """Show the first selected trial's environment, and what changed in the second's."""
        view = environment_view(self.session.cache.backend, *_pair(self.session), category=self.category.value)
        self.session.guard.set(self.category, "options", view.categories)
        if self.category.value not in view.categories:
            self.session.guard.set(self.category, "value", SUMMARY)
        self.caption.text = view.caption
        self.environment.text = view.html
        self.diff.text = view.diff_html


class ArtifactsTab:
    """The files the selected (or the latest) trials kept, and the steps they took from the cache."""

    def __init__(self, session: Session, width: int) -> None:
        self.session = session
        self.caption = Div(text="", name="artifacts_caption", width=width, stylesheets=[session.style])
        self.artifacts = Div(text="", name="artifacts_view", width=width, stylesheets=[session.style])
        self.layout = column(self.caption, self.artifacts)

    def update(self) -> None:
        """List the files of the shown trials."""
        view = artifacts_view(self.session.cache.backend, _shown(self.session, 1),
                              selected=bool(self.session.selection))
        self.caption.text = view.caption
        self.artifacts.text = view.html
