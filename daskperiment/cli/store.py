"""Finding an experiment in the store named by ``--backend``."""

from __future__ import annotations

import os
from pathlib import Path

from daskperiment.backend import DEFAULT_CACHE_DIRECTORY, experiment_ids
from daskperiment.cli.errors import CommandError
from daskperiment.experiment import Experiment

LOCAL = "local"

BACKEND_HELP = (
    "store to read: 'local' (default: ./daskperiment_cache), a folder (of experiment "
    "folders, or used directly as Experiment(id, backend=Path(folder))), or a server URI "
    "such as redis://localhost:6379/0"
)


def _is_uri(spec: str) -> bool:
    return "://" in spec


def location(spec: str) -> str | os.PathLike[str]:
    """What :func:`daskperiment.backend.experiment_ids` takes for ``--backend spec``."""
    return spec if spec == LOCAL or _is_uri(spec) else Path(spec)


def list_ids(spec: str) -> list[str]:
    """Ids of the experiments stored in ``spec``.

    Raises
    ------
    CommandError
        When ``spec`` is a folder that does not exist (a typo, most likely).
    """
    where = location(spec)
    if isinstance(where, Path) and not where.is_dir():
        raise CommandError(
            f"store folder {spec!r} does not exist: give the folder holding the experiments "
            "with --backend, or 'local' for ./daskperiment_cache"
        )
    return experiment_ids(where)


def backend_for(spec: str, experiment_id: str) -> str | os.PathLike[str]:
    """The backend of experiment ``experiment_id`` in store ``spec``, which must hold it.

    A folder holds an experiment either as ``FOLDER/<id>/<id>.sqlite3`` (a folder
    of experiment folders, like ``daskperiment_cache``) or ``FOLDER/<id>.sqlite3``.

    Raises
    ------
    CommandError
        When the store has no experiment ``experiment_id``; the message lists those it has.
    """
    ids = list_ids(spec)
    if experiment_id not in ids:
        there = ", ".join(ids) if ids else "none"
        raise CommandError(
            f"no experiment {experiment_id!r} in store {describe(spec)}; experiments there: "
            f"{there}. Check the id, or give the store with --backend"
        )
    return resolve(spec, experiment_id)


def resolve(spec: str, experiment_id: str) -> str | os.PathLike[str]:
    """The backend of experiment ``experiment_id``, known to be in store ``spec``."""
    if spec == LOCAL or _is_uri(spec):
        return spec
    folder = Path(spec)
    nested = folder / experiment_id
    return nested if (nested / f"{experiment_id}.sqlite3").is_file() else folder


def describe(spec: str) -> str:
    """``--backend spec`` as shown in messages."""
    if spec == LOCAL:
        return f"'local' ({Path(DEFAULT_CACHE_DIRECTORY).absolute()})"
    if _is_uri(spec):
        from daskperiment.backend.uri import redact

        return repr(redact(spec))  # no password in messages
    return repr(spec)


def open_experiment(spec: str, experiment_id: str) -> Experiment:
    """Open the existing experiment ``experiment_id`` of store ``spec`` (never create one)."""
    return Experiment(experiment_id, backend=backend_for(spec, experiment_id))
