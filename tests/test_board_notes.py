"""Notes and tags on the dashboard: shown from the store, edited in the Trial tab, on every store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from html import escape
from pathlib import Path
from typing import Any

import pytest
from bokeh.document import Document
from bokeh.events import ButtonClick
from bokeh.models import Button
from test_board import record, write_trials
from test_board_browser import (
    _DEEP_JS,
    browser,  # noqa: F401 - the module's headless Chromium
    board_in_new_tab,
    open_tab,
    page_text,
    wait_for,
    wait_for_text,
)
from test_board_sweep import tick

from daskperiment.annotations import MAX_NOTE_LENGTH, MAX_TAGS, check_note, check_tags
from daskperiment.backend import Backend, LocalBackend, open_backend
from daskperiment.board.app import Dashboard
from daskperiment.board.notes import annotation_edit
from daskperiment.board.store import TrialCache
from daskperiment.errors import AnnotationError
from daskperiment.records import Annotation, AnnotationEdit, Blob

TRIALS = 36
XSS_NOTE = '<img src=x onerror="window.__pwned = 1"><script>window.__pwned = 2</script>'
STORES = ["local", "redis", "mongo"]


def note_of(trial_id: int) -> str:
    """The note the tests give trial ``trial_id``: two lines, what it tried."""
    return f"trial {trial_id}: lr={trial_id / 100}\nkept for the report"


def tags_of(trial_id: int) -> frozenset[str]:
    """The tags the tests give trial ``trial_id``."""
    return frozenset({f"depth-{trial_id % 3}", "even" if trial_id % 2 == 0 else "odd"})


def make_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path, experiment_id: str) -> tuple[Backend, Any]:
    """A store of each kind holding ``TRIALS`` trials of ``experiment_id``; the backend and how the board opens it."""
    if kind == "local":
        folder = tmp_path / f"{experiment_id}-store"
        backend: Backend = LocalBackend(folder / experiment_id, experiment_id)
        location: Any = folder
    else:
        location = request.getfixturevalue(f"{kind}_uri")
        backend = open_backend(location, experiment_id)
    code = Blob.of(b"def train(lr):\n    return lr\n")
    write_trials(backend, [record(t, code, result=t / 10, lr=t / 100, depth=t % 3) for t in range(1, TRIALS + 1)],
                 [code])
    return backend, location


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A store of each kind with ``TRIALS`` trials, none annotated."""
    return make_store(request.param, request, tmp_path, "notes")[0]


def page_of(backend: Backend) -> Dashboard:
    return Dashboard(Document(), TrialCache(backend, min_interval=0), "test store")


def show_trial(page: Dashboard, trial_id: int) -> None:
    """Select ``trial_id`` and show the Trial tab."""
    page.select([trial_id])
    page.tabs.active = [t.title for t in page.tabs.tabs].index("Trial")
    assert page.trial.trial_id == trial_id


def click(button: Button) -> None:
    """Click ``button`` as the browser does: an event of its document."""
    button.document.callbacks.trigger_event(ButtonClick(button))


def type_and_save(page: Dashboard, note: str | None = None, tags: str | None = None) -> str:
    """Type into the editor as a user would (what is left out stays), press Save; the message shown."""
    if note is not None:
        page.trial.note.value_input = note
    if tags is not None:
        page.trial.tags.value_input = tags
    click(page.trial.save)
    return page.trial.message.text


def table_cells(page: Dashboard, title: str) -> dict[int, str]:
    """Per trial id, the text of column ``title`` of the page's history table."""
    field = next(c.field for c in page.history.table.columns if c.title == title)
    data = page.history.source.data
    return dict(zip(data["trial"], data[field]))


# -- without a browser: every store ------------------------------------------------------------------
def test_notes_and_tags_edited_on_the_page_are_stored_and_shown(store: Backend) -> None:
    page = page_of(store)
    assert "Note" not in page.cache.frame.columns  # nothing annotated yet: no empty columns
    for t in range(1, TRIALS + 1):
        show_trial(page, t)
        assert (page.trial.note.value, page.trial.tags.value) == ("", "")
        message = type_and_save(page, note_of(t), ", ".join(sorted(tags_of(t))))
        assert message == f'<div class="message info">Saved the note and tags of trial {t}.</div>'
    stored = store.load_annotations()
    reader = TrialCache(store, min_interval=0)
    reader.refresh()
    notes, tags = table_cells(page, "Note"), table_cells(page, "Tags")
    for t in range(1, TRIALS + 1):
        assert stored[t] == Annotation(t, note_of(t), tags_of(t)), t
        assert (reader.frame.loc[t, "Note"], reader.frame.loc[t, "Tags"]) == (note_of(t), ", ".join(sorted(tags_of(t))))
        assert notes[t] == note_of(t) and tags[t] == ", ".join(sorted(tags_of(t))), t
    show_trial(page, 7)
    assert page.trial.note.value == note_of(7) and page.trial.tags.value == "depth-1, odd"
    assert f"<th>Note</th><td class=\"\">{escape(note_of(7))}</td>" in page.trial.details.text


