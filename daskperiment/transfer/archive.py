"""The export file: one ZIP archive of JSON Lines documents and the stored bytes.

Members (``FORMAT``, version :data:`VERSION`)::

    manifest.json        what the file holds: format, version, experiment id, counts
    trials.jsonl         one trial document per line (parameters and results as stored data trees)
    starts.jsonl         {trial_id, ...start document}: trials running or killed when exported
                         (version 2 on)
    step_outputs.jsonl   {input_key, output_hash}: the purity check's step output hashes (version 2 on)
    metrics.jsonl        one line per metric key: {key, integer, points: "metrics/N.npy"}
    metrics/N.npy        its points: a structured array (trial_id <i8, epoch <i8, value <f8, time <f8);
                         files of versions 1 and 2 have no time (read as unknown)
    persisted.jsonl      {trial_id, step, payload: "payloads/SHA256"}
    blobs.jsonl          {digest, content: "payloads/SHA256"}: code and environments
    payloads/SHA256      stored bytes (persisted and cached outputs, blobs), once per content
    artifacts.jsonl      one artifact record per line
    files/DIGEST         the artifact files (left out when exported without files)
    annotations.jsonl    {trial_id, note, tags}
    settings.json        {name: value}
    cache.jsonl          step cache entries with their time of use and payload member, or
    cache-files/DIGEST   the large cached outputs kept in the artifact location

Nothing in it is a pickle but the values the store itself holds as signed
pickles, copied with their signatures: they load only where the signing key
is the exporter's (see :mod:`daskperiment.signing`), and reading the file
loads none of them. ``.npy`` members are read without pickles. Members are
found through the JSON lines only, by names checked against the patterns
above; the archive's own checksums catch damaged members.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import numpy as np

from daskperiment import serialization
from daskperiment.backend.codec import (
    annotation_document,
    annotation_from_document,
    artifact_document,
    artifact_from_document,
    cache_entry_document,
    cache_entry_from_document,
)
from daskperiment.errors import TransferError
from daskperiment.records import Annotation, ArtifactRecord, Blob, CacheEntry, PersistedValue
from daskperiment.artifactstore import ArtifactStore
from daskperiment.transfer.contents import Contents, MetricColumns, check_stored

FORMAT = "daskperiment-experiment"
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
"""Versions this daskperiment imports (1: without starts nor step output hashes; 1 and 2: points without times)."""
POINT = np.dtype([("trial_id", "<i8"), ("epoch", "<i8"), ("value", "<f8"), ("time", "<f8")])
"""Layout of a metric's points in ``metrics/N.npy`` (``time``: POSIX time of the point, NaN when unknown)."""
UNTIMED_POINT = np.dtype([("trial_id", "<i8"), ("epoch", "<i8"), ("value", "<f8")])
"""Layout of the points of files written before points had times (versions 1 and 2)."""
_MEMBER = {
    "metrics": re.compile(r"metrics/[0-9]{1,9}\.npy"),
    "payloads": re.compile(r"payloads/[0-9a-f]{64}"),
    "files": re.compile(r"files/[0-9a-f]{64}"),
    "cache-files": re.compile(r"cache-files/[0-9a-f]{64}"),
}
_PICKLE_KEY = '"@pickle":'


