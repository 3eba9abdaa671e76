"""The Trial tab: one trial in detail, with its note and tags editable.

An edit is checked as ``ex.set_note`` and ``ex.add_tags`` check theirs (see
:mod:`daskperiment.annotations`): a note or tag that cannot be kept is an
inline error, and nothing is written. Only what the user changed is written,
as one atomic edit of the store (:meth:`~daskperiment.backend.base.Backend.edit_annotations`):
a tag someone else added meanwhile stays. Every text is shown escaped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bokeh.layouts import column, row
from bokeh.models import Button, Div, Select, Spacer, TextAreaInput, TextInput

from daskperiment.annotations import check_note, check_tag_count, check_tags, tags_text
from daskperiment.board import render
from daskperiment.board.compare import compare_table, metric_summaries_of
from daskperiment.board.summary import best_of
from daskperiment.errors import AnnotationError
from daskperiment.records import Annotation, AnnotationEdit

if TYPE_CHECKING:
    from daskperiment.board.session import Session

MAX_CHOICES = 500
"""Selected trials offered in the tab's trial menu at most (the first ones)."""
TAGS_HINT = "Tags, separated by commas"


def typed_tags(text: str) -> frozenset[str]:
    """The tags typed in the tags box as ``a, b`` (spaces around each are dropped), each checked.

    Raises
    ------
    AnnotationError
        For a malformed tag, or more tags than a trial may have.
    """
    return check_tags(tag.strip() for tag in text.split(",") if tag.strip())


def annotation_edit(shown: Annotation, stored: Annotation, note: str, tags: str) -> AnnotationEdit | None:
    """The edit of the note and tags typed over those the editor showed; None when nothing changed.

    Parameters
    ----------
    shown : Annotation
        The trial's note and tags as the editor showed them.
    stored : Annotation
        The trial's note and tags as the store holds them now (the tags it
        will have are counted on these).
    note : str
        The note typed.
    tags : str
        The tags typed, as ``a, b``.

    Raises
    ------
    TypeError, AnnotationError
        For a note or tags that cannot be kept (as ``ex.set_note`` and ``ex.add_tags`` raise).
    """
    text = check_note(note)
    typed = typed_tags(tags)
    added, removed = typed - shown.tags, shown.tags - typed
    check_tag_count((stored.tags | added) - removed, shown.trial_id)
    changed = text if text != shown.note else None
    if changed is None and not added and not removed:
        return None
    return AnnotationEdit(shown.trial_id, note=changed, add_tags=added, remove_tags=removed)


class TrialTab:
    """One trial of the selection (else the latest) in detail, and an editor of its note and tags.

    Parameters
    ----------
    session : Session
        The page.
    width : int
        Width of the tab.
    """

    def __init__(self, session: Session, width: int) -> None:
        self.session = session
        guard = session.guard
        self.trial = Select(title="Trial", value="", options=[], width=150, name="trial_choice")
        self.trial.on_change("value", guard.on_change(self.update))
        self.caption = Div(text="", name="trial_caption", width=width - 180, stylesheets=[session.style])
        self.details = Div(text="", name="trial_details", width=width // 2, stylesheets=[session.style])
        editor_width = width // 2 - 40
        self.note = TextAreaInput(title="Note", rows=10, width=editor_width, max_length=None, name="note_input",
                                  placeholder="What this trial tried, what came of it")
        self.tags = TextInput(title=TAGS_HINT, width=editor_width, name="tags_input",
                              placeholder="e.g. baseline, lr-sweep")
        self.save = Button(label="Save note and tags", button_type="primary", width=170, name="save_annotation")
        self.save.on_click(guard.on_click(self._save))
        self.revert = Button(label="Revert", width=90, name="revert_annotation")
        self.revert.on_click(guard.on_click(self._revert))
        self.message = Div(text="", name="annotation_message", width=editor_width, stylesheets=[session.style])
        self.layout = column(
            row(self.trial, column(Spacer(height=24), self.caption)),
            row(self.details, Spacer(width=20),
                column(self.note, self.tags, row(self.save, self.revert), self.message)),
        )
        self.trial_id: int | None = None
        self._shown = Annotation(0)
        """The note and tags the editor was filled with (what an edit changes)."""

    # -- what is shown --------------------------------------------------------------
    def _choices(self) -> list[int]:
        session = self.session
        return session.selection[:MAX_CHOICES] or [int(t) for t in session.scope().index[-1:]]

    def update(self) -> None:
        """Show the chosen trial; the editor keeps what the user typed and has not saved."""
        session = self.session
        choices = self._choices()
        session.guard.set(self.trial, "options", [(str(t), f"trial {t}") for t in choices])
        if self.trial.value not in {str(t) for t in choices}:
            session.guard.set(self.trial, "value", str(choices[0]) if choices else "")
        editable = bool(choices)
        for widget in (self.note, self.tags, self.save, self.revert):
            widget.disabled = not editable
        if not editable:
            self.trial_id = None
            self.caption.text = render.caption("No trial yet.")
            self.details.text = ""
            self._fill(Annotation(0))
            return
        trial_id = int(self.trial.value)
        self.caption.text = render.caption(self._caption(trial_id))
        self._show_details(trial_id)
        stored = session.cache.annotation(trial_id)
        if trial_id != self.trial_id:
            self.trial_id = trial_id
            self.message.text = ""
            self._fill(stored)
        elif not self._edited():  # changed elsewhere, maybe: shown as stored
            self._fill(stored)

    def _caption(self, trial_id: int) -> str:
        selected = self.session.selection
        if not selected:
            return f"Trial {trial_id}, the latest (select trials to choose among them)"
        text = f"Trial {trial_id} of the {len(selected)} selected"
        return text + (f" (the menu offers the first {MAX_CHOICES})" if len(selected) > MAX_CHOICES else "")

    def _show_details(self, trial_id: int) -> None:
        cache = self.session.cache
        frame = cache.frame
        shown = frame.loc[frame.index == trial_id]
        metrics = metric_summaries_of(cache.backend, [trial_id])
        self.details.text = compare_table(shown, cache.parameter_names(), metrics,
                                          best_of(self.session.scope(), self.session.direction()))

    # -- the editor -----------------------------------------------------------------
    def _fill(self, annotation: Annotation) -> None:
        """Show ``annotation`` in the editor (the user's unsaved text is replaced)."""
        self._shown = annotation
        for widget, text in ((self.note, annotation.note), (self.tags, tags_text(annotation.tags))):
            widget.value = text
            widget.value_input = text

    def _edited(self) -> bool:
        """Whether the user typed something other than what the editor was filled with."""
        return (self.note.value_input, self.tags.value_input) != (self._shown.note, tags_text(self._shown.tags))

    def _revert(self) -> None:
        if self.trial_id is not None:
            self._fill(self.session.cache.annotation(self.trial_id))
            self.message.text = ""

    def _save(self) -> None:
        """Write what the user changed, or say why it cannot be kept (then nothing is written)."""
        if self.trial_id is None:
            return
        cache, trial_id = self.session.cache, self.trial_id
        stored = cache.backend.load_annotations([trial_id]).get(trial_id, Annotation(trial_id))
        try:
            edit = annotation_edit(self._shown, stored, self.note.value_input, self.tags.value_input)
        except (TypeError, AnnotationError) as exc:
            self.message.text = render.message(str(exc))
            return
        if edit is None:
            self.message.text = render.message("Nothing changed.", "info")
            return
        self._fill(cache.edit_annotation(edit))
        self.message.text = render.message(f"Saved the note and tags of trial {trial_id}.", "info")
        self.session.redraw()
