"""A store on a MongoDB server, shared by every process and machine that reaches it.

Experiment ``<id>`` is the collection ``daskperiment_<id>`` of the database the
URI names (the prefix keeps clear of ``system.`` names and lists experiments).
Its documents, by ``_id``::

    "counter"                  {value, epoch}: trial id counter ($inc, find-and-modify) and
                               the epoch, a random token made with it (see server.py)
    "metric_keys"              {keys, integer, real}: keys of every saved metric, of those
                               that got int values, of those that got others ($addToSet)
    "start:<n>"                kind "start": the start of trial n while its end is not recorded,
                               with its heartbeat; kind "ended_start" from the command recording
                               the trial until the next command removes it
    "trial:<n>"                kind "trial": one trial (parameters and result as data trees:
                               queryable fields such as ``parameters.lr``; pickles before format 2),
                               with the token of the batch that wrote it
    "metric:<chunk id>"        kind "metric": packed points of one key of one trial
    "persisted:[<n>, <step>]"  kind "persisted": a persisted output
    "step:<input hash>"        kind "step_output": latest output hash ($set)
    "blob:<digest>"            kind "blob": code or environment ($setOnInsert)
    "setting:<name>"           kind "setting": value of a setting (the last write wins)
    "cache:<key>"              kind "cache": a cache entry and its payload (read without it)
    "artifact:[<n>, <name>, <path>]"  kind "artifact": a file kept by trial n
    "annotation:<n>"           kind "annotation": note and tags of trial n, with a version
                               ``v`` each edit checks and increments (compare and set)

A trial being deleted is first marked (its kind becomes "deleted_trial", or
"deleted_start" for a trial only started, which no reader asks for), then its
records are removed, its document last.

A batch is one ordered bulk write (one round trip) whose trial documents come
last: a trial appears in the history only once everything its batch carries
is stored. Guards come first: an upsert of the counter matching the epoch (a
duplicate ``_id`` error stops the batch when the epoch is another), then one
per trial matching its id and the batch's token (a duplicate stops the batch
when another batch wrote that trial); the batch deletes the starts of the trials it
records after their documents. Trials start by one ordered bulk write too: an update
of the counter matching the value this process expects (a duplicate ``_id`` error
when another process moved it: the value is read and the write tried again), then
the starts under the ids it reserved. Multi-document transactions are not used, since a standalone
mongod has none; every write is idempotent, so a batch cut short by a failure
is completed by re-sending it from the spool.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Mapping, Sequence
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import bson
import pymongo
from pymongo import DeleteMany, ReplaceOne, UpdateOne
from pymongo.database import Database
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from daskperiment.backend.codec import (
    annotation_document,
    annotation_from_document,
    artifact_document,
    bulk_decoding,
    artifact_from_document,
    cache_entry_document,
    cache_entry_from_document,
    document_blob_digests,
    metric_chunks,
    metric_kinds,
    metric_series,
    start_document,
    start_from_document,
    trial_columns,
    trial_document,
    trial_from_document,
)
from daskperiment.backend.base import Backend
from daskperiment.backend.server import (
    EpochChanged,
    ServerBackend,
    Transmitted,
    TrialsTaken,
    authentication_error,
    new_epoch,
    timeout_option,
)
from daskperiment.backend.uri import MONGO_SCHEMES, malformed, query_options, redact, scrub, split
from daskperiment.errors import BackendError, BackendURIError
from daskperiment.records import (
    Annotation,
    AnnotationEdit,
    ArtifactRecord,
    Blob,
    CacheEntry,
    Deletion,
    MetricSeries,
    PersistedValue,
    RecordBatch,
    TrialColumns,
    TrialRecord,
    TrialStart,
)

logger = logging.getLogger(__name__)

EXAMPLE = "mongodb://localhost:27017/test_db"
COLLECTION_PREFIX = "daskperiment_"
MAX_VALUE_BYTES = 16 * 1024 * 1024 - 64 * 1024  # a document holds at most 16 MB
CURSOR_BATCH = 100_000
_TIMEOUT_OPTIONS = ("serverSelectionTimeoutMS", "connectTimeoutMS", "timeoutMS")
_DUPLICATE_KEY = 11000
AUTHENTICATION_FAILED = 18
"""Server error code of a refused user name or password."""
START_ATTEMPTS = 1000
"""Tries of a start against other processes moving the counter meanwhile (then an error)."""
ENDED_START = "ended_start"
"""Kind of the start of a trial whose record is written: readers no longer see it."""
DELETED_TRIAL = "deleted_trial"
"""Kind of the document of a trial being deleted: readers no longer see it."""
DELETED_START = "deleted_start"
"""Kind of the start of a (killed) trial being deleted."""
ADOPT_TIMEOUT_SECONDS = 600.0
"""Longest wait for the rename putting an imported experiment in place (a server may copy the collection)."""
_TRIAL_RECORD_KINDS = ["metric", "persisted", "artifact", "annotation"]
_BLOB_FIELDS = {"trial_id": 1, "code_digest": 1, "environment_digest": 1, "worker_environment_digests": 1}
_HISTORY_PROJECTION = dict.fromkeys(
    ("trial_id", "parameters", "result", "result_type", "success", "finished", "process_time", "description",
     "seed", "sweep_id", "cached_steps", "status"), 1,
) | {"_id": 0}
"""The fields of a trial document a history shows (not its digests)."""
_CLIENT_ONLY_ARGUMENTS = {"port", "document_class", "tz_aware", "connect", "type_registry"}


class MongoBackend(ServerBackend):
    """Store an experiment on a MongoDB server, in collection ``daskperiment_<id>``.

    Parameters
    ----------
    uri : str
        ``mongodb://[user:password@]host[:port][,host...]/database[?options]``
        or ``mongodb+srv://``; it must name a database. ``timeout`` (seconds,
        default 10) bounds every operation; other options (``tls``,
        ``authSource``, ``replicaSet``, ...) go to the client as they are.
    experiment_id : str
        Id of the experiment.
    database : pymongo.database.Database, optional
        A database to use in this process instead of connecting from ``uri``.

    Raises
    ------
    BackendError
        For a URI of another scheme, without a database, or that cannot be parsed.
    """

    kind = "MongoDB"
    _lost_records_name = "collection was"

    def __init__(self, uri: str, experiment_id: str, *, database: Database | None = None) -> None:
        self.database_name = _check_uri(uri)
        super().__init__(uri, experiment_id)
        self._given_database = database
        self._given_pid = os.getpid()  # a forked child opens its own client
        self.collection_name = COLLECTION_PREFIX + self.experiment_id
        self._expected_counter = 0

    @classmethod
    def from_database(cls, database: Database, experiment_id: str) -> "MongoBackend":
        """The store of ``experiment_id`` in a ``pymongo`` database."""
        return cls(database_uri(database), experiment_id, database=database)

    @property
    def dbname(self) -> str:
        """Name of the database the experiment's collection is in (0.5's name of :attr:`database_name`)."""
        return self.database_name

    @property
    def client(self) -> pymongo.MongoClient:
        """The client of the server (connected on first use), as in daskperiment 0.5."""
        return self._collection().database.client

    # -- connection -----------------------------------------------------------------
    def _open_connection(self) -> tuple[pymongo.MongoClient | None, Any]:
        client = None
        if self._given_database is not None and self._given_pid == os.getpid():
            database = self._given_database
        else:
            client = open_client(self._uri)
            database = client[self.database_name]
        try:
            collection = database[self.collection_name]
            _create_indexes(collection)
        except BaseException:
            if client is not None:
                client.close()
            raise
        return client, collection

    def _close_connection(self, connection: tuple[pymongo.MongoClient | None, Any]) -> None:
        client, _ = connection
        if client is not None:
            client.close()

    def _connection_errors(self) -> tuple[type[BaseException], ...]:
        return (ConnectionFailure,)

    def _server_errors(self) -> tuple[type[BaseException], ...]:
        return (PyMongoError,)

    def _brief(self, exc: BaseException) -> str:
        return _brief(super()._brief(exc))

    def _authentication_failed(self, exc: BaseException) -> bool:
        return _is_authentication_failure(exc)

    def _collection(self) -> Any:
        return self._client()[1]

    # -- writes -------------------------------------------------------------------------
    def _advance_trial_counter(self, count: int, epoch: str) -> int | None:
        counter = self._collection().find_one_and_update(
            _counter_of(epoch),
            {"$inc": {"value": count}},
            return_document=pymongo.ReturnDocument.AFTER,
        )
        return counter["value"] if counter is not None else None

    def _encode_starts(self, starts: list[TrialStart]) -> list[dict[str, Any]]:
        documents = [start_document(start) for start in starts]
        for document in documents:
            self._check_size(len(bson.encode({"parameters": document["parameters"]})), "a trial's parameters")
        return documents

    def _record_starts(self, encoded: list[dict[str, Any]], count: int, epoch: str) -> int | None:
        collection = self._collection()
        expected = max(self._expected_counter, self._highest_id)
        for _ in range(START_ATTEMPTS):
            operations: list[Any] = [
                UpdateOne(  # matches no document once the counter moved: its upsert is then a duplicate
                    {"_id": "counter", "epoch": epoch, "value": expected},
                    {"$inc": {"value": count}, "$setOnInsert": {"lost": True}},
                    upsert=True,
                ),
                *(
                    ReplaceOne(
                        {"_id": f"start:{expected + i}"},
                        {"kind": "start", "trial_id": expected + i, **document},
                        upsert=True,
                    )
                    for i, document in enumerate(encoded, start=1)
                ),
            ]
            try:
                result = collection.bulk_write(operations, ordered=True)
            except BulkWriteError as exc:
                error = exc.details["writeErrors"][0]
                if error.get("code") != _DUPLICATE_KEY or error["index"] != 0:
                    raise
                counter = collection.find_one({"_id": "counter"}, {"value": 1, "epoch": 1})
                if counter is None or counter.get("epoch") != epoch or "value" not in counter:
                    return None
                expected = int(counter["value"])
                continue
            if 0 in result.upserted_ids and self._undo_starts(collection, epoch, expected, count):
                return None  # the collection had lost its counter: recovered from as for other writes
            self._expected_counter = expected + count
            return expected + count
        raise BackendError(
            f"cannot start trials on the {self.kind} server {self.server}: other processes moved the "
            f"trial id counter of experiment {self.experiment_id!r} {START_ATTEMPTS} times in a row"
        )

    @staticmethod
    def _undo_starts(collection: Any, epoch: str, expected: int, count: int) -> bool:
        """Undo starts written into a collection that had lost its counter (the start made a new one).

        The counter is left as the guard of a batch leaves it in that case (no
        value, no epoch), so that claiming the epoch reports the loss and
        raises the counter past the ids this process has seen. False, with
        nothing undone, when another process has used the counter since.
        """
        made = collection.find_one_and_update(
            {"_id": "counter", "epoch": epoch, "value": expected + count},
            {"$unset": {"value": "", "epoch": ""}},
        )
        if made is None:
            return False
        collection.delete_many({"_id": {"$in": [f"start:{expected + i}" for i in range(1, count + 1)]}})
        return True

    def _beat(self, trial_ids: list[int], when: float) -> None:
        self._collection().update_many(
            {"_id": {"$in": [f"start:{trial_id}" for trial_id in trial_ids]}}, {"$set": {"heartbeat": when}}
        )

    def _claim_epoch(self, floor: int) -> str:
        """See :meth:`ServerBackend._claim_epoch`.

        The counter is created whole, with its epoch, before any ``$inc``
        (concurrent upserts of one new document may race); a counter without
        value (left by a guard on an emptied collection) or without epoch
        (written by an older daskperiment) gets them by conditional updates.
        """
        collection = self._collection()
        fresh = new_epoch()
        try:
            collection.insert_one({"_id": "counter", "value": int(floor), "epoch": fresh})
            return fresh
        except DuplicateKeyError:
            pass
        collection.update_one(
            {"_id": "counter", "value": {"$exists": False}},
            {"$set": {"value": int(floor), "epoch": fresh}},
        )
        collection.update_one(
            {"_id": "counter", "epoch": {"$exists": False}}, {"$set": {"epoch": fresh}}
        )
        collection.update_one(
            {"_id": "counter", "value": {"$lt": int(floor)}}, {"$set": {"value": int(floor)}}
        )
        _create_indexes(collection)  # a dropped collection lost them
        collection.delete_many({"kind": ENDED_START})  # left by a process killed while recording trials
        return collection.find_one({"_id": "counter"})["epoch"]

    def _read_epoch(self) -> str | None:
        counter = self._collection().find_one({"_id": "counter"}, {"epoch": 1})
        return counter.get("epoch") if counter is not None else None

    def _encode(self, batch: RecordBatch, token: str) -> list[Any]:
        operations: list[Any] = []
        for blob in batch.blobs:
            self._check_size(len(blob.content), f"blob {blob.digest}")
            operations.append(
                UpdateOne(
                    {"_id": f"blob:{blob.digest}"},
                    {"$setOnInsert": {"kind": "blob", "content": blob.content}},
                    upsert=True,
                )
            )
        for output in batch.step_outputs:
            operations.append(
                UpdateOne(
                    {"_id": f"step:{output.input_key}"},
                    {"$set": {"kind": "step_output", "output_hash": output.output_hash}},
                    upsert=True,
                )
            )
        for chunk in metric_chunks(batch.metrics, token):
            operations.append(
                ReplaceOne(
                    {"_id": f"metric:{chunk.chunk_id}"},
                    {
                        "kind": "metric",
                        "key": chunk.key,
                        "trial_id": chunk.trial_id,
                        "chunk": chunk.chunk_id,
                        "points": chunk.points,
                    },
                    upsert=True,
                )
            )
        if batch.metrics:
            keys = sorted({point.key for point in batch.metrics})
            integer, real = metric_kinds(batch.metrics)
            operations.append(
                UpdateOne(
                    {"_id": "metric_keys"},
                    {"$addToSet": {"keys": {"$each": keys}, "integer": {"$each": integer},
                                   "real": {"$each": real}}},
                    upsert=True,
                )
            )
        for value in batch.persisted:
            self._check_size(len(value.payload), f"the output of step {value.step!r}")
            operations.append(
                ReplaceOne(
                    {"_id": _persisted_id(value.step, value.trial_id)},
                    {
                        "kind": "persisted",
                        "trial_id": value.trial_id,
                        "step": value.step,
                        "payload": value.payload,
                    },
                    upsert=True,
                )
            )
        for entry in batch.cache_entries:
            document = cache_entry_document(entry)
            self._check_size(
                len(entry.payload or b"") + len(document["metrics"]),
                f"the cached output of step {entry.step!r} with its metrics",
            )
            operations.append(
                ReplaceOne(
                    {"_id": _cache_id(entry.key)},
                    {
                        "kind": "cache",
                        **document,
                        "last_used": float(entry.last_used),
                        "payload": entry.payload,
                    },
                    upsert=True,
                )
            )
        for record in batch.artifacts:
            operations.append(
                ReplaceOne(
                    {"_id": _artifact_id(record)},
                    {"kind": "artifact", **artifact_document(record)},
                    upsert=True,
                )
            )
        for trial in batch.trials:  # last: the trial shows once its records are stored
            document = trial_document(trial)
            self._check_size(
                len(bson.encode({"parameters": document["parameters"], "result": document["result"]})),
                f"trial {trial.trial_id}'s result and parameters",
            )
            operations.append(
                ReplaceOne(
                    {"_id": f"trial:{trial.trial_id}"},
                    {"kind": "trial", **document, "token": token},
                    upsert=True,
                )
            )
        # The starts end in the same update command as the trials' records (a client killed
        # after sending it leaves no start beside a recorded trial), then go.
        starts = [f"start:{trial.trial_id}" for trial in batch.trials]
        operations.extend(UpdateOne({"_id": start}, {"$set": {"kind": ENDED_START}}) for start in starts)
        if starts:
            operations.append(DeleteMany({"_id": {"$in": starts}, "kind": ENDED_START}))
        return operations

    def _check_size(self, size: int, what: str) -> None:
        if size > MAX_VALUE_BYTES:
            raise BackendError(
                f"{what} takes {size / 2**20:.1f} MiB, more than a MongoDB document can hold "
                f"(16 MiB); nothing was written. Store a smaller value, or use a Redis or local "
                "store for this experiment"
            )

    def _transmit(
        self, encoded: list[Any], epoch: str, token: str, trial_ids: list[int],
        input_keys: Sequence[str] = (), digests: Sequence[str] = (),
    ) -> Transmitted:
        """One ``find`` by ``_id`` (outputs replaced, blobs held) when asked, then one bulk write."""
        previous: dict[str, str] = {}
        held: set[str] = set()
        if input_keys or digests:
            wanted = [f"step:{key}" for key in input_keys] + [f"blob:{digest}" for digest in digests]
            for document in self._collection().find({"_id": {"$in": wanted}}, {"output_hash": 1}):
                kind, _, name = document["_id"].partition(":")
                if kind == "step":
                    previous[name] = document["output_hash"]
                else:
                    held.add(name)
        guards = [
            UpdateOne(_counter_of(epoch), {"$setOnInsert": {"lost": True}}, upsert=True),
            *(
                UpdateOne(
                    {"_id": f"trial:{trial_id}", "token": {"$in": [token, None]}},
                    {"$set": {"token": token}},
                    upsert=True,
                )
                for trial_id in trial_ids
            ),
        ]
        try:
            result = self._collection().bulk_write(guards + encoded, ordered=True)
        except BulkWriteError as exc:
            error = exc.details["writeErrors"][0]
            if error.get("code") != _DUPLICATE_KEY:
                raise
            if error["index"] == 0:
                raise EpochChanged() from exc
            raise TrialsTaken([trial_ids[error["index"] - 1]]) from exc
        return Transmitted(emptied=0 in result.upserted_ids, previous=previous, held=held)

    # -- reads ------------------------------------------------------------------------
    def last_trial_id(self) -> int:
        with self._reaching("read the last trial id"):
            last = self._collection().find_one(
                {"kind": "trial"}, {"trial_id": 1}, sort=[("trial_id", -1)]
            )
        return int(last["trial_id"]) if last else 0

    def deletions(self) -> int:
        with self._reaching("read the count of deletions"):
            counter = self._collection().find_one({"_id": "counter"}, {"deletions": 1})
        return int(counter.get("deletions", 0)) if counter is not None else 0

    def load_trials(self, trial_ids: Sequence[int] | None = None) -> list[TrialRecord]:
        query: dict[str, Any] = {"kind": "trial"}
        if trial_ids is not None:
            query["trial_id"] = {"$in": sorted({int(t) for t in trial_ids})}
        with self._reaching("read trials"), bulk_decoding():
            cursor = self._collection().find(query).sort("trial_id", 1).batch_size(CURSOR_BATCH)
            return [trial_from_document(document) for document in cursor]

    def load_trial_columns(self) -> TrialColumns:
        with self._reaching("read trials"), bulk_decoding():
            cursor = (
                self._collection().find({"kind": "trial"}, _HISTORY_PROJECTION)
                .sort("trial_id", 1).batch_size(CURSOR_BATCH)
            )
            return trial_columns(list(cursor))

    def load_starts(self, trial_ids: Sequence[int] | None = None) -> dict[int, TrialStart]:
        query: dict[str, Any] = {"kind": "start"}
        if trial_ids is not None:
            query["trial_id"] = {"$in": sorted({int(t) for t in trial_ids})}
        with self._reaching("read running trials"):
            documents = list(self._collection().find(query).sort("trial_id", 1).batch_size(CURSOR_BATCH))
        return {int(document["trial_id"]): start_from_document(document) for document in documents}

    def load_metrics(self, key: str, trial_ids: Sequence[int]) -> MetricSeries:
        ids = sorted({int(t) for t in trial_ids})
        if not ids:
            return MetricSeries(key, [], [], [])
        with self._reaching("read metrics"):
            documents = list(  # the metric's chunks and, in the same round trip, its kinds
                self._collection()
                .find(
                    {"$or": [{"kind": "metric", "key": key, "trial_id": {"$in": ids}}, {"_id": "metric_keys"}]},
                    {"chunk": 1, "trial_id": 1, "points": 1, "integer": 1, "real": 1},
                )
                .batch_size(CURSOR_BATCH)
            )
        kinds = next((d for d in documents if d["_id"] == "metric_keys"), {})
        integer = key in kinds.get("integer", ()) and key not in kinds.get("real", ())
        chunks = ((d["chunk"], d["trial_id"], d["points"]) for d in documents if d["_id"] != "metric_keys")
        return metric_series(chunks, key, integer)

    def metric_keys(self) -> list[str]:
        with self._reaching("read metric keys"):
            document = self._collection().find_one({"_id": "metric_keys"})
        return sorted(document["keys"]) if document else []

    def load_persisted(self, step: str, trial_id: int) -> PersistedValue | None:
        with self._reaching("read a persisted value"):
            document = self._collection().find_one({"_id": _persisted_id(step, int(trial_id))})
        return PersistedValue(trial_id, step, document["payload"]) if document else None

    def persisted_keys(self) -> list[tuple[int, str]]:
        with self._reaching("list the persisted values"):
            documents = list(self._collection().find({"kind": "persisted"}, {"trial_id": 1, "step": 1}))
        return sorted((int(d["trial_id"]), d["step"]) for d in documents)

    def load_blob(self, digest: str) -> Blob | None:
        with self._reaching("read a blob"):
            document = self._collection().find_one({"_id": f"blob:{digest}"})
        return Blob(digest, document["content"]) if document else None

    def _read_step_outputs(self, input_keys: list[str]) -> dict[str, str]:
        documents = self._collection().find({"_id": {"$in": [f"step:{k}" for k in input_keys]}})
        return {d["_id"][len("step:") :]: d["output_hash"] for d in documents}

    # -- step cache ---------------------------------------------------------------------
    def load_cache_entries(self, keys: Sequence[str]) -> dict[str, CacheEntry]:
        """Read the entries by one ``find``, payloads left on the server.

        See :meth:`Backend.load_cache_entries`.
        """
        if not keys:
            return {}
        with self._reaching("read cache entries"):
            documents = list(
                self._collection()
                .find({"_id": {"$in": [_cache_id(key) for key in keys]}}, {"payload": 0})
                .batch_size(CURSOR_BATCH)
            )
        return {d["key"]: cache_entry_from_document(d, d["last_used"]) for d in documents}

    def load_cache_payload(self, key: str) -> bytes | None:
        with self._reaching("read a cache entry's payload"):
            document = self._collection().find_one({"_id": _cache_id(key)}, {"payload": 1})
        return document.get("payload") if document else None

    def touch_cache_entries(self, keys: Sequence[str], when: float) -> None:
        if not keys:
            return
        with self._reaching("mark cache entries used"):
            self._collection().update_many(
                {"_id": {"$in": [_cache_id(key) for key in keys]}},
                {"$set": {"last_used": float(when)}},
            )

    def cache_entries(self) -> list[CacheEntry]:
        with self._reaching("list cache entries"):
            documents = list(
                self._collection()
                .find({"kind": "cache"}, {"payload": 0})
                .sort([("last_used", 1), ("key", 1)])
                .batch_size(CURSOR_BATCH)
            )
        return [cache_entry_from_document(d, d["last_used"]) for d in documents]

    def delete_cache_entries(self, keys: Sequence[str]) -> None:
        """Delete the entries' documents, each with its payload, by one ``delete``.

        See :meth:`Backend.delete_cache_entries`; a standalone server has no
        multi-document transactions, so an interrupted deletion may remove
        only some of the entries (each one whole), and deleting again ends it.
        """
        if not keys:
            return
        with self._reaching("delete cache entries"):
            self._collection().delete_many({"_id": {"$in": [_cache_id(key) for key in keys]}})

    # -- artifacts ------------------------------------------------------------------------
    def load_artifacts(self, trial_id: int) -> list[ArtifactRecord]:
        with self._reaching("read artifact records"):
            documents = list(
                self._collection()
                .find({"kind": "artifact", "trial_id": int(trial_id)})
                .batch_size(CURSOR_BATCH)
            )
        records = [artifact_from_document(document) for document in documents]
        return sorted(records, key=lambda record: (record.name, record.path))

    def artifact_digests(self) -> list[str]:
        """Read the ``digest`` of the artifact documents (see :meth:`Backend.artifact_digests`)."""
        with self._reaching("read artifact records"):
            documents = self._collection().find({"kind": "artifact"}, {"digest": 1}).batch_size(CURSOR_BATCH)
            return sorted({document["digest"] for document in documents})

    # -- notes and tags (issue 12) ------------------------------------------------------
    def load_annotations(self, trial_ids: Sequence[int] | None = None) -> dict[int, Annotation]:
        """Read the ``annotation:<n>`` documents (see :meth:`Backend.load_annotations`)."""
        query: dict[str, Any] = {"kind": "annotation"}
        if trial_ids is not None:
            query["trial_id"] = {"$in": sorted({int(t) for t in trial_ids})}
        with self._reaching("read notes and tags"):
            documents = list(self._collection().find(query).batch_size(CURSOR_BATCH))
        annotations = [annotation_from_document(document) for document in documents]
        return {annotation.trial_id: annotation for annotation in annotations if annotation}

    def edit_annotations(self, edits: Sequence[AnnotationEdit]) -> None:
        """Apply each edit by compare and set of its trial's document (see :meth:`Backend.edit_annotations`).

        A document is replaced only if its version ``v`` is the one read; an
        edit that lost the race (a duplicate key error, as the filter no longer
        matches) is applied again to what the store then holds. Each trial's
        annotation changes atomically; a standalone server has no transaction
        over several documents.
        """
        pending = list(edits)
        with self._reaching("save notes and tags"):
            collection = self._collection()
            while pending:
                ids = sorted({int(edit.trial_id) for edit in pending})
                stored = {
                    document["trial_id"]: document
                    for document in collection.find({"_id": {"$in": [_annotation_id(t) for t in ids]}})
                }
                operations, edited = [], {}
                for edit in pending:
                    trial_id = int(edit.trial_id)
                    current = edited.get(trial_id) or (
                        annotation_from_document(stored[trial_id]) if trial_id in stored else Annotation(trial_id)
                    )
                    edited[trial_id] = edit.apply(current)
                for trial_id, annotation in edited.items():
                    version = stored.get(trial_id, {}).get("v")
                    operations.append(
                        UpdateOne(
                            {"_id": _annotation_id(trial_id), "v": version if version is not None else {"$exists": False}},
                            {"$set": {"kind": "annotation", **annotation_document(annotation), "v": (version or 0) + 1}},
                            upsert=True,
                        )
                    )
                order = list(edited)
                try:
                    collection.bulk_write(operations, ordered=False)
                    return
                except BulkWriteError as exc:
                    errors = exc.details["writeErrors"]
                    if any(error.get("code") != _DUPLICATE_KEY for error in errors):
                        raise
                    lost = {order[error["index"]] for error in errors}
                    pending = [edit for edit in pending if int(edit.trial_id) in lost]

    # -- deleting trials and experiments (issue 12) --------------------------------------
    def delete_trials(self, trial_ids: Sequence[int]) -> Deletion:
        """Mark the trials deleted, then remove their records, their documents last.

        See :meth:`Backend.delete_trials`. A standalone server has no
        transaction over several documents: marking a trial (one update of
        its document) hides it at once; a deletion cut short after that
        leaves marked trials, which this method finishes whenever it is
        called again. A blob is removed only when no trial refers to it once
        it is gone (one written meanwhile gets it back).
        """
        ids = sorted({int(t) for t in trial_ids})
        with self._reaching("delete trials"):
            collection = self._collection()
            if ids:
                marking = [
                    collection.update_many({"kind": kind, "trial_id": {"$in": ids}}, {"$set": {"kind": deleted}})
                    for kind, deleted in (("trial", DELETED_TRIAL), ("start", DELETED_START))
                ]
                if any(result.modified_count for result in marking):  # readers see them gone from now on
                    collection.update_one({"_id": "counter"}, {"$inc": {"deletions": 1}})
            marked = list(collection.find({"kind": DELETED_TRIAL}, _BLOB_FIELDS))
            started = [d["trial_id"] for d in collection.find({"kind": DELETED_START}, {"trial_id": 1})]
            if not marked and not started:
                return Deletion()
            marked_ids = sorted({int(d["trial_id"]) for d in marked} | {int(t) for t in started})
            in_marked = {"trial_id": {"$in": marked_ids}}
            artifacts = {d["digest"] for d in collection.find({"kind": "artifact", **in_marked}, {"digest": 1})}
            keys = {d["key"] for d in collection.find({"kind": "metric", **in_marked}, {"key": 1})}
            for kind in _TRIAL_RECORD_KINDS:  # one kind at a time: each query follows the (kind, trial_id) index
                collection.delete_many({"kind": kind, **in_marked})
            removed = self._remove_unused_blobs(set().union(*(document_blob_digests(d) for d in marked)))
            kept = {d["digest"] for d in collection.find({"kind": "artifact", "digest": {"$in": sorted(artifacts)}}, {"digest": 1})}
            gone = sorted(key for key in keys if collection.find_one({"kind": "metric", "key": key}, {"_id": 1}) is None)
            if gone:
                collection.update_one(
                    {"_id": "metric_keys"},
                    {"$pull": {"keys": {"$in": gone}, "integer": {"$in": gone}, "real": {"$in": gone}}},
                )
            for kind in (DELETED_TRIAL, DELETED_START):
                collection.delete_many({"kind": kind, **in_marked})
        self._blobs_removed(removed)
        return Deletion(tuple(marked_ids), tuple(sorted(artifacts - kept)))

    def _remove_unused_blobs(self, digests: set[str]) -> list[str]:
        """Remove the blobs of ``digests`` no trial refers to; return their digests."""
        collection = self._collection()
        unused = sorted(digests - self._referenced(digests))
        if not unused:
            return []
        ids = [f"blob:{digest}" for digest in unused]
        contents = {d["_id"]: d["content"] for d in collection.find({"_id": {"$in": ids}})}
        collection.delete_many({"_id": {"$in": ids}})
        again = self._referenced(set(unused))  # a trial written meanwhile refers to them
        for digest in sorted(again):
            if f"blob:{digest}" in contents:
                collection.update_one(
                    {"_id": f"blob:{digest}"},
                    {"$setOnInsert": {"kind": "blob", "content": contents[f"blob:{digest}"]}},
                    upsert=True,
                )
        return [digest for digest in unused if digest not in again]

    def _referenced(self, digests: set[str]) -> set[str]:
        """Those of ``digests`` some trial (not being deleted) refers to."""
        if not digests:
            return set()
        wanted = sorted(digests)
        documents = self._collection().find(
            {"kind": "trial", "$or": [{field: {"$in": wanted}} for field in list(_BLOB_FIELDS)[1:]]},
            _BLOB_FIELDS,
        )
        return digests & set().union(*(document_blob_digests(d) for d in documents))

    def delete_experiment(self) -> Deletion:
        """Drop the experiment's collection (one operation; see :meth:`Backend.delete_experiment`).

        Batches spooled for it in this working directory are dropped.
        """
        with self._reaching("delete the experiment"):
            collection = self._collection()
            ids = sorted(int(d["trial_id"]) for d in collection.find({"kind": "trial"}, {"trial_id": 1}))
            artifacts = {d["digest"] for d in collection.find({"kind": "artifact"}, {"digest": 1})}
            cached = {d.get("location") for d in collection.find({"kind": "cache"}, {"location": 1})}
            collection.drop()
        self._forget_spooled()
        self._start_afresh()
        return Deletion(tuple(ids), tuple(sorted(artifacts)), tuple(sorted(cached - {None})))

    def load_settings(self) -> dict[str, str]:
        """Read the ``setting:<name>`` documents (see :meth:`Backend.load_settings`)."""
        with self._reaching("read the settings"):
            documents = list(self._collection().find({"kind": "setting"}))
        return {d["_id"][len("setting:"):]: d["value"] for d in sorted(documents, key=lambda d: d["_id"])}

    def step_outputs(self) -> dict[str, str]:
        """Read the ``step:<input hash>`` documents (see :meth:`Backend.step_outputs`)."""
        with self._reaching("read the step output hashes"):
            documents = list(self._collection().find({"kind": "step_output"}).batch_size(CURSOR_BATCH))
        return {d["_id"][len("step:"):]: d["output_hash"] for d in sorted(documents, key=lambda d: d["_id"])}

    def import_starts(self, starts: Mapping[int, TrialStart]) -> None:
        """Upsert the ``start:<n>`` documents of trials not recorded, by one bulk write (see :meth:`Backend.import_starts`)."""
        encoded = {int(t): document for t, document in zip(starts, self._encode_starts(list(starts.values())))}
        if not encoded:
            return
        with self._reaching("record the starts of imported trials"):
            collection = self._collection()
            recorded = {d["trial_id"] for d in collection.find({"kind": "trial", "trial_id": {"$in": sorted(encoded)}})}
            operations = [
                ReplaceOne({"_id": f"start:{t}"}, {"kind": "start", "trial_id": t, **document}, upsert=True)
                for t, document in sorted(encoded.items()) if t not in recorded
            ]
            if operations:
                collection.bulk_write(operations, ordered=True)

    def staging(self, experiment_id: str) -> "MongoBackend":
        """Experiment ``experiment_id`` of this database (see :meth:`Backend.staging`)."""
        given = self._given_database if self._given_pid == os.getpid() else None
        return MongoBackend(self._uri, experiment_id, database=given)

    def adopt(self, staging: Backend) -> None:
        """Rename the staging's collection over this experiment's, one atomic command (see :meth:`Backend.adopt`).

        Processes that have this experiment open find another epoch (an
        ERROR says its records were replaced) and go on from the ids they reached.
        MongoDB renames in place; a server that copies the collection instead
        is given :data:`ADOPT_TIMEOUT_SECONDS`.
        """
        if not isinstance(staging, MongoBackend) or staging.database_name != self.database_name:
            raise ValueError(f"{staging!r} is not a staging of {self!r}: make it with .staging(id)")
        with self._reaching("record the imported experiment"):
            database = self._collection().database
            with pymongo.timeout(max(self.timeout, ADOPT_TIMEOUT_SECONDS)):
                database.client.admin.command(
                    "renameCollection", f"{database.name}.{staging.collection_name}",
                    to=f"{database.name}.{self.collection_name}", dropTarget=True,
                )
        staging.close()
        self._start_afresh()

    def discard_stagings(self, prefix: str) -> list[str]:
        """Drop the collections of experiments whose ids start with ``prefix`` (see :meth:`Backend.discard_stagings`)."""
        with self._reaching("list the experiments"):
            database = self._collection().database
            names = sorted(n for n in database.list_collection_names() if n.startswith(COLLECTION_PREFIX + prefix))
            for name in names:
                database.drop_collection(name)
        return [name[len(COLLECTION_PREFIX):] for name in names]

    # -- settings -------------------------------------------------------------------------
    def _write_setting(self, name: str, value: str) -> None:
        self._collection().replace_one(
            {"_id": f"setting:{name}"}, {"kind": "setting", "value": value}, upsert=True
        )

    def _read_setting(self, name: str) -> str | None:
        document = self._collection().find_one({"_id": f"setting:{name}"})
        return document["value"] if document else None


def _counter_of(epoch: str) -> dict[str, Any]:
    """The query matching the counter when it has a value and the epoch ``epoch``."""
    return {"_id": "counter", "epoch": epoch, "value": {"$exists": True}}


def _create_indexes(collection: Any) -> None:
    collection.create_indexes(
        [
            pymongo.IndexModel([("kind", 1), ("trial_id", 1)]),
            pymongo.IndexModel([("kind", 1), ("key", 1), ("trial_id", 1)]),
            pymongo.IndexModel([("kind", 1), ("last_used", 1), ("key", 1)]),
        ]
    )


def _persisted_id(step: str, trial_id: int) -> str:
    return "persisted:" + json.dumps([trial_id, step])


def _annotation_id(trial_id: int) -> str:
    return f"annotation:{int(trial_id)}"


def _cache_id(key: str) -> str:
    return f"cache:{key}"


def _artifact_id(record: ArtifactRecord) -> str:
    return "artifact:" + json.dumps([int(record.trial_id), record.name, record.path])


def _check_uri(uri: str) -> str:
    """Check a MongoDB URI; return the name of its database."""
    uri = timeout_option(uri)[0]
    parts = split(uri, MONGO_SCHEMES, EXAMPLE)
    shown = redact(uri)
    if parts.scheme.lower() == "mongodb":
        try:
            pymongo.uri_parser.parse_uri(uri)
        except (PyMongoError, ValueError) as exc:
            raise malformed(uri, exc, EXAMPLE) from None
    name = parts.path.lstrip("/")
    if not name:
        raise BackendURIError(
            f"the URI {shown!r} names no database: add one to its path, e.g. {EXAMPLE!r}"
        )
    if any(character in name for character in '/\\. "$') or len(name) > 63:
        raise BackendURIError(
            f"malformed URI {shown!r}: {name!r} cannot name a MongoDB database (at most 63 "
            'characters, none of / \\ . space " $)'
        )
    return name


def open_client(uri: str) -> pymongo.MongoClient:
    """A client of ``uri``: its ``timeout`` option bounds every operation, unless the URI sets pymongo's."""
    uri, seconds = timeout_option(uri)
    given = query_options(split(uri, MONGO_SCHEMES, EXAMPLE))
    defaults = {k: int(seconds * 1000) for k in _TIMEOUT_OPTIONS if k.lower() not in given}
    try:
        return pymongo.MongoClient(uri, **defaults)
    except (PyMongoError, ValueError) as exc:
        raise BackendError(f"cannot open a client of {redact(uri)}: {scrub(str(exc), uri)}") from None


