"""Encoding records for the stores: trial, cache entry and artifact documents, packed metrics."""

from __future__ import annotations

import gc
import json
import struct
import sys
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice, repeat
from operator import ge, itemgetter
from typing import Any, Iterable, Sequence

from daskperiment import serialization
from daskperiment.records import (
    Annotation,
    ArtifactRecord,
    CacheEntry,
    MetricPoint,
    MetricSeries,
    TrialColumns,
    TrialRecord,
    TrialStart,
    ended_statuses,
)

TRIAL_FORMAT = 2  # 2: parameters and result as data trees (1: pickles)
MAX_CHUNK_POINTS = 250_000  # 6 MB of packed points: far below any server's size limit
_HEADER = struct.Struct("<I")
_NO_TIME = struct.pack("<d", float("nan"))
_BIG_ENDIAN = sys.byteorder == "big"


def trial_document(trial: TrialRecord) -> dict[str, Any]:
    """The trial as a dict of plain values (parameters and result as data trees, see :mod:`~daskperiment.serialization`).

    Every value is JSON data (and BSON data): a server stores the document as
    it is, so parameters and results are fields its queries can use.

    Raises
    ------
    TypeError
        When the parameters or the result cannot be serialized.
    """
    return {
        "format": TRIAL_FORMAT,
        "trial_id": trial.trial_id,
        "parameters": serialization.to_data(dict(trial.parameters)),
        "result": serialization.to_data(trial.result),
        "result_type": trial.result_type,
        "success": trial.success,
        "finished": trial.finished,
        "process_time": trial.process_time,
        "description": trial.description,
        "seed": trial.seed,
        "code_digest": trial.code_digest,
        "environment_digest": trial.environment_digest,
        "sweep_id": trial.sweep_id,
        "worker_environment_digests": list(trial.worker_environment_digests),
        "cached_steps": cached_steps_pairs(trial.cached_steps),
        "status": trial.status,
    }


def trial_from_document(document: dict[str, Any], plain: bool = False) -> TrialRecord:
    """The trial a :func:`trial_document` describes.

    ``plain``: the document is known to hold no tagged value (its JSON text
    passed :func:`daskperiment.serialization.is_plain_text`), so its
    parameters and result are taken as they are.

    A document written before trials had ``sweep_id``,
    ``worker_environment_digests``, ``cached_steps`` and ``status`` reads with their defaults;
    one whose parameters and result are pickles (format 1) reads them as
    :func:`daskperiment.serialization.from_data` reads older stores' pickles.
    Values that cannot be loaded read as
    :class:`~daskperiment.serialization.UnreadableValue` (so does a
    parameters field that is not a dict).
    """
    parameters, result = document["parameters"], document["result"]
    if not plain:
        parameters, result = serialization.from_data(parameters), serialization.from_data(result)
    cached = document.get("cached_steps")
    return TrialRecord(  # positional: a history of 100,000 trials makes 100,000 of them
        int(document["trial_id"]),
        parameters_of(parameters),
        result,
        document["result_type"],
        bool(document["success"]),
        document["finished"],
        document["process_time"],
        document["description"],
        document["seed"],
        document["code_digest"],
        document["environment_digest"],
        document.get("sweep_id"),
        tuple(document.get("worker_environment_digests", ())),
        cached_steps_of(cached) if cached else (),
        document.get("status", ""),
    )


_REQUIRED = (
    "trial_id", "parameters", "result", "result_type", "success", "finished", "process_time", "description", "seed",
)
"""The fields of a trial document a history shows that documents of every format have."""
HISTORY_FIELDS = (*_REQUIRED, "sweep_id", "cached_steps", "status")
"""The fields of a trial document a history shows, in the order of a :func:`history_row`."""
_REQUIRED_FIELDS = itemgetter(*_REQUIRED)
_HISTORY_FIELDS = itemgetter(*HISTORY_FIELDS)


def history_row(document: dict[str, Any]) -> list[Any]:
    """The values of :data:`HISTORY_FIELDS` of a :func:`trial_document`, in that order, encoded as it holds them.

    A document written before trials had ``sweep_id``, ``cached_steps`` and
    ``status`` gives their defaults (read by :func:`history_columns` as
    :func:`trial_from_document` reads them).
    """
    try:
        return list(_HISTORY_FIELDS(document))
    except KeyError:
        return [*_REQUIRED_FIELDS(document), document.get("sweep_id"), document.get("cached_steps"),
                document.get("status", "")]


