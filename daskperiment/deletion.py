"""Deleting trials, or a whole experiment: their records in the store, then their files.

The store removes the records first (atomically, see
:meth:`~daskperiment.backend.Backend.delete_trials`) and names the artifact
files no remaining trial uses; those are removed after. A process stopped in
between leaves files no record refers to (space, never a record pointing to a
missing file).

Files are shared by content: a file kept by several trials (the same content,
or a cached step's artifact copied to the trials that loaded the step) stays
while one of them does. An artifact location given explicitly to several
experiments is not told apart: delete trials of such experiments with
``files=False``, or give each experiment its own location.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from daskperiment.artifactstore import ArtifactStore
from daskperiment.backend.base import Backend
from daskperiment.errors import ArtifactError
from daskperiment.records import Deletion

logger = logging.getLogger(__name__)


def delete_trials(backend: Backend, artifacts: ArtifactStore, trial_ids: Iterable[int], *, files: bool = True) -> Deletion:
    """Delete trials from ``backend``, then their artifact files no remaining trial uses.

    Parameters
    ----------
    backend : Backend
        The experiment's store.
    artifacts : ArtifactStore
        The experiment's artifact store.
    trial_ids : iterable of int
        The trials (ids of no recorded trial are ignored).
    files : bool, default True
        Whether to remove the files; False keeps them (an artifact location
        shared with other experiments).

    Returns
    -------
    Deletion
        What the store removed.
    """
    deletion = backend.delete_trials(sorted({int(t) for t in trial_ids}))
    if files:
        remove_files(artifacts, deletion.artifact_digests, "of the deleted trials")
    logger.info("deleted trials %s of experiment %r", list(deletion.trial_ids), backend.experiment_id)
    return deletion


def delete_experiment(backend: Backend, artifacts: ArtifactStore, *, files: bool = True) -> Deletion:
    """Delete every record of the experiment of ``backend``, then its artifact files.

    The step cache's large outputs (the ``cache`` folder of the artifact
    location) go too. The local store's folder is removed once empty.

    Returns
    -------
    Deletion
        What the store removed.
    """
    deletion = backend.delete_experiment()
    if files:
        remove_files(artifacts, deletion.artifact_digests, "of the experiment")
        remove_files(artifacts.subfolder("cache"), deletion.cache_digests, "of the step cache")
        root = backend.artifact_root()
        if root is not None and Path(root) == Path(artifacts.url):
            _remove_empty_folders(Path(root))
    logger.info("deleted experiment %r (%d trials)", backend.experiment_id, len(deletion.trial_ids))
    return deletion


def remove_files(artifacts: ArtifactStore, digests: Iterable[str], what: str) -> None:
    """Remove the files ``digests`` of ``artifacts``, whose records are gone; a failure is logged (only space is lost).

    ``what`` says whose files they are, for the log (``"of the deleted trials"``).
    """
    digests = list(digests)
    if not digests:
        return
    try:
        artifacts.delete(digests)
    except ArtifactError as exc:  # the records are gone: the files are only space now
        logger.warning("%d artifact files %s were not removed: %s", len(digests), what, exc)


def _remove_empty_folders(root: Path) -> None:
    """Remove ``root``'s empty folders (``objects/ab/``, ...), ``root`` and its parent if they end empty."""
    if not root.is_dir():
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass
    for folder in (root, root.parent):
        try:
            folder.rmdir()
        except OSError:
            return

