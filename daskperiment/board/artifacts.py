"""The Artifacts tab: the files chosen trials kept, their images inline, and the steps they took from the cache.

Only records of the store are read here (never file contents, never pickles);
files are linked to the download route of :mod:`daskperiment.board.download`.
Every text from the store is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from daskperiment.backend import Backend
from daskperiment.board import render
from daskperiment.board.download import IMAGE_TYPES, artifact_url, file_name, media_type
from daskperiment.history import describe_cached
from daskperiment.records import ArtifactRecord, TrialRecord

MAX_TRIALS = 10
"""Trials whose files are listed at once: the first selected ones."""
MAX_FILES = 200
"""Files listed per trial; ``daskperiment artifacts ID TRIAL`` lists them all."""
MAX_IMAGES = 24
"""Images shown per trial."""
_UNITS = ("KiB", "MiB", "GiB", "TiB")


@dataclass(frozen=True)
class ArtifactsView:
    """What the Artifacts tab shows."""

    caption: str
    html: str


def human_size(size: int) -> str:
    """``size`` bytes as a short text: ``"512 B"``, ``"1.5 KiB"``, ``"20.0 MiB"``."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if round(value, 1) < 1024 or unit == _UNITS[-1]:
            break
    return f"{value:.1f} {unit}"


def _label(record: ArtifactRecord) -> str:
    return f"{record.name}/{record.path}" if record.path else record.name


def _file_row(record: ArtifactRecord) -> str:
    url = escape(artifact_url(record))
    return (
        f"<tr><td>{escape(record.name)}</td><td>{escape(record.path)}</td>"
        f'<td class="size" title="{record.size} bytes">{human_size(record.size)}</td>'
        f"<td>{escape(record.step) or '–'}</td>"
        f'<td><a href="{url}" download title="{escape(file_name(record))}">download</a></td></tr>'
    )


def _thumbnail(record: ArtifactRecord) -> str:
    url, label = escape(artifact_url(record)), escape(_label(record))
    return (
        f'<figure class="thumb"><a href="{url}" target="_blank" rel="noopener noreferrer">'
        f'<img src="{url}" alt="{label}"></a><figcaption>{label}</figcaption></figure>'
    )


def trial_files(trial: TrialRecord, records: Sequence[ArtifactRecord]) -> str:
    """The files ``trial`` kept (``records``) as a table with download links, then its images.

    A caption names the steps the trial loaded from the step cache.
    """
    total = sum(record.size for record in records)
    files = f"{len(records)} file{'s' * (len(records) != 1)}"
    parts = [f'<h3 class="trial-files">Trial {trial.trial_id} · {files} · {human_size(total)}</h3>']
    if trial.cached_steps:
        parts.append(render.caption(f"Cached: {describe_cached(trial.cached_steps)}"))
    if not records:
        parts.append(render.message(f"Trial {trial.trial_id} kept no files.", "info"))
        return "".join(parts)
    rows = "".join(_file_row(record) for record in records[:MAX_FILES])
    parts.append(
        '<table class="files"><tr><th>Artifact</th><th>Path</th><th>Size</th><th>Step</th><th></th></tr>'
        f"{rows}</table>"
    )
    if len(records) > MAX_FILES:
        parts.append(render.caption(
            f"… and {len(records) - MAX_FILES} more: daskperiment artifacts ID {trial.trial_id} lists them all"
        ))
    images = [r for r in records if media_type(file_name(r)) in IMAGE_TYPES.values()]
    if images:
        parts.append(f'<div class="thumbs">{"".join(_thumbnail(r) for r in images[:MAX_IMAGES])}</div>')
    if len(images) > MAX_IMAGES:
        parts.append(render.caption(f"the first {MAX_IMAGES} of {len(images)} images"))
    return "".join(parts)


def artifacts_view(backend: Backend, trials: Sequence[TrialRecord], selected: bool) -> ArtifactsView:
    """The files of the first :data:`MAX_TRIALS` of ``trials`` (the selected ones, or the latest).

    Parameters
    ----------
    backend : Backend
        The store listing each trial's files.
    trials : sequence of TrialRecord
        The trials to show.
    selected : bool
        Whether ``trials`` were selected (rather than the latest one shown by default).
    """
    if not trials:
        return ArtifactsView(render.caption("No trial yet."), "")
    shown = trials[:MAX_TRIALS]
    ids = ", ".join(str(t.trial_id) for t in shown)
    if selected:
        text = f"Files kept by the selected trials: {ids}"
        if len(trials) > MAX_TRIALS:
            text += f" (the first {MAX_TRIALS} of {len(trials)} selected)"
    else:
        text = f"Files kept by trial {ids}, the latest (tick trials in the table to see theirs)"
    html = "".join(trial_files(trial, backend.load_artifacts(trial.trial_id)) for trial in shown)
    return ArtifactsView(render.caption(text), html)
