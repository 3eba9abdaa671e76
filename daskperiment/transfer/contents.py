"""What moves with an experiment, read from a store (or, see :mod:`.archive`, from an export file).

Values are moved as their store holds them (:func:`daskperiment.serialization.keeping_data`):
no pickle is ever loaded, and signed pickles keep their signatures.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from daskperiment import serialization
from daskperiment.artifactstore import ArtifactStore
from daskperiment.backend.base import Backend
from daskperiment.backend.codec import start_document, trial_document
from daskperiment.errors import ArtifactError, TransferError
from daskperiment.records import Annotation, ArtifactRecord, Blob, CacheEntry, PersistedValue, TrialRecord, TrialStart

CACHE_FOLDER = "cache"
"""Folder of the artifact location holding the step cache's large outputs."""


@dataclass(frozen=True)
class MetricColumns:
    """The points of one metric of an experiment's trials, as columns, in store order.

    Attributes
    ----------
    key : str
        Metric key.
    integer : bool
        Whether every value saved under the key was an int.
    trial_ids, epochs : numpy.ndarray of int64
        Trial and epoch of each point.
    values : numpy.ndarray of float64
        Value of each point.
    times : numpy.ndarray of float64 or None
        POSIX time each point was saved, NaN where unknown; None when no point has one.
    """

    key: str
    integer: bool
    trial_ids: np.ndarray
    epochs: np.ndarray
    values: np.ndarray
    times: np.ndarray | None = None


class Contents(ABC):
    """Everything an experiment holds: trials, metrics, values, blobs, files, notes, settings, cache."""

    experiment_id: str

    @abstractmethod
    def trial_documents(self) -> list[dict[str, Any]]:
        """The trials, as trial documents (:func:`~daskperiment.backend.codec.trial_document`), by id."""

    @abstractmethod
    def start_documents(self) -> dict[int, dict[str, Any]]:
        """The trials started and not recorded (running, or killed), as start documents
        (:func:`~daskperiment.backend.codec.start_document`), by id."""

    @abstractmethod
    def step_outputs(self) -> dict[str, str]:
        """The step output hashes of the purity check, by step input key."""

    @abstractmethod
    def metrics(self) -> Iterator[MetricColumns]:
        """The metrics of the trials, one key at a time."""

    @abstractmethod
    def persisted(self) -> Iterator[PersistedValue]:
        """The persisted values of the trials."""

    @abstractmethod
    def blobs(self) -> Iterator[Blob]:
        """The code and environment blobs the trials refer to."""

    @abstractmethod
    def artifact_records(self) -> list[ArtifactRecord]:
        """The artifact records of the trials."""

    @abstractmethod
    def annotations(self) -> list[Annotation]:
        """The notes and tags of the trials."""

    @abstractmethod
    def settings(self) -> dict[str, str]:
        """The experiment's settings."""

    @abstractmethod
    def cache_entries(self) -> Iterator[CacheEntry]:
        """The step cache's entries with their payloads (none when the cache is left out)."""

    @abstractmethod
    def file(self, digest: str, cache: bool = False) -> Any:
        """A context manager giving a local path to the content of an artifact file (``cache``: a large cached output).

        Raises
        ------
        TransferError
            When the file cannot be had.
        """

    def file_digests(self) -> list[str]:
        """Digests of the artifact files the trials kept, sorted."""
        return sorted({record.digest for record in self.artifact_records()})

    def put_files(self, digests: list[str], into: ArtifactStore, cache: bool = False) -> None:
        """Store the files ``digests`` (artifact files, or large cached outputs) in ``into``.

        Raises
        ------
        TransferError
            When a file cannot be had, or its content is not its digest's.
        """
        for digest in digests:
            with self.file(digest, cache) as local:
                check_stored(digest, into.put_file(local)[0], self.experiment_id)


