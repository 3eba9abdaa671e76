"""Stores of experiment records: the contract and its implementations."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from daskperiment.backend.base import Backend
from daskperiment.backend.local import LocalBackend
from daskperiment.errors import BackendError, ExperimentNotFoundError

DEFAULT_CACHE_DIRECTORY = "daskperiment_cache"
BACKEND_VARIABLE = "DASKPERIMENT_BACKEND"

__all__ = [
    "Backend",
    "LocalBackend",
    "default_backend",
    "describe_store",
    "experiment_ids",
    "experiment_store",
    "open_backend",
    "open_existing",
    "store_location",
]

_KINDS = (
    "'local' (the default, stores in daskperiment_cache/<id>/), a pathlib.Path of a folder, "
    "'redis://host:6379/0', 'rediss://…', 'mongodb://host:27017/database', "
    "'mongodb+srv://…/database', a redis.ConnectionPool or a pymongo Database"
)


def default_backend() -> str | Path:
    """The store of experiments created without one: ``$DASKPERIMENT_BACKEND``, else ``"local"``.

    The variable holds ``local``, a server URI or a folder path; it lets a
    shell (or ``daskperiment run --backend``) choose the store of a script
    without changing it.
    """
    return store_location(os.environ.get(BACKEND_VARIABLE, "").strip() or "local")


def store_location(spec: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """A store named in text (command line, environment): ``"local"`` and URIs as they are, else a folder."""
    if isinstance(spec, str) and spec != "local" and "://" not in spec:
        return Path(spec)
    return spec


def describe_store(location: str | os.PathLike[str]) -> str:
    """A store location as shown in messages (a server URI without its password)."""
    if location == "local":
        return f"'local' ({Path(DEFAULT_CACHE_DIRECTORY).absolute()})"
    if isinstance(location, str) and "://" in location:
        from daskperiment.backend.uri import redact

        return repr(redact(location))
    return repr(str(location))


def experiment_store(location: str | os.PathLike[str], experiment_id: str) -> str | os.PathLike[str]:
    """The backend spec of experiment ``experiment_id`` listed at ``location``.

    A folder holds an experiment as ``FOLDER/<id>/<id>.sqlite3`` (a folder of
    experiment folders, like ``daskperiment_cache``) or ``FOLDER/<id>.sqlite3``.
    """
    if not isinstance(location, os.PathLike):
        return location
    nested = Path(location) / experiment_id
    return nested if (nested / f"{experiment_id}.sqlite3").is_file() else Path(location)


def open_existing(spec: str | os.PathLike[str] | Backend, experiment_id: str) -> Backend:
    """Open experiment ``experiment_id`` of the store ``spec`` names; never create one.

    Raises
    ------
    ExperimentNotFoundError
        When the store holds no such experiment; the message lists those it has.
    """
    if isinstance(spec, Backend):
        return spec
    location = store_location(spec)
    ids = experiment_ids(location)
    if experiment_id not in ids:
        raise ExperimentNotFoundError(
            f"no experiment {experiment_id!r} in store {describe_store(location)}; "
            f"experiments there: {', '.join(ids) or 'none'}"
        )
    return open_backend(experiment_store(location, experiment_id), experiment_id)


def open_backend(spec: Any, experiment_id: str) -> Backend:
    """Open the store that ``spec`` names for experiment ``experiment_id``.

    Parameters
    ----------
    spec : None, {"local"}, pathlib.Path, str, redis.ConnectionPool, pymongo Database or Backend
        None is :func:`default_backend`; ``"local"`` stores in
        ``daskperiment_cache/<experiment id>/`` below the working directory; a
        path stores in that folder; ``redis://``, ``rediss://``, ``mongodb://``
        and ``mongodb+srv://`` URIs (or a Redis connection pool, a pymongo
        database) store on that server; a backend is used as is.
    experiment_id : str
        Id of the experiment (already validated).

    Raises
    ------
    BackendError
        When ``spec`` names no known kind of store, or a server URI is malformed.
    """
    if spec is None:
        spec = default_backend()
    if isinstance(spec, Backend):
        return spec
    if isinstance(spec, os.PathLike):
        return LocalBackend(Path(spec), experiment_id)
    if spec == "local":
        return LocalBackend(Path(DEFAULT_CACHE_DIRECTORY) / experiment_id, experiment_id)
    if isinstance(spec, str):
        return _server_backend(spec, experiment_id)
    server = _client_object_backend(spec, experiment_id)
    if server is not None:
        return server
    raise BackendError(f"unknown backend {spec!r}: use {_KINDS}")


def _server_backend(uri: str, experiment_id: str) -> Backend:
    from daskperiment.backend.uri import MONGO_SCHEMES, REDIS_SCHEMES, redact, scheme_of

    scheme = scheme_of(uri)
    if scheme in REDIS_SCHEMES:
        from daskperiment.backend.redis import RedisBackend

        return RedisBackend(uri, experiment_id)
    if scheme in MONGO_SCHEMES:
        from daskperiment.backend.mongo import MongoBackend

        return MongoBackend(uri, experiment_id)
    raise BackendError(f"unknown backend {redact(uri)!r}: use {_KINDS}")


def _client_object_backend(spec: object, experiment_id: str) -> Backend | None:
    """The store of a Redis pool or client, or of a pymongo database (None for other objects)."""
    if "redis" in sys.modules:  # only objects of an imported library can be given
        import redis

        if isinstance(spec, redis.Redis):
            spec = spec.connection_pool
        if isinstance(spec, redis.ConnectionPool):
            from daskperiment.backend.redis import RedisBackend

            return RedisBackend.from_pool(spec, experiment_id)
    if "pymongo" in sys.modules:
        import pymongo.database

        if isinstance(spec, pymongo.MongoClient):
            raise BackendError(
                "a MongoClient names no database: pass one of its databases, e.g. "
                "client['test_db'], or a URI such as 'mongodb://localhost:27017/test_db'"
            )
        if isinstance(spec, pymongo.database.Database):
            from daskperiment.backend.mongo import MongoBackend

            return MongoBackend.from_database(spec, experiment_id)
    return None


def experiment_ids(location: str | os.PathLike[str] = "local") -> list[str]:
    """Ids of the experiments stored at ``location``, sorted.

    Parameters
    ----------
    location : {"local"}, pathlib.Path or str URI
        ``"local"`` is ``daskperiment_cache/`` below the working directory; a
        path is a folder holding one folder per experiment (as ``"local"``
        does) or the folder of experiments opened with that path as backend;
        a ``redis://``, ``rediss://``, ``mongodb://`` or ``mongodb+srv://`` URI
        lists the experiments on that server (in that Mongo database).

    Raises
    ------
    BackendError
        For a URI of an unknown scheme, or a server that cannot be reached.
    """
    if isinstance(location, str) and "://" in location:
        return _server_experiment_ids(location)
    folder = Path(DEFAULT_CACHE_DIRECTORY if location == "local" else location)
    if not folder.is_dir():
        return []
    nested = {c.name for c in folder.iterdir() if (c / f"{c.name}.sqlite3").is_file()}
    direct = {f.name[: -len(".sqlite3")] for f in folder.glob("*.sqlite3")}
    return sorted(nested | direct)


def _server_experiment_ids(uri: str) -> list[str]:
    from daskperiment.backend.uri import MONGO_SCHEMES, REDIS_SCHEMES, redact, scheme_of

    scheme = scheme_of(uri)
    if scheme in REDIS_SCHEMES:
        from daskperiment.backend import redis as redis_store

        return redis_store.experiment_ids(uri)
    if scheme in MONGO_SCHEMES:
        from daskperiment.backend import mongo as mongo_store

        return mongo_store.experiment_ids(uri)
    raise BackendError(f"unknown backend {redact(uri)!r}: use 'local', a folder path, or {_KINDS}")


def __getattr__(name: str) -> Any:
    """``RedisBackend`` and ``MongoBackend``, imported (with their client library) on first use."""
    if name == "RedisBackend":
        from daskperiment.backend.redis import RedisBackend

        return RedisBackend
    if name == "MongoBackend":
        from daskperiment.backend.mongo import MongoBackend

        return MongoBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
