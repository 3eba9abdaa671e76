"""The dashboard's view of a store: open an existing experiment, follow its new trials."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from daskperiment.annotations import tags_text
from daskperiment.artifactstore import ArtifactStore, artifact_location
from daskperiment.backend import Backend, open_existing
from daskperiment.direction import Direction, load_direction, save_direction
from daskperiment.experiment import validate_experiment_id
from daskperiment.history import history_frame
from daskperiment.records import Annotation, AnnotationEdit, TrialRecord, TrialStart
from daskperiment.serialization import Trust, trusting

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

Artifacts = str | os.PathLike[str] | ArtifactStore | None
"""An artifact location as the dashboard takes it (see :func:`open_artifacts`)."""

GAP_WINDOW = 1000
"""Missing ids this close to the last one are asked for again: a trial may finish after a later one."""

RUNNING_COLUMN, RUNNING = "Status", "running"
"""A trial whose ``Status`` cell is ``running`` is read again at each refresh until it has finished."""

MIN_REFRESH_SECONDS = 1.0
"""Sessions refreshing more often than this share the previous answer of the store."""


def open_store(experiment_id: str, backend: str | os.PathLike[str] | Backend = "local") -> Backend:
    """Open the store of an existing experiment, never creating one.

    Parameters
    ----------
    experiment_id : str
        Id of the experiment.
    backend : {"local"}, pathlib.Path, str URI or Backend, default "local"
        ``"local"`` is ``daskperiment_cache/``; a folder holds the experiment as
        ``FOLDER/<id>/<id>.sqlite3`` or ``FOLDER/<id>.sqlite3``; a URI names a
        Redis or MongoDB store; a backend is used as is.

    Raises
    ------
    ExperimentNotFoundError
        When the store holds no experiment ``experiment_id`` (the message lists those it has).
    BackendError
        When the backend is unknown or cannot be reached.
    """
    validate_experiment_id(experiment_id)
    return open_existing(backend, experiment_id)


def open_artifacts(backend: Backend, artifacts: Artifacts = None) -> ArtifactStore:
    """The artifact store of the experiment of ``backend`` (nothing is created).

    Parameters
    ----------
    backend : Backend
        The experiment's store.
    artifacts : str, pathlib.Path, ArtifactStore or None, default None
        Its artifact location: a store used as is, a folder or fsspec URL, or
        None for the experiment's default (``$DASKPERIMENT_ARTIFACTS/<id>``,
        else the local store's ``artifacts`` folder, else the user's data folder).

    Raises
    ------
    ArtifactError
        When the location cannot be opened.
    """
    if isinstance(artifacts, ArtifactStore):
        return artifacts
    explicit = None if artifacts is None else os.fspath(artifacts)
    return ArtifactStore(artifact_location(explicit, backend.artifact_root(), backend.experiment_id))


def _same(first: pd.DataFrame | None, second: pd.DataFrame | None) -> bool:
    """Whether two tables (or their absence) are equal."""
    if first is None or second is None:
        return first is second
    return first.equals(second)


class TrialCache:
    """The trials of a store, kept in memory and extended with the new ones only.

    One cache serves every session of a dashboard; it is thread-safe.

    Parameters
    ----------
    backend : Backend
        The store to read.
    min_interval : float, default MIN_REFRESH_SECONDS
        Refreshes closer than this (in seconds) to the last one do not ask the store.
    """

    def __init__(self, backend: Backend, min_interval: float = MIN_REFRESH_SECONDS) -> None:
        self.backend = backend
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._trials: dict[int, TrialRecord] = {}
        self._recorded: pd.DataFrame | None = None
        """The history of the recorded trials (without notes and tags)."""
        self._started: pd.DataFrame | None = None
        """The history of the trials started and not recorded yet."""
        self._frame: pd.DataFrame | None = None
        """Both, with the columns ``Note`` and ``Tags`` when some trial has a note or a tag."""
        self._annotations: dict[int, Annotation] = {}
        self._names: dict[str, None] = {}
        self._checked = float("-inf")
        self._epoch: str | None = None
        self._deletions = 0
        self._direction: Direction | None = None
        self.version = 0
        """Increases each time the table changes."""

    def refresh(self) -> bool:
        """Load the new and the running trials, notes and tags; return whether the table changed.

        Trials recorded since the last refresh are read (only those); when the
        store's epoch changed (it lost its records), or trials were deleted
        (:meth:`Backend.deletions`), every trial is read again.
        Trials started and not recorded are read whole each time (as rows
        ``running``, or ``killed`` once their heartbeat is stale), and so are
        notes and tags (one round trip each, returning those trials only).

        Raises
        ------
        BackendError
            When the store cannot be read.
        """
        with self._lock:
            now = time.monotonic()
            if now - self._checked < self.min_interval:
                return False
            epoch, deletions = self.backend.epoch(), self.backend.deletions()
            lost = epoch != self._epoch and bool(self._trials)
            deleted = deletions != self._deletions and bool(self._trials)
            if lost:  # the store lost its records: those loaded are stale
                logger.warning(
                    "the store of %r lost its records (its epoch changed): the dashboard reloads them",
                    self.backend.experiment_id,
                )
            elif deleted:
                logger.info("trials of %r were deleted: the dashboard reloads them", self.backend.experiment_id)
            reloaded = lost or deleted
            if reloaded:
                self._reset()
            self._epoch, self._deletions = epoch, deletions
            self._direction = load_direction(self.backend)
            starts = self.backend.load_starts()  # before the trials: one ending meanwhile is in those
            last = self.backend.last_trial_id()
            self._checked = now
            wanted = {t for t in range(max(1, last - GAP_WINDOW), last + 1) if t not in self._trials}
            wanted = sorted(wanted.union(self._running()))  # a running trial's record comes when it ends
            with trusting(Trust.NONE):  # the dashboard shows pickles, never loads them
                if not self._trials:
                    new = self.backend.load_trials() if last else []
                elif wanted:
                    new = self.backend.load_trials(wanted)
                else:
                    new = []
            new = [t for t in new if self._trials.get(t.trial_id) != t]  # a running trial may not have changed
            annotations = self.backend.load_annotations()
            if new:
                self._add(new)
                logger.debug("dashboard of %r: %d new trial(s)", self.backend.experiment_id, len(new))
            started = self._started_rows(starts)
            changed = bool(new) or annotations != self._annotations or not _same(started, self._started)
            self._annotations, self._started = annotations, started
            if changed:
                self._compose()
            return reloaded or changed

    def _started_rows(self, starts: dict[int, TrialStart]) -> pd.DataFrame | None:
        """History rows of the trials started and not recorded (``running``, or ``killed``), None if there is none."""
        pending = {i: start for i, start in starts.items() if i not in self._trials}
        if not pending:
            return None
        for start in pending.values():
            self._names.update(dict.fromkeys(start.parameters))
        return history_frame([], verbose=True, starts=pending)

    def _running(self) -> list[int]:
        """Ids of the loaded trials whose ``Status`` is ``running`` (when the history has that column)."""
        if self._frame is None or RUNNING_COLUMN not in self._frame.columns:
            return []
        return [int(t) for t in self._frame.index[self._frame[RUNNING_COLUMN] == RUNNING]]

    def _reset(self) -> None:
        """Forget every loaded trial."""
        self._trials.clear()
        self._names.clear()
        self._annotations.clear()
        self._recorded = self._started = self._frame = None
        self.version += 1

    def _add(self, trials: Sequence[TrialRecord]) -> None:
        """Put ``trials`` (new, or changed) among the recorded ones."""
        import pandas as pd

        self._trials.update((t.trial_id, t) for t in trials)
        for trial in trials:
            self._names.update(dict.fromkeys(trial.parameters))
        added = history_frame(list(trials), verbose=True)
        if self._recorded is not None and not self._recorded.empty:
            added = pd.concat([self._recorded, added])
        self._recorded = added[~added.index.duplicated(keep="last")].sort_index()

    def _compose(self) -> None:
        """Make the table: recorded and started trials, parameters first, then ``Note`` and ``Tags`` if any."""
        import pandas as pd

        parts = [f for f in (self._recorded, self._started) if f is not None and not f.empty]
        frame = (pd.concat(parts).sort_index() if len(parts) > 1 else parts[0]) if parts else None
        annotations = self._annotations
        if frame is not None:
            names = [n for n in self._names if n in frame.columns]
            frame = frame[names + [c for c in frame.columns if c not in self._names]]
            shown = [annotations.get(t) for t in frame.index] if annotations else []
            if any(shown):
                frame = frame.assign(Note=[a.note if a else "" for a in shown],
                                     Tags=[tags_text(a.tags) if a else "" for a in shown])
        self._frame = frame
        self.version += 1

    @property
    def frame(self) -> pd.DataFrame:
        """The verbose history table of every loaded trial (see :func:`daskperiment.history.history_frame`)."""
        with self._lock:
            return self._frame if self._frame is not None else history_frame([], verbose=True)

    @property
    def direction(self) -> Direction | None:
        """The experiment's stored objective direction as of the last refresh, None while none is stored."""
        with self._lock:
            return self._direction

    def set_direction(self, direction: Direction) -> None:
        """Store the experiment's objective direction (every session sees it).

        Raises
        ------
        ValueError
            For a direction other than ``"minimize"`` or ``"maximize"``.
        BackendError
            When the store cannot be written.
        """
        save_direction(self.backend, direction)
        with self._lock:
            self._direction = direction

    def annotation(self, trial_id: int) -> Annotation:
        """The note and tags of trial ``trial_id`` as of the last refresh (or edit)."""
        with self._lock:
            return self._annotations.get(trial_id, Annotation(trial_id))

    def edit_annotation(self, edit: AnnotationEdit) -> Annotation:
        """Apply ``edit`` to what the store holds (see :meth:`Backend.edit_annotations`); the trial's annotation then.

        The text is not checked here (see :mod:`daskperiment.board.notes`);
        every session shows the change at its next refresh.

        Raises
        ------
        BackendError
            When the store cannot be written (then nothing is changed), or read back.
        """
        self.backend.edit_annotations([edit])
        trial_id = edit.trial_id
        stored = self.backend.load_annotations([trial_id]).get(trial_id, Annotation(trial_id))
        with self._lock:
            if stored:
                self._annotations[trial_id] = stored
            else:
                self._annotations.pop(trial_id, None)
            self._compose()
        return stored

    def trial(self, trial_id: int) -> TrialRecord | None:
        """The loaded trial ``trial_id``, if any."""
        with self._lock:
            return self._trials.get(trial_id)

    def running(self) -> list[int]:
        """Ids of the trials running at the last refresh (their ``Status`` is ``running``)."""
        with self._lock:
            return self._running()

    def parameter_names(self) -> list[str]:
        """Names of the parameters of the loaded trials, in order of first appearance."""
        with self._lock:
            return list(self._names)