class StoreContents(Contents):
    """The contents of an experiment's store and artifact location.

    Parameters
    ----------
    backend : Backend
        The experiment's store.
    artifacts : ArtifactStore
        Its artifact location.
    cache : bool, default False
        Whether the step cache moves too.
    files : bool, default True
        Whether artifact files move (False: only their records).
    """

    def __init__(self, backend: Backend, artifacts: ArtifactStore, *, cache: bool = False, files: bool = True) -> None:
        self.experiment_id = backend.experiment_id
        self.backend = backend
        self.artifacts = artifacts
        self.include_cache = cache
        self.include_files = files
        self._trials: list[TrialRecord] | None = None
        self._starts: dict[int, TrialStart] | None = None

    def _read_trials(self) -> tuple[list[TrialRecord], dict[int, TrialStart]]:
        """The recorded trials and the starts of the others, read once.

        The starts are read first: a trial ending meanwhile is then read recorded.
        """
        if self._trials is None or self._starts is None:
            with serialization.keeping_data():
                starts = self.backend.load_starts()
                self._trials = self.backend.load_trials()
            recorded = {trial.trial_id for trial in self._trials}
            self._starts = {t: start for t, start in starts.items() if t not in recorded}
        return self._trials, self._starts

    def _recorded(self) -> list[TrialRecord]:
        return self._read_trials()[0]

    def trial_documents(self) -> list[dict[str, Any]]:
        documents = []
        for trial in self._recorded():
            try:
                documents.append(trial_document(trial))
            except TypeError as exc:
                raise TransferError(
                    f"trial {trial.trial_id} of experiment {self.experiment_id!r} holds a value that "
                    f"cannot be moved ({exc}): values written by an earlier daskperiment must be "
                    f"migrated first: daskperiment migrate {self.experiment_id} --trust-old-pickles"
                ) from None
        return documents

    def _started(self) -> dict[int, TrialStart]:
        return self._read_trials()[1]

    def start_documents(self) -> dict[int, dict[str, Any]]:
        return {trial_id: start_document(start) for trial_id, start in self._started().items()}

    def step_outputs(self) -> dict[str, str]:
        return self.backend.step_outputs()

    def _ids(self) -> list[int]:
        """Ids of the trials whose records move: recorded ones, then those only started."""
        return [trial.trial_id for trial in self._recorded()] + list(self._started())

    def metrics(self) -> Iterator[MetricColumns]:
        ids = self._ids()
        for key in self.backend.metric_keys():
            series = self.backend.load_metrics(key, ids)
            if len(series):
                yield MetricColumns(key, series.integer, series.trial_ids, series.epochs, series.values, series.times)

    def persisted(self) -> Iterator[PersistedValue]:
        recorded = set(self._ids())
        for trial_id, step in self.backend.persisted_keys():
            value = self.backend.load_persisted(step, trial_id) if trial_id in recorded else None
            if value is not None:
                yield PersistedValue(trial_id, step, bytes(value.payload))

    def blobs(self) -> Iterator[Blob]:
        for digest in sorted({d for trial in self._recorded() for d in trial.blob_digests()}):
            blob = self.backend.load_blob(digest)
            if blob is not None:  # a trial whose environment was never captured
                yield Blob(blob.digest, bytes(blob.content))

    def artifact_records(self) -> list[ArtifactRecord]:
        return [record for trial_id in self._ids() for record in self.backend.load_artifacts(trial_id)]

    def file_digests(self) -> list[str]:
        return super().file_digests() if self.include_files else []

    def annotations(self) -> list[Annotation]:
        recorded = set(self._ids())
        return [a for t, a in sorted(self.backend.load_annotations().items()) if t in recorded]

    def settings(self) -> dict[str, str]:
        return self.backend.load_settings()

    def cache_entries(self) -> Iterator[CacheEntry]:
        if not self.include_cache:
            return
        for entry in self.backend.cache_entries():
            if entry.location is None:
                payload = self.backend.load_cache_payload(entry.key)
                if payload is None:  # removed meanwhile
                    continue
                entry = replace(entry, payload=bytes(payload))
            yield entry

    @contextmanager
    def file(self, digest: str, cache: bool = False) -> Iterator[Path]:
        store = self.artifacts.subfolder(CACHE_FOLDER) if cache else self.artifacts
        try:
            path = store.fetch(digest)
        except ArtifactError as exc:
            raise TransferError(
                f"{'a cached output' if cache else 'an artifact file'} of experiment "
                f"{self.experiment_id!r} cannot be read: {exc}. Give the experiment's artifact "
                "location, or leave the files out (files=False, --without-files)"
            ) from None
        yield path


def check_stored(digest: str, stored: str, experiment_id: str) -> None:
    """Raise :class:`TransferError` when a file meant to be ``digest`` was stored as ``stored``."""
    if stored != digest:
        raise TransferError(
            f"the file {digest} of experiment {experiment_id!r} has other content (digest "
            f"{stored}): its copy is damaged"
        )
