"""Moving experiments: export one to a file, import it into any store, copy it between stores.

Everything moves: trials (failed ones too), trials running or killed (their
start, heartbeat and the metric points they flushed), metrics, persisted
values, code and environments, the step output hashes of the purity check,
artifact records and files, notes, tags, settings and, when asked, the step
cache. Values move as the store holds them: no pickle is loaded, and signed
pickles keep the signature of the key that wrote them (they load only where
``DASKPERIMENT_SIGNING_KEY`` is that key, as for a shared store; plain data
reads anywhere). An import or copy is staged and then put in place in one
atomic step (see :mod:`.loading`): cut short, it leaves the target as it was.
"""

from __future__ import annotations

import os
from typing import Any

from daskperiment.artifactstore import ArtifactStore, artifact_location
from daskperiment.backend import Backend, open_backend, open_existing
from daskperiment.errors import TransferError
from daskperiment.transfer.archive import ArchiveContents, write_archive
from daskperiment.transfer.contents import StoreContents
from daskperiment.transfer.loading import TransferReport, load_contents

__all__ = ["TransferReport", "copy_experiment", "export_experiment", "import_experiment"]


def export_experiment(
    experiment_id: str, path: str | os.PathLike[str], *, backend: Any = None,
    artifacts: str | os.PathLike[str] | ArtifactStore | None = None, cache: bool = False, files: bool = True,
) -> dict[str, Any]:
    """Write experiment ``experiment_id`` with everything it holds to the file ``path`` (a ZIP archive).

    Parameters
    ----------
    experiment_id : str
        The experiment.
    path : str or os.PathLike
        The file to write (replaced once complete).
    backend : optional
        Its store, as for :class:`~daskperiment.Experiment` (default: ``$DASKPERIMENT_BACKEND``, else local).
    artifacts : str, os.PathLike or ArtifactStore, optional
        Its artifact location, by default the experiment's default one.
    cache : bool, default False
        Also export the step cache.
    files : bool, default True
        Export the artifact files (False: only their records).

    Returns
    -------
    dict
        The file's manifest: counts of what it holds.

    Raises
    ------
    ExperimentNotFoundError
        When the store holds no such experiment.
    TransferError
        When a value or a file cannot be exported.
    """
    store = open_existing(_store(backend), experiment_id)
    contents = StoreContents(store, _artifacts(artifacts, store), cache=cache, files=files)
    return write_archive(contents, path)


def import_experiment(
    path: str | os.PathLike[str], *, backend: Any = None, experiment_id: str | None = None,
    artifacts: str | os.PathLike[str] | ArtifactStore | None = None, replace: bool = False,
) -> TransferReport:
    """Import the experiment of an export file into a store.

    Parameters
    ----------
    path : str or os.PathLike
        The file :func:`export_experiment` wrote.
    backend : optional
        The target store (default: ``$DASKPERIMENT_BACKEND``, else local).
    experiment_id : str, optional
        Id to import it under, by default the exported experiment's.
    artifacts : str, os.PathLike or ArtifactStore, optional
        Where its artifact files go, by default the target experiment's default location.
    replace : bool, default False
        Replace what the target experiment holds, in the atomic step putting
        the import in place (cut short, the target keeps its records); by
        default a target holding records is refused.

    Raises
    ------
    TransferError
        When the file is not an export (or is damaged), or the target holds records.
    TrialRunningError
        When ``replace`` and a trial of the target is still running.
    """
    contents = ArchiveContents(path)
    try:
        store = open_backend(_store(backend), _experiment_id(experiment_id or contents.experiment_id))
        return load_contents(contents, store, _artifacts(artifacts, store), replace=replace)
    finally:
        contents.close()


def copy_experiment(
    experiment_id: str, source: Any, target: Any, *, new_id: str | None = None,
    source_artifacts: str | os.PathLike[str] | ArtifactStore | None = None,
    target_artifacts: str | os.PathLike[str] | ArtifactStore | None = None,
    cache: bool = False, files: bool = True, replace: bool = False,
) -> TransferReport:
    """Copy experiment ``experiment_id`` from the store ``source`` to the store ``target``.

    Parameters
    ----------
    experiment_id : str
        The experiment.
    source, target : str, os.PathLike, client object or Backend
        The stores, as for :class:`~daskperiment.Experiment` (``"local"``, a
        folder, ``"redis://…"``, ``"mongodb://…/db"``).
    new_id : str, optional
        Id of the copy, by default the same.
    source_artifacts, target_artifacts : optional
        Artifact locations, by default each experiment's default one.
    cache, files, replace
        As for :func:`export_experiment` and :func:`import_experiment`.

    Raises
    ------
    TransferError
        When the target holds records (and not ``replace``), or is the source itself.
    TrialRunningError
        When ``replace`` and a trial of the target is still running.
    """
    source_store = open_existing(_store(source), experiment_id)
    target_store = open_backend(_store(target), _experiment_id(new_id or experiment_id))
    if source_store == target_store:
        raise TransferError(
            f"cannot copy experiment {experiment_id!r} onto itself: give another target store, or a new id"
        )
    contents = StoreContents(source_store, _artifacts(source_artifacts, source_store), cache=cache, files=files)
    return load_contents(contents, target_store, _artifacts(target_artifacts, target_store), replace=replace)


def _store(spec: Any) -> Any:
    from daskperiment.backend import default_backend, store_location

    if spec is None:
        return default_backend()
    return store_location(spec) if isinstance(spec, str) else spec


def _experiment_id(experiment_id: str) -> str:
    from daskperiment.experiment import validate_experiment_id  # experiment imports backend

    return validate_experiment_id(experiment_id)


def _artifacts(given: str | os.PathLike[str] | ArtifactStore | None, store: Backend) -> ArtifactStore:
    if isinstance(given, ArtifactStore):
        return given
    explicit = None if given is None else os.fspath(given)
    return ArtifactStore(artifact_location(explicit, store.artifact_root(), store.experiment_id))

