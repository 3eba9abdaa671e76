"""Notes and tags of trials: what text they may hold, and how tables show tags.

A note is free text (lines and tabs allowed); a tag is a short label. Both are
checked when given, so that every store holds them the same way and every
reader (terminal, dashboard, CSV) shows them as they were written:

- a note holds at most :data:`MAX_NOTE_LENGTH` characters, no NUL and no other
  control character than newline, carriage return and tab (terminal escape
  sequences stay out of the CLI's output);
- a tag holds 1 to :data:`MAX_TAG_LENGTH` characters, no control character, no
  comma (tables join tags with ``", "``) and no space at either end; a trial has
  at most :data:`MAX_TAGS` tags;
- neither holds a lone surrogate (text that cannot be stored as UTF-8).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from daskperiment.errors import AnnotationError

MAX_NOTE_LENGTH = 65_536
"""Characters a note may hold."""
MAX_TAG_LENGTH = 64
"""Characters a tag may hold."""
MAX_TAGS = 64
"""Tags a trial may have."""
TAG_SEPARATOR = ", "
"""What joins a trial's tags in the history's ``Tags`` column (sorted): ``"baseline, lr-sweep"``."""
_NOTE_CONTROLS = frozenset("\n\r\t")


def check_note(text: object) -> str:
    """``text`` as a note, once checked (``""`` clears a note).

    Raises
    ------
    TypeError
        When ``text`` is not a str.
    AnnotationError
        When it is too long, or holds a NUL, a control character other than
        newline, carriage return and tab, or a lone surrogate.
    """
    if not isinstance(text, str):
        raise TypeError(
            f"a note must be a str, got {type(text).__name__} {_shown(text)}; write it as text, "
            "e.g. ex.set_note(3, 'diverged after epoch 40')"
        )
    if len(text) > MAX_NOTE_LENGTH:
        raise AnnotationError(
            f"a note holds at most {MAX_NOTE_LENGTH} characters, this one has {len(text)}: keep "
            "long texts in a file and save it as an artifact (ex.capture_artifact)"
        )
    _check_encodable(text, "note")
    bad = next((c for c in text if _is_control(c) and c not in _NOTE_CONTROLS), None)
    if bad is not None:
        raise AnnotationError(
            f"a note may not hold the control character {bad!r} (only newlines and tabs): "
            "remove it"
        )
    return text


def check_tag(tag: object) -> str:
    """``tag`` once checked.

    Raises
    ------
    TypeError
        When ``tag`` is not a str.
    AnnotationError
        When it is empty, too long, starts or ends with a space, or holds a
        comma, a control character or a lone surrogate.
    """
    if not isinstance(tag, str):
        raise TypeError(
            f"a tag must be a str, got {type(tag).__name__} {_shown(tag)}; e.g. "
            "ex.add_tags(3, 'baseline')"
        )
    if not tag.strip():
        raise AnnotationError(f"a tag must hold some text, got {tag!r}; e.g. 'baseline'")
    if len(tag) > MAX_TAG_LENGTH:
        raise AnnotationError(
            f"a tag holds at most {MAX_TAG_LENGTH} characters, {_shown(tag)} has {len(tag)}: "
            "use a shorter label (and the note for longer text)"
        )
    _check_encodable(tag, "tag")
    if tag != tag.strip():
        raise AnnotationError(f"a tag may not start or end with a space: {tag!r}; use {tag.strip()!r}")
    if "," in tag:
        raise AnnotationError(
            f"a tag may not hold a comma (tables list tags separated by commas): {tag!r}; "
            "give two tags instead, or use another character"
        )
    bad = next((c for c in tag if _is_control(c)), None)
    if bad is not None:
        raise AnnotationError(f"a tag may not hold the control character {bad!r}: {tag!r}")
    return tag


def check_tags(tags: Iterable[object]) -> frozenset[str]:
    """The tags of ``tags``, each checked (see :func:`check_tag`).

    Raises
    ------
    TypeError
        When a single str is given where tags are expected, or a tag is not a str.
    AnnotationError
        For a malformed tag, or more than :data:`MAX_TAGS`.
    """
    if isinstance(tags, (str, bytes)):
        raise TypeError(
            f"give tags as several str arguments or a collection of str, not the single text "
            f"{tags!r} (which would be split into characters)"
        )
    checked = frozenset(check_tag(tag) for tag in tags)
    check_tag_count(checked)
    return checked


def check_tag_count(tags: frozenset[str], trial_id: int | None = None) -> None:
    """Raise :class:`AnnotationError` when ``tags`` are more than :data:`MAX_TAGS`."""
    if len(tags) > MAX_TAGS:
        whose = f"trial {trial_id} would have" if trial_id is not None else "got"
        raise AnnotationError(
            f"a trial has at most {MAX_TAGS} tags; {whose} {len(tags)}: remove some first"
        )


def tags_text(tags: Iterable[str]) -> str:
    """Tags as the history shows them: sorted, joined by ``", "`` (``""`` for none)."""
    return TAG_SEPARATOR.join(sorted(tags))


def _is_control(character: str) -> bool:
    return unicodedata.category(character) in ("Cc", "Cs")


def _check_encodable(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AnnotationError(
            f"a {what} may not hold a lone surrogate ({text[exc.start]!r} at position "
            f"{exc.start}): it cannot be stored as UTF-8 text; decode the text properly "
            "(e.g. with errors='replace')"
        ) from None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