def is_history_row(row: Any) -> bool:
    """Whether ``row`` (as JSON decodes it) has the shape of a :func:`history_row`: a list whose first value is an id."""
    return type(row) is list and len(row) == len(HISTORY_FIELDS) and type(row[0]) is int


def trial_columns(documents: Sequence[dict[str, Any]], plain: bool | Sequence[bool] = False) -> TrialColumns:
    """The trials :func:`trial_document` documents describe, as columns in trial id order.

    Each column holds what :func:`trial_from_document` gives each document,
    read column by column without a record per trial. ``documents`` may come
    in any order: they are read in theirs (in the order they lie in memory:
    three times faster than jumping between 100,000 documents), then the
    columns are sorted by trial id. ``plain``: whether the documents are
    known to hold no tagged value (their values are then taken as they are,
    see :func:`trial_from_document`), for all of them or one flag per document.
    """
    try:  # every field in one pass
        columns = list(map(list, zip(*map(_HISTORY_FIELDS, documents))))
    except KeyError:  # a document written before sweeps, cached steps or statuses: their defaults
        columns = list(map(list, zip(*map(history_row, documents))))
    return _columns(columns, len(documents), plain)


def history_columns(rows: Sequence[Sequence[Any]], plain: bool | Sequence[bool] = False) -> TrialColumns:
    """The trials of :func:`history_row` rows as columns in trial id order (as :func:`trial_columns` reads documents).

    ``rows`` may come in any order; ``plain`` as for :func:`trial_columns`.
    """
    return _columns(list(map(list, zip(*rows))), len(rows), plain)


def _columns(columns: list[list[Any]], count: int, plain: bool | Sequence[bool]) -> TrialColumns:
    """The columns of ``count`` trials, :data:`HISTORY_FIELDS` lists in any trial order, decoded and sorted by id."""
    if not count:
        return TrialColumns([], [], [], [], [], [], [], [], [], [], [], [])
    columns[0] = list(map(int, columns[0]))
    columns[4] = list(map(bool, columns[4]))
    columns.append(list(repeat(plain, count)) if isinstance(plain, bool) else list(plain))
    trial_ids = columns[0]
    if any(map(ge, trial_ids, islice(trial_ids, 1, None))):  # not in id order (so two trials or more)
        order = itemgetter(*sorted(range(len(trial_ids)), key=trial_ids.__getitem__))
        columns = [list(order(column)) for column in columns]
    flags = columns.pop()
    if plain is not True:
        columns[1] = [p if known else serialization.from_data(p) for p, known in zip(columns[1], flags)]
        columns[2] = [r if known else serialization.from_data(r) for r, known in zip(columns[2], flags)]
    return decoded_columns(columns)


def decoded_columns(columns: Sequence[list[Any]]) -> TrialColumns:
    """The :class:`TrialColumns` of the :data:`HISTORY_FIELDS` lists of trials in id order, their values decoded.

    Parameters are data trees (a value that is not a dict was unreadable),
    cached steps ``[step, trial id]`` pairs or None, statuses as stored
    (checked as :class:`TrialRecord` checks them). Every store's history
    ends here, whatever it decoded its values from.
    """
    (trial_ids, parameters, results, result_types, success, finished, process_times, descriptions, seeds,
     sweep_ids, cached_steps, statuses) = columns
    return TrialColumns(
        trial_ids,
        parameters if set(map(type, parameters)) <= {dict} else list(map(parameters_of, parameters)),
        results,
        result_types,
        success,
        finished,
        process_times,
        descriptions,
        seeds,
        sweep_ids,
        [cached_steps_of(pairs) if pairs else () for pairs in cached_steps],
        ended_statuses(trial_ids, statuses, success),
    )


def start_document(start: TrialStart) -> dict[str, Any]:
    """The start of a trial as a dict of plain values (parameters as a data tree).

    Raises
    ------
    TypeError
        When the parameters cannot be serialized.
    """
    return {
        "parameters": serialization.to_data(dict(start.parameters)),
        "seed": start.seed,
        "started": float(start.started),
        "heartbeat": float(start.heartbeat),
        "interval": float(start.interval),
        "process": start.process,
        "sweep_id": start.sweep_id,
    }


def start_from_document(document: dict[str, Any], heartbeat: float | None = None) -> TrialStart:
    """The start a :func:`start_document` describes; ``heartbeat``, when given, replaces its own."""
    return TrialStart(
        parameters=parameters_of(serialization.from_data(document["parameters"])),
        seed=document["seed"],
        started=float(document["started"]),
        heartbeat=float(document.get("heartbeat", document["started"]) if heartbeat is None else heartbeat),
        interval=float(document["interval"]),
        process=document["process"],
        sweep_id=document.get("sweep_id"),
    )