def write_archive(contents: Contents, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Write ``contents`` to the export file ``path`` (replaced at once when complete); return its manifest.

    Raises
    ------
    TransferError
        When the contents cannot be read whole, or the file cannot be written.
    """
    target = Path(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            manifest = _Writer(archive).write(contents)
        os.replace(partial, target)
    except OSError as exc:
        raise TransferError(f"cannot write the export file {str(target)!r}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return manifest


class _Writer:
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.payloads: set[str] = set()
        self.cache_files: set[str] = set()
        self.pickles = 0

    def write(self, contents: Contents) -> dict[str, Any]:
        documents = contents.trial_documents()
        lines = [json.dumps(d, allow_nan=False, separators=(",", ":")) for d in documents]
        self.pickles += sum(line.count(_PICKLE_KEY) for line in lines)
        self._write_lines("trials.jsonl", lines)
        starts = [_json({"trial_id": t, **d}) for t, d in contents.start_documents().items()]
        self._write_lines("starts.jsonl", starts)
        self.pickles += sum(line.count(_PICKLE_KEY) for line in starts)
        outputs = contents.step_outputs()
        self._write_lines("step_outputs.jsonl", [_json({"input_key": k, "output_hash": h}) for k, h in outputs.items()])
        metric_lines, points = [], 0
        for number, columns in enumerate(contents.metrics()):
            member = f"metrics/{number}.npy"
            self._npy(member, columns)
            metric_lines.append(_json({"key": columns.key, "integer": bool(columns.integer), "points": member}))
            points += len(columns.values)
        self._write_lines("metrics.jsonl", metric_lines)
        persisted = [
            _json({"trial_id": v.trial_id, "step": v.step, "payload": self._payload(v.payload)})
            for v in contents.persisted()
        ]
        self._write_lines("persisted.jsonl", persisted)
        blobs = [_json({"digest": b.digest, "content": self._payload(b.content, False)}) for b in contents.blobs()]
        self._write_lines("blobs.jsonl", blobs)
        records = contents.artifact_records()
        self._write_lines("artifacts.jsonl", [_json(artifact_document(r)) for r in records])
        files = contents.file_digests()
        for digest in files:
            with contents.file(digest) as local:
                self.archive.write(local, f"files/{digest}", compresslevel=1)
        annotations = contents.annotations()
        self._write_lines("annotations.jsonl", [_json(annotation_document(a)) for a in annotations])
        self._write_lines("settings.json", [_json(contents.settings())])
        cache_lines, cache_files = [], 0
        for entry in contents.cache_entries():
            document = {**cache_entry_document(entry), "last_used": entry.last_used, "payload": None}
            if entry.payload is not None:
                document["payload"] = self._payload(entry.payload)
            else:
                with contents.file(entry.location, cache=True) as local:
                    name = f"cache-files/{entry.location}"
                    if name not in self.cache_files:
                        self.cache_files.add(name)
                        self.archive.write(local, name, compresslevel=1)
                        cache_files += 1
            cache_lines.append(_json(document))
        self._write_lines("cache.jsonl", cache_lines)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "experiment_id": contents.experiment_id,
            "daskperiment": _version(),
            "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "trials": len(documents),
            "starts": len(starts),
            "step_outputs": len(outputs),
            "metric_points": points,
            "persisted": len(persisted),
            "blobs": len(blobs),
            "artifact_records": len(records),
            "artifact_files": len(files),
            "annotations": len(annotations),
            "cache_entries": len(cache_lines),
            "cache_files": cache_files,
            "signed_pickles": self.pickles,
        }
        self._write_lines("manifest.json", [json.dumps(manifest, indent=2)])
        return manifest

    def _write_lines(self, name: str, lines: list[str]) -> None:
        with self.archive.open(name, "w", force_zip64=True) as member:
            for line in lines:
                member.write(line.encode("utf-8") + b"\n")

    def _npy(self, name: str, columns: MetricColumns) -> None:
        points = np.empty(len(columns.values), dtype=POINT)
        points["trial_id"], points["epoch"], points["value"] = columns.trial_ids, columns.epochs, columns.values
        points["time"] = np.nan if columns.times is None else columns.times
        with self.archive.open(name, "w", force_zip64=True) as member:
            np.save(member, points, allow_pickle=False)

    def _payload(self, content: bytes, value: bool = True) -> str:
        digest = hashlib.sha256(content).hexdigest()
        name = f"payloads/{digest}"
        if value and _is_pickle(content):
            self.pickles += 1
        if digest not in self.payloads:
            self.payloads.add(digest)
            self.archive.writestr(name, content, compresslevel=1)
        return name


def _is_pickle(payload: bytes) -> bool:
    """Whether stored bytes are a (signed, or an earlier daskperiment's) pickle."""
    return payload[:5] == serialization.MAGIC + b"P" or payload[:1] == b"\x80"


def _json(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"))


def _version() -> str:
    from daskperiment import __version__

    return __version__


class ArchiveContents(Contents):
    """The contents of an export file, read (and checked) as they are asked for.

    Parameters
    ----------
    path : str or os.PathLike
        The export file.

    Raises
    ------
    TransferError
        When the file is not an export of daskperiment, or of a newer format.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.archive = zipfile.ZipFile(self.path)
        except FileNotFoundError:
            raise TransferError(f"there is no export file {str(self.path)!r}") from None
        except (zipfile.BadZipFile, OSError) as exc:
            raise TransferError(f"{str(self.path)!r} is not a daskperiment export file: {exc}") from None
        manifest = self._json_member("manifest.json")
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            self._malformed("its manifest.json does not describe an exported experiment")
        if manifest.get("version") not in READABLE_VERSIONS:
            raise TransferError(
                f"{str(self.path)!r} is an export of format version {manifest.get('version')!r}; "
                f"this daskperiment reads versions {', '.join(map(str, READABLE_VERSIONS[:-1]))} and {READABLE_VERSIONS[-1]}: "
                "upgrade daskperiment to import it"
            )
        self.manifest = manifest
        self.experiment_id = _text(manifest.get("experiment_id"), "the manifest's experiment id", self.path)

    def close(self) -> None:
        """Close the file."""
        self.archive.close()

    # -- members ---------------------------------------------------------------------
    def _malformed(self, why: str) -> None:
        raise _damaged(self.path, why)

    def _open(self, name: str) -> IO[bytes]:
        try:
            return self.archive.open(name)
        except KeyError:
            self._malformed(f"it lacks the member {name}")
            raise  # unreachable

    def _read(self, name: str) -> bytes:
        try:
            with self._open(name) as member:
                return member.read()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            self._malformed(f"its member {name} cannot be read ({exc})")
            raise  # unreachable

    def _json_member(self, name: str) -> Any:
        try:
            return json.loads(self._read(name))
        except ValueError as exc:
            self._malformed(f"{name} is not JSON ({exc})")

    def _lines(self, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            with self._open(name) as member:
                for number, line in enumerate(io.TextIOWrapper(member, encoding="utf-8"), start=1):
                    try:
                        document = json.loads(line)
                    except ValueError as exc:
                        self._malformed(f"line {number} of {name} is not JSON ({exc})")
                    if not isinstance(document, dict):
                        self._malformed(f"line {number} of {name} is not a JSON object")
                    yield number, document
        except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError) as exc:
            self._malformed(f"its member {name} cannot be read ({exc})")

    def _member(self, name: object, kind: str, where: str) -> str:
        if not isinstance(name, str) or not _MEMBER[kind].fullmatch(name):
            self._malformed(f"{where} names {name!r}, not a member of {kind}/")
        return name  # type: ignore[return-value]

    @contextmanager
    def _checked(self, name: str, where: str) -> Iterator[None]:
        try:
            yield
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._malformed(f"{where} of {name} is malformed ({type(exc).__name__}: {exc})")

    # -- contents ------------------------------------------------------------------------
    def trial_documents(self) -> list[dict[str, Any]]:
        documents = []
        for number, document in self._lines("trials.jsonl"):
            with self._checked("trials.jsonl", f"line {number}"):
                documents.append(_checked_trial(document))
        return documents

    def start_documents(self) -> dict[int, dict[str, Any]]:
        if self.manifest["version"] < 2:
            return {}
        documents: dict[int, dict[str, Any]] = {}
        for number, line in self._lines("starts.jsonl"):
            with self._checked("starts.jsonl", f"line {number}"):
                trial_id = _trial_id(line.pop("trial_id"))
                if trial_id in documents:
                    raise ValueError(f"trial {trial_id} starts twice")
                documents[trial_id] = _checked_start(line)
        return documents

    def step_outputs(self) -> dict[str, str]:
        if self.manifest["version"] < 2:
            return {}
        outputs = {}
        for number, line in self._lines("step_outputs.jsonl"):
            where = f"line {number} of step_outputs.jsonl"
            key = _text(line.get("input_key"), f"the input key of {where}", self.path)
            outputs[key] = _text(line.get("output_hash"), f"the output hash of {where}", self.path)
        return outputs

    def metrics(self) -> Iterator[MetricColumns]:
        for number, line in self._lines("metrics.jsonl"):
            where = f"line {number} of metrics.jsonl"
            key = _text(line.get("key"), f"the metric key of {where}", self.path)
            member = self._member(line.get("points"), "metrics", where)
            try:
                points = np.load(io.BytesIO(self._read(member)), allow_pickle=False)
            except ValueError as exc:
                self._malformed(f"{member} is not a .npy file of points ({exc})")
            if points.dtype not in (POINT, UNTIMED_POINT) or points.ndim != 1:
                self._malformed(f"{member} holds {points.dtype} points, not {POINT}")
            yield MetricColumns(
                key, line.get("integer") is True, points["trial_id"].astype(np.int64),
                points["epoch"].astype(np.int64), points["value"].astype(np.float64),
                points["time"].astype(np.float64) if points.dtype == POINT else None,
            )

    def persisted(self) -> Iterator[PersistedValue]:
        for number, line in self._lines("persisted.jsonl"):
            where = f"line {number} of persisted.jsonl"
            with self._checked("persisted.jsonl", f"line {number}"):
                trial_id, step = _trial_id(line["trial_id"]), _text(line["step"], f"the step of {where}", self.path)
            yield PersistedValue(trial_id, step, self._read(self._member(line.get("payload"), "payloads", where)))

    def blobs(self) -> Iterator[Blob]:
        for number, line in self._lines("blobs.jsonl"):
            where = f"line {number} of blobs.jsonl"
            digest = _text(line.get("digest"), f"the digest of {where}", self.path)
            yield Blob(digest, self._read(self._member(line.get("content"), "payloads", where)))

    def artifact_records(self) -> list[ArtifactRecord]:
        records = []
        for number, line in self._lines("artifacts.jsonl"):
            with self._checked("artifacts.jsonl", f"line {number}"):
                record = artifact_from_document(line)
                _trial_id(record.trial_id)
                if not all(isinstance(v, str) for v in (record.name, record.path, record.digest, record.step)):
                    raise TypeError("name, path, digest and step must be texts")
                self._member(f"files/{record.digest}", "files", f"line {number} of artifacts.jsonl")
            records.append(record)
        return records

    def file_digests(self) -> list[str]:
        names = set(self.archive.namelist())
        digests = super().file_digests()
        if self.manifest.get("artifact_files") == 0 and not any(f"files/{d}" in names for d in digests):
            return []  # exported without its files
        missing = [d for d in digests if f"files/{d}" not in names]
        if missing:
            self._malformed(f"it lacks the artifact files {', '.join(missing[:3])}")
        return digests

    def annotations(self) -> list[Annotation]:
        annotations = []
        for number, line in self._lines("annotations.jsonl"):
            with self._checked("annotations.jsonl", f"line {number}"):
                annotation = annotation_from_document(line)
                _trial_id(annotation.trial_id)
                if not isinstance(line["note"], str) or not all(isinstance(t, str) for t in line["tags"]):
                    raise TypeError("the note and tags must be texts")
            annotations.append(annotation)
        return annotations

    def settings(self) -> dict[str, str]:
        settings = self._json_member("settings.json")
        if not isinstance(settings, dict) or not all(isinstance(v, str) for v in settings.values()):
            self._malformed("settings.json is not an object of texts")
        return settings

    def cache_entries(self) -> Iterator[CacheEntry]:
        for number, line in self._lines("cache.jsonl"):
            where = f"line {number} of cache.jsonl"
            with self._checked("cache.jsonl", f"line {number}"):
                entry = cache_entry_from_document(line, float(line["last_used"]))
            if line.get("payload") is not None:
                entry = replace(entry, payload=self._read(self._member(line["payload"], "payloads", where)))
            else:
                self._member(f"cache-files/{entry.location}", "cache-files", where)
            yield entry

    def put_files(self, digests: list[str], into: ArtifactStore, cache: bool = False) -> None:
        """Extract the files into a scratch folder of ``into``, then move them in (no second copy)."""
        if not digests:
            return
        scratch = into.scratch_folder(".import-")
        try:
            for digest in digests:
                local = scratch / digest
                self._extract(self._file_member(digest, cache), local)
                check_stored(digest, into.put_file(local, move=True)[0], self.experiment_id)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _file_member(self, digest: str, cache: bool) -> str:
        kind = "cache-files" if cache else "files"
        return self._member(f"{kind}/{digest}", kind, "a record")

    def _extract(self, name: str, target: Path) -> None:
        try:
            with self._open(name) as member, open(target, "wb") as copy:
                shutil.copyfileobj(member, copy, 8 * 2**20)
        except (zipfile.BadZipFile, EOFError) as exc:
            self._malformed(f"its member {name} cannot be read ({exc})")

    @contextmanager
    def file(self, digest: str, cache: bool = False) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="daskperiment-import-") as folder:
            local = Path(folder) / digest
            self._extract(self._file_member(digest, cache), local)
            yield local


def _damaged(path: Path, why: str) -> TransferError:
    return TransferError(f"{str(path)!r} is a damaged or forged export file: {why}")


def _text(value: object, what: str, path: Path) -> str:
    if not isinstance(value, str) or not value:
        raise _damaged(path, f"{what} is {value!r}, not a text")
    return value


def _trial_id(value: object) -> int:
    if type(value) is not int or value < 1:
        raise ValueError(f"trial id {value!r} is not a positive integer")
    return value


_TRIAL_FIELDS = {
    "trial_id": int, "result_type": str, "success": bool, "finished": (int, float),
    "process_time": (int, float), "code_digest": str,
}
_OPTIONAL_FIELDS = {"description": str, "seed": int, "environment_digest": str, "sweep_id": str, "status": str}


_START_FIELDS = {"started": (int, float), "heartbeat": (int, float), "interval": (int, float), "process": str}


def _checked_start(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` once checked to be a start document the stores can hold."""
    for name, kind in _START_FIELDS.items():
        if not isinstance(document[name], kind) or isinstance(document[name], bool):
            raise TypeError(f"field {name!r} is {document[name]!r}")
    if not isinstance(document["parameters"], dict):
        raise TypeError("parameters must be an object")
    if "seed" not in document:  # None when the trial had none, but given
        raise KeyError("seed")
    for name, kind in (("seed", int), ("sweep_id", str)):
        value = document.get(name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise TypeError(f"field {name!r} is {value!r}")
    return document


def _checked_trial(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` once checked to be a trial document the stores can hold."""
    _trial_id(document["trial_id"])
    for name, kind in _TRIAL_FIELDS.items():
        if not isinstance(document[name], kind) or (kind is not bool and isinstance(document[name], bool)):
            raise TypeError(f"field {name!r} is {document[name]!r}")
    for name, kind in _OPTIONAL_FIELDS.items():
        value = document.get(name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise TypeError(f"field {name!r} is {value!r}")
    if not isinstance(document["parameters"], dict) or "result" not in document:
        raise TypeError("parameters must be an object, and a result given")
    if not all(isinstance(d, str) for d in document.get("worker_environment_digests", [])):
        raise TypeError("worker environment digests must be texts")
    for step, trial_id in document.get("cached_steps", []):
        if not isinstance(step, str):
            raise TypeError(f"cached step {step!r} is not a text")
        _trial_id(trial_id)
    return document