def database_uri(database: Database) -> str:
    """The URI of a ``pymongo`` database, as its client was opened, path set to its name.

    Host, credentials and the options given as keywords (``tls=True``,
    ``authSource="admin"``, ...) are kept, so a worker opens the same store.
    """
    arguments = dict(getattr(database.client, "_init_kwargs", {}))  # as the client was created
    host = arguments.pop("host", None)
    if isinstance(host, str) and host.lower().startswith(MONGO_SCHEMES):
        parts = split(host, MONGO_SCHEMES, EXAMPLE)
    else:
        addresses = database.client.topology_description.server_descriptions()
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in sorted(addresses))
        parts = urlsplit(f"mongodb://{hosts}/")
    username, password = arguments.pop("username", None), arguments.pop("password", None)
    if username and "@" not in parts.netloc:
        login = quote(username, safe="") + (f":{quote(password, safe='')}" if password else "")
        parts = parts._replace(netloc=f"{login}@{parts.netloc}")
    options = parse_qsl(parts.query) + [
        (key, str(value).lower() if isinstance(value, bool) else str(value))
        for key, value in arguments.items()
        if key not in _CLIENT_ONLY_ARGUMENTS and isinstance(value, (str, int, float))
    ]
    return parts._replace(path=f"/{database.name}", query=urlencode(options)).geturl()


def experiment_ids(uri: str) -> list[str]:
    """Ids of the experiments stored in the database of ``uri``, sorted."""
    name = _check_uri(uri)
    client = open_client(uri)
    try:
        names = client[name].list_collection_names()
    except PyMongoError as exc:
        detail = _brief(scrub(str(exc), uri))
        if _is_authentication_failure(exc):
            raise authentication_error("MongoDB", redact(uri), detail) from exc
        if isinstance(exc, ConnectionFailure):
            raise BackendError(f"cannot reach the MongoDB server {redact(uri)}: {detail}") from exc
        raise BackendError(f"the MongoDB server {redact(uri)} refused to list collections: {detail}") from exc
    finally:
        client.close()
    return sorted(n[len(COLLECTION_PREFIX) :] for n in names if n.startswith(COLLECTION_PREFIX))


def _is_authentication_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the server refused the user name or password (error 18)."""
    return isinstance(exc, OperationFailure) and exc.code == AUTHENTICATION_FAILED


def _brief(message: str) -> str:
    """A pymongo error message without its topology description and raw server reply."""
    return message.split(", Topology Description")[0].split(", full error:")[0].rstrip(".")
