"""Reading a trial's artifacts back: as local paths, and as inputs of other experiments' steps."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from dask.delayed import Delayed, delayed

from daskperiment.artifactstore import ArtifactStore
from daskperiment.records import ArtifactRecord

ArtifactFiles = tuple[tuple[str, str], ...]
"""An artifact's content: (path inside it, digest) of each file, sorted by path."""


def artifact_files(records: Sequence[ArtifactRecord]) -> ArtifactFiles:
    """The content of the artifact whose file records are ``records``."""
    return tuple(sorted((record.path, record.digest) for record in records))


def local_artifact(store: ArtifactStore, files: ArtifactFiles) -> Path:
    """A local, read-only path to an artifact: its file, or a folder of its files.

    Files are downloaded once (the store's download cache); a folder is put
    together once per content, under the same cache.
    """
    if len(files) == 1 and files[0][0] == "":
        return store.fetch(files[0][1])
    content = hashlib.sha256(repr(files).encode("utf-8")).hexdigest()
    return store.materialize(list(files), store.cache_dir / "folders" / content)


def artifact_input(store: ArtifactStore, files: ArtifactFiles) -> Delayed:
    """A ``dask.delayed`` local path to an artifact (see :func:`local_artifact`).

    Its dask key, and so the cache key of the steps using it, is its content:
    the same files from another trial are the same input.
    """
    return delayed(local_artifact, pure=True)(store, files)
