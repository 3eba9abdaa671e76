"""The dashboard's download route: the files a trial kept, streamed from the artifact store.

``/artifact/<trial id>/<digest>`` serves a file only when the store lists that
digest among the trial's artifacts: never an arbitrary object, never a path.
Responses cannot run script on the dashboard's origin: they are sandboxed
(``Content-Security-Policy: sandbox``), never sniffed, and whatever a browser
could run (SVG, HTML, unknown types) is sent as an attachment.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.web import RequestHandler

from daskperiment.artifactstore import ArtifactStore
from daskperiment.backend import Backend
from daskperiment.capture import OUTPUT
from daskperiment.errors import DaskperimentError
from daskperiment.records import ArtifactRecord

logger = logging.getLogger(__name__)

ROUTE = r"/artifact/(.*)"
"""Tornado pattern of the download route: everything below it is answered by :class:`ArtifactHandler`."""

CHUNK = 256 * 2**10
"""Bytes sent at a time."""

TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".svg": "image/svg+xml"}
"""Images the dashboard shows inline, by file extension."""
_TEXT_SUFFIXES = (".txt", ".log", ".csv", ".tsv", ".md", ".yaml", ".yml", ".py", ".out", ".err")
_INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", TEXT, "application/json"}
"""Types shown in the browser when a link is opened; anything else is downloaded."""
_TRIAL_ID = re.compile(r"[1-9][0-9]{0,18}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def artifact_url(record: ArtifactRecord) -> str:
    """Address of the file of ``record``, relative to the dashboard's page."""
    return f"artifact/{record.trial_id}/{record.digest}"


def file_name(record: ArtifactRecord) -> str:
    """Name of the file of ``record``: the last part of its path, or the artifact's name."""
    if record.path:
        return PurePosixPath(record.path).name
    return f"{OUTPUT}.txt" if record.name == OUTPUT else record.name


def media_type(name: str) -> str:
    """Content type of a file called ``name`` (by its extension; unknown ones are binary)."""
    suffix = PurePosixPath(name.lower()).suffix
    if suffix in IMAGE_TYPES:
        return IMAGE_TYPES[suffix]
    if suffix == ".json":
        return "application/json"
    return TEXT if suffix in _TEXT_SUFFIXES else BINARY


def content_disposition(name: str, content_type: str) -> str:
    """``Content-Disposition`` of a file called ``name``: inline only for harmless types.

    The plain ``filename`` keeps letters, digits, ``.``, ``_`` and ``-`` (other
    runs become ``_``); ``filename*`` gives the whole name, percent-encoded.
    """
    disposition = "inline" if content_type in _INLINE_TYPES else "attachment"
    plain = _UNSAFE.sub("_", name).lstrip(".") or "artifact"
    return f"{disposition}; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


@dataclass(frozen=True)
class Download:
    """A file to send: its local copy and the headers describing it."""

    path: Path
    name: str
    content_type: str


def locate(backend: Backend, artifacts: ArtifactStore, trial_id: str, digest: str) -> Download | None:
    """The file ``digest`` kept by trial ``trial_id``, None unless the store lists it for that trial.

    Raises
    ------
    DaskperimentError
        When the store or the artifact location cannot be read.
    """
    if not _TRIAL_ID.fullmatch(trial_id) or not _DIGEST.fullmatch(digest):
        return None
    record = next((r for r in backend.load_artifacts(int(trial_id)) if r.digest == digest), None)
    if record is None:
        return None
    name = file_name(record)
    return Download(artifacts.fetch(digest), name, media_type(name))


class ArtifactHandler(RequestHandler):
    """``GET /artifact/<trial id>/<digest>``: one file of a trial, streamed (see :func:`locate`)."""

    def initialize(self, backend: Backend, artifacts: ArtifactStore) -> None:
        """Serve the artifacts ``backend`` lists, from ``artifacts``."""
        self.backend = backend
        self.artifacts = artifacts

    def set_default_headers(self) -> None:
        """Headers of every response, errors included: never sniffed, never scripted."""
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "sandbox")

    async def get(self, address: str) -> None:
        """Send the file ``<trial id>/<digest>``, or 404 when the trial kept no such file."""
        trial_id, _, digest = address.partition("/")
        try:
            download = await IOLoop.current().run_in_executor(
                None, locate, self.backend, self.artifacts, trial_id, digest
            )
        except DaskperimentError as exc:
            logger.warning("dashboard cannot send artifact %s of trial %s: %s", digest, trial_id, exc)
            self._plain(502, f"the artifact cannot be read: {exc}")
            return
        if download is None:
            self._plain(404, "no such artifact: the trial kept no file with this digest")
            return
        self.set_header("Content-Type", download.content_type)
        self.set_header("Content-Disposition", content_disposition(download.name, download.content_type))
        self.set_header("Cache-Control", "private, max-age=31536000, immutable")  # content-addressed
        with open(download.path, "rb") as source:
            self.set_header("Content-Length", str(os.fstat(source.fileno()).st_size))
            try:
                while chunk := source.read(CHUNK):
                    self.write(chunk)
                    await self.flush()
            except StreamClosedError:
                logger.debug("download of artifact %s of trial %s cancelled by the browser", digest, trial_id)
                return
        self.finish()

    def _plain(self, status: int, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", TEXT)
        self.finish(text + "\n")