def document_blob_digests(document: dict[str, Any]) -> set[str]:
    """Digests of the blobs a :func:`trial_document` refers to, its values left unread."""
    digests = {document["code_digest"], *document.get("worker_environment_digests", ())}
    if document.get("environment_digest"):
        digests.add(document["environment_digest"])
    return digests


@contextmanager
def bulk_decoding() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while many records are decoded.

    Decoding a history of 100,000 trials makes some 300,000 container
    objects, none of them garbage: the collector's passes over them took a
    third of the time. Collection resumes afterwards (unless it was off
    already); reference counting frees memory meanwhile as always.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


UNREADABLE_PARAMETERS = "(parameters)"


def parameters_of(value: Any) -> dict[str, Any]:
    """A trial's stored parameters; ``{"(parameters)": placeholder}`` when they could not be loaded."""
    return value if isinstance(value, dict) else {UNREADABLE_PARAMETERS: value}


def cached_steps_pairs(cached_steps: Iterable[tuple[str, int]]) -> list[list[Any]]:
    """A trial's ``cached_steps`` as plain ``[step, trial id]`` lists, to store."""
    return [[str(step), int(trial_id)] for step, trial_id in cached_steps]


def cached_steps_of(pairs: Iterable[Sequence[Any]]) -> tuple[tuple[str, int], ...]:
    """A trial's ``cached_steps`` from the stored ``[step, trial id]`` pairs."""
    return tuple((str(step), int(trial_id)) for step, trial_id in pairs)


def cache_metrics_text(metrics: Iterable[tuple[str, int, float]]) -> str:
    """The metric points of a cache entry as JSON text (NaN and infinities kept, ints kept as ints).

    Raises
    ------
    TypeError, ValueError
        When an epoch is not an integer or a value not a number.
    """
    return json.dumps([[str(key), int(epoch), _number(value)] for key, epoch, value in metrics])


def cache_metrics_from_text(text: str) -> tuple[tuple[str, int, float], ...]:
    """The metric points a :func:`cache_metrics_text` describes."""
    return tuple((key, epoch, _number(value)) for key, epoch, value in json.loads(text))


def _number(value: float) -> float:
    """``value`` as an ``int`` when it is one (not a bool), else as a ``float``."""
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else float(value)


def metric_kinds(points: Iterable[MetricPoint]) -> tuple[list[str], list[str]]:
    """Keys of ``points`` that got only ``int`` values, and keys that got some other value (sorted)."""
    kinds: dict[str, bool] = {}
    for point in points:
        kinds[point.key] = kinds.get(point.key, True) and type(point.value) is int
    return sorted(k for k, integer in kinds.items() if integer), sorted(k for k, integer in kinds.items() if not integer)


def cache_entry_document(entry: CacheEntry) -> dict[str, Any]:
    """The cache entry as a dict of plain values, without its payload and ``last_used``.

    Stores keep the payload and the time of last use apart: listing entries
    never moves payloads, and marking an entry used rewrites only its time.

    Raises
    ------
    TypeError, ValueError
        When a metric point is not a (key, integer epoch, number) triple.
    """
    return {
        "key": entry.key,
        "step": entry.step,
        "trial_id": int(entry.trial_id),
        "size": int(entry.size),
        "location": entry.location,
        "metrics": cache_metrics_text(entry.metrics),
        "created": float(entry.created),
    }


def cache_entry_from_document(document: dict[str, Any], last_used: float) -> CacheEntry:
    """The entry (no payload) a :func:`cache_entry_document` describes, used at ``last_used``."""
    return CacheEntry(
        key=document["key"],
        step=document["step"],
        trial_id=int(document["trial_id"]),
        size=int(document["size"]),
        payload=None,
        location=document["location"],
        metrics=cache_metrics_from_text(document["metrics"]),
        created=float(document["created"]),
        last_used=float(last_used),
    )


def artifact_document(record: ArtifactRecord) -> dict[str, Any]:
    """The artifact record as a dict of plain values."""
    return {
        "trial_id": int(record.trial_id),
        "name": record.name,
        "path": record.path,
        "digest": record.digest,
        "size": int(record.size),
        "step": record.step,
    }


