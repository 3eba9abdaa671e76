"""Stores of experiment records: the contract and its implementations."""

from __future__ import annotations

import os
from pathlib import Path

from daskperiment.backend.base import Backend
from daskperiment.backend.local import LocalBackend
from daskperiment.errors import BackendError

DEFAULT_CACHE_DIRECTORY = "daskperiment_cache"

__all__ = ["Backend", "LocalBackend", "experiment_ids", "open_backend"]


def open_backend(spec: str | os.PathLike[str] | Backend, experiment_id: str) -> Backend:
    """Open the store that ``spec`` names for experiment ``experiment_id``.

    Parameters
    ----------
    spec : {"local"}, pathlib.Path or Backend
        ``"local"`` stores in ``daskperiment_cache/<experiment id>/`` below the
        working directory; a path stores in that folder; a backend is used as is.
    experiment_id : str
        Id of the experiment (already validated).

    Raises
    ------
    BackendError
        When ``spec`` names no known kind of store.
    """
    if isinstance(spec, Backend):
        return spec
    if isinstance(spec, os.PathLike):
        return LocalBackend(Path(spec), experiment_id)
    if spec == "local":
        return LocalBackend(Path(DEFAULT_CACHE_DIRECTORY) / experiment_id, experiment_id)
    raise BackendError(
        f"unknown backend {spec!r}: use 'local' (the default, stores in "
        f"{DEFAULT_CACHE_DIRECTORY}/<id>/) or a pathlib.Path of a folder"
    )


def experiment_ids(location: str | os.PathLike[str] = "local") -> list[str]:
    """Ids of the experiments stored at ``location``, sorted.

    Parameters
    ----------
    location : {"local"} or pathlib.Path
        ``"local"`` is ``daskperiment_cache/`` below the working directory; a
        path is a folder holding one folder per experiment (as ``"local"``
        does) or the folder of experiments opened with that path as backend.
    """
    folder = Path(DEFAULT_CACHE_DIRECTORY if location == "local" else location)
    if isinstance(location, str) and location != "local" and "://" in location:
        raise BackendError(f"unknown backend {location!r}: use 'local' or a folder path")
    if not folder.is_dir():
        return []
    nested = {c.name for c in folder.iterdir() if (c / f"{c.name}.sqlite3").is_file()}
    direct = {f.name[: -len(".sqlite3")] for f in folder.glob("*.sqlite3")}
    return sorted(nested | direct)
