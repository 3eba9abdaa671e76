"""Finding an experiment in the store named by ``--backend``."""

from __future__ import annotations

from pathlib import Path

from daskperiment.backend import Backend, experiment_ids, open_existing, store_location
from daskperiment.cli.errors import CommandError
from daskperiment.errors import ExperimentNotFoundError
from daskperiment.experiment import Experiment

BACKEND_HELP = (
    "store to read: 'local' (default: ./daskperiment_cache), a folder (of experiment "
    "folders, or used directly as Experiment(id, backend=Path(folder))), or a server URI "
    "such as redis://localhost:6379/0"
)


def _check_folder(spec: str) -> None:
    """A store folder that does not exist is a typo, most likely: say so."""
    where = store_location(spec)
    if isinstance(where, Path) and not where.is_dir():
        raise CommandError(
            f"store folder {spec!r} does not exist: give the folder holding the experiments "
            "with --backend, or 'local' for ./daskperiment_cache"
        )


def list_ids(spec: str) -> list[str]:
    """Ids of the experiments stored in ``spec``."""
    _check_folder(spec)
    return experiment_ids(store_location(spec))


def open_store(spec: str, experiment_id: str) -> Backend:
    """The store of the existing experiment ``experiment_id`` in ``spec`` (never created)."""
    _check_folder(spec)
    try:
        return open_existing(spec, experiment_id)
    except ExperimentNotFoundError as exc:
        raise CommandError(f"{exc}. Check the id, or give the store with --backend") from None


ARTIFACTS_HELP = (
    "where the experiment's artifacts are: an fsspec URL such as s3://bucket/prefix, or a folder "
    "(default: $DASKPERIMENT_ARTIFACTS, else the artifacts folder of a local store)"
)


def open_experiment(spec: str, experiment_id: str, artifacts: str | None = None) -> Experiment:
    """Open the existing experiment ``experiment_id`` of store ``spec`` (never create one)."""
    return Experiment(experiment_id, backend=open_store(spec, experiment_id), artifacts=artifacts)