def artifact_from_document(document: dict[str, Any]) -> ArtifactRecord:
    """The artifact record an :func:`artifact_document` describes (other keys ignored)."""
    return ArtifactRecord(
        trial_id=int(document["trial_id"]),
        name=document["name"],
        path=document["path"],
        digest=document["digest"],
        size=int(document["size"]),
        step=document["step"],
    )


def annotation_document(annotation: Annotation) -> dict[str, Any]:
    """A trial's note and tags as a dict of plain values (tags as a sorted list)."""
    return {
        "trial_id": int(annotation.trial_id),
        "note": annotation.note,
        "tags": sorted(annotation.tags),
    }


def annotation_from_document(document: dict[str, Any]) -> Annotation:
    """The annotation an :func:`annotation_document` describes (other keys ignored)."""
    return Annotation(
        int(document["trial_id"]), str(document.get("note", "")), frozenset(document.get("tags", ()))
    )


@dataclass(frozen=True, slots=True)
class MetricChunk:
    """Points of one metric of one trial written in one batch.

    ``chunk_id`` orders chunks in the order they were written (it starts with
    the batch token) and makes re-sending a batch idempotent.
    """

    chunk_id: str
    trial_id: int
    key: str
    points: bytes


def metric_chunks(points: Iterable[MetricPoint], token: str) -> list[MetricChunk]:
    """Group ``points`` into chunks per (trial, key), in the order they were saved."""
    grouped: dict[tuple[int, str], tuple[array, array, array]] = {}
    nan = float("nan")
    for point in points:
        epochs, values, times = grouped.setdefault(
            (point.trial_id, point.key), (array("q"), array("d"), array("d"))
        )
        epochs.append(point.epoch)
        values.append(point.value)
        times.append(nan if point.time is None else point.time)
    chunks = []
    number = 0
    for (trial_id, key), (epochs, values, times) in grouped.items():
        for start in range(0, len(epochs), MAX_CHUNK_POINTS):
            part = slice(start, start + MAX_CHUNK_POINTS)
            chunks.append(
                MetricChunk(
                    f"{token}:{number:08d}", trial_id, key, _pack(epochs[part], values[part], times[part])
                )
            )
            number += 1
    return chunks


def metric_series(chunks: Iterable[tuple[str, int, bytes]], key: str, integer: bool) -> MetricSeries:
    """Points of ``(chunk_id, trial_id, packed)`` chunks: by trial, epoch, then write order.

    ``integer``: every value saved under ``key`` was an int (see :class:`MetricSeries`).
    """
    import numpy as np

    parts = [(chunk_id, trial_id, _unpack(packed)) for chunk_id, trial_id, packed in chunks]
    if not parts:
        return MetricSeries(key, [], [], [], integer)
    sizes = [len(columns[0]) for _, _, columns in parts]
    trial_ids = np.repeat([trial_id for _, trial_id, _ in parts], sizes)
    chunk_rank = np.repeat(np.argsort(np.argsort([chunk_id for chunk_id, _, _ in parts])), sizes)
    positions = np.concatenate([np.arange(size) for size in sizes])
    epochs, values, times = (
        np.concatenate([np.frombuffer(columns[i], dtype=dtype) for _, _, columns in parts])
        for i, dtype in enumerate((np.int64, np.float64, np.float64))
    )
    order = np.lexsort((positions, chunk_rank, epochs, trial_ids))
    return MetricSeries(key, trial_ids[order], epochs[order], values[order], integer, times[order])


def _pack(epochs: array, values: array, times: array) -> bytes:
    """Count, then epochs (int64), values (float64) and times (float64), all little-endian."""
    columns = [epochs, values, times]
    if _BIG_ENDIAN:
        columns = [array(column.typecode, column) for column in columns]
        for column in columns:
            column.byteswap()
    return _HEADER.pack(len(epochs)) + b"".join(column.tobytes() for column in columns)


def _unpack(packed: bytes) -> tuple[array, array, array]:
    """Epochs, values and times of packed points; times NaN for a chunk packed without them.

    Chunks written before times were recorded hold only epochs and values
    (16 bytes a point instead of 24): the size of the chunk tells which.
    """
    (count,) = _HEADER.unpack_from(packed)
    columns = (array("q"), array("d"), array("d"))
    for number, column in enumerate(columns):
        start = _HEADER.size + 8 * count * number
        column.frombytes(packed[start : start + 8 * count])
    if len(columns[2]) < count:  # no times: unknown
        columns[2].frombytes(_NO_TIME * count)
    if _BIG_ENDIAN:
        for column in columns:
            column.byteswap()
    return columns