def test_an_edit_writes_only_what_the_user_changed(store: Backend) -> None:
    store.edit_annotations([AnnotationEdit(t, note=note_of(t), tags=tags_of(t)) for t in range(1, TRIALS + 1)])
    page = page_of(store)
    for t in range(1, TRIALS + 1, 5):
        show_trial(page, t)
        store.edit_annotations([AnnotationEdit(t, add_tags=frozenset({"elsewhere"}))])  # meanwhile, another user
        kept = sorted(tags_of(t) - {"odd", "even"})
        type_and_save(page, tags=", ".join([*kept, "mine"]))  # the user drops odd/even and adds "mine"
        assert store.load_annotations([t])[t] == Annotation(t, note_of(t), frozenset({*kept, "mine", "elsewhere"})), t
    untouched = store.load_annotations()
    for t in range(1, TRIALS + 1):
        if t % 5 != 1:
            assert untouched[t] == Annotation(t, note_of(t), tags_of(t)), t
    show_trial(page, 2)
    assert type_and_save(page) == '<div class="message info">Nothing changed.</div>'
    type_and_save(page, note="", tags="")  # cleared: the trial has no annotation left
    assert 2 not in store.load_annotations([2])
    assert table_cells(page, "Note")[2] == "" and table_cells(page, "Tags")[2] == ""


def errors_of(check: Callable[[Any], Any], value: Any) -> str:
    """The message ``check`` raises for ``value`` (what ``ex.set_note`` / ``ex.add_tags`` would say)."""
    with pytest.raises(AnnotationError) as raised:
        check(value)
    return str(raised.value)


@pytest.mark.parametrize("note, tags, check, checked", [
    ("red \x1b[31m text", "a", check_note, "red \x1b[31m text"),
    ("x" * (MAX_NOTE_LENGTH + 1), "a", check_note, "x" * (MAX_NOTE_LENGTH + 1)),
    ("fine", "t" * 65, check_tags, ["t" * 65]),
    ("fine", "bell\x07", check_tags, ["bell\x07"]),
    ("fine", "bad\udc80", check_tags, ["bad\udc80"]),
    ("fine", ", ".join(f"t{i}" for i in range(MAX_TAGS + 1)), check_tags, [f"t{i}" for i in range(MAX_TAGS + 1)]),
])
def test_what_cannot_be_kept_is_an_inline_error_and_nothing_is_written(
        store: Backend, note: str, tags: str, check: Callable[[Any], Any], checked: Any) -> None:
    store.edit_annotations([AnnotationEdit(4, note="before", tags=frozenset({"old"}))])
    page = page_of(store)
    show_trial(page, 4)
    message = type_and_save(page, note, tags)
    assert message == f'<div class="message error">{escape(errors_of(check, checked))}</div>'
    assert store.load_annotations() == {4: Annotation(4, "before", frozenset({"old"}))}
    assert page.trial.note.value_input == note  # what the user typed stays, to be fixed
    click(page.trial.revert)
    assert (page.trial.note.value_input, page.trial.tags.value_input, page.trial.message.text) == ("before", "old", "")


def test_tags_counted_on_what_the_store_holds(store: Backend) -> None:
    store.edit_annotations([AnnotationEdit(9, tags=frozenset(f"t{i}" for i in range(MAX_TAGS - 1)))])
    page = page_of(store)
    show_trial(page, 9)
    store.edit_annotations([AnnotationEdit(9, add_tags=frozenset({"elsewhere"}))])  # the 64th, meanwhile
    message = type_and_save(page, tags=page.trial.tags.value_input + ", one-too-many")
    assert f"a trial has at most {MAX_TAGS} tags; trial 9 would have {MAX_TAGS + 1}" in message
    assert len(store.load_annotations([9])[9].tags) == MAX_TAGS


def test_the_editor_keeps_what_the_user_types_and_follows_the_store_otherwise(store: Backend) -> None:
    page = page_of(store)
    show_trial(page, 3)
    store.edit_annotations([AnnotationEdit(3, note="set elsewhere", add_tags=frozenset({"x"}))])
    page.refresh()
    assert (page.trial.note.value, page.trial.tags.value) == ("set elsewhere", "x")  # not edited: follows
    page.trial.note.value_input = "half typed"
    store.edit_annotations([AnnotationEdit(3, note="again elsewhere")])
    page.refresh()
    assert page.trial.note.value_input == "half typed"  # the user's text is never replaced under them
    assert table_cells(page, "Note")[3] == "again elsewhere"
    page.select([5])
    assert page.trial.trial_id == 5 and page.trial.note.value_input == ""


def test_annotation_edit_is_a_diff_over_what_was_shown() -> None:
    shown = Annotation(3, "n", frozenset({"a", "b"}))
    assert annotation_edit(shown, shown, "n", "b, a") is None
    assert annotation_edit(shown, shown, "n", " b ,c,, ") == AnnotationEdit(3, add_tags=frozenset({"c"}),
                                                                              remove_tags=frozenset({"a"}))
    assert annotation_edit(shown, shown, "m", "a, b") == AnnotationEdit(3, note="m")


# -- in the browser: every store ---------------------------------------------------------------------
FIELD = _DEEP_JS + """
return deep(document, arguments[0], []).find(el => el.offsetParent !== null) || null;
"""
BUTTON = _DEEP_JS + """
return deep(document, 'button', []).find(b => b.textContent.trim() === arguments[0]) || null;
"""
TABLE_CELL = """
const table = Bokeh.documents[0].get_model_by_name('history_table');
const column = table.columns.find(c => c.title === arguments[0]);
const data = name => { const d = table.source.data; return Array.from(d.get ? d.get(name) : d[name]); };
if (!column) return null;
return data(column.field)[data('trial').indexOf(arguments[1])];
"""
INJECTED = _DEEP_JS + """
return [window.__pwned || null, deep(document, 'img', []).filter(i => i.getAttribute('src') === 'x').length];
"""


def field(driver: Any, selector: str) -> Any:
    return wait_for(lambda: driver.execute_script(FIELD, selector), selector)


def replace_text(driver: Any, selector: str, text: str) -> None:
    """Type ``text`` into the visible field ``selector`` instead of what it holds."""
    element = field(driver, selector)
    element.clear()
    element.send_keys(text)


def save(driver: Any) -> None:
    wait_for(lambda: driver.execute_script(BUTTON, "Save note and tags"), "the save button").click()


@pytest.fixture(params=STORES)
def notes_page(request: pytest.FixtureRequest, tmp_path: Path,
               browser: Any) -> Iterator[tuple[Any, Backend]]:  # noqa: F811
    """The dashboard of a store of each kind with ``TRIALS`` trials, in a new browser tab; and the store."""
    backend, location = make_store(request.param, request, tmp_path, "notes_browser")
    yield from ((driver, backend) for driver in board_in_new_tab(browser, "notes_browser", location, str(TRIALS)))


def test_a_note_and_tags_edited_in_the_browser(notes_page: tuple[Any, Backend]) -> None:
    driver, backend = notes_page
    tick(driver, 7)
    open_tab(driver, "Trial")
    wait_for_text(driver, "Trial 7 of the 1 selected")
    replace_text(driver, "textarea", XSS_NOTE)
    replace_text(driver, "input[placeholder^='e.g. baseline']", "keep, drop")
    save(driver)
    wait_for(lambda: backend.load_annotations() == {7: Annotation(7, XSS_NOTE, frozenset({"keep", "drop"}))},
             "the note and tags stored")
    wait_for_text(driver, "Saved the note and tags of trial 7.")
    assert XSS_NOTE in page_text(driver)  # the details show the note as text
    open_tab(driver, "Trials")
    wait_for(lambda: driver.execute_script(TABLE_CELL, "Note", 7) == XSS_NOTE, "the note in the table")
    assert driver.execute_script(TABLE_CELL, "Tags", 7) == "drop, keep"
    assert driver.execute_script(INJECTED) == [None, 0]  # shown as text: nothing ran, no image made

    open_tab(driver, "Trial")
    replace_text(driver, "input[placeholder^='e.g. baseline']", "keep")  # a tag removed
    save(driver)
    wait_for(lambda: backend.load_annotations()[7].tags == frozenset({"keep"}), "the tag removed")

    replace_text(driver, "input[placeholder^='e.g. baseline']", "keep, " + "t" * 65)
    save(driver)
    error = errors_of(check_tags, ["t" * 65])
    wait_for_text(driver, error)
    assert backend.load_annotations() == {7: Annotation(7, XSS_NOTE, frozenset({"keep"}))}
    assert driver.execute_script(INJECTED) == [None, 0]
