"""Files a running step keeps: artifact folders it writes into, and paths it captures.

A step asks for a folder (:meth:`Experiment.artifact_dir`) or names a file or
folder it wrote elsewhere (:meth:`Experiment.capture_artifact`). When the step
ends, every file is uploaded to the artifact store (content-addressed:
identical files are stored once) and listed in the step's records; a long
step uploads what changed every :data:`UPLOAD_INTERVAL` seconds meanwhile, so
the end of the step only sends the files written last, and the files uploaded
so far are listed while it runs (:meth:`StepArtifacts.listed`, which the
metric stream writes with its next batch). The folders are the
store's scratch folders, removed after the step: at its end their files are
given to the store (moved into a local location rather than copied); files
captured from elsewhere are copied.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from daskperiment.artifactstore import ArtifactStore
from daskperiment.errors import ArtifactError

logger = logging.getLogger(__name__)

UPLOAD_INTERVAL = 30.0
OUTPUT = "output"
"""Name of the artifact holding a trial's standard output and error."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


@dataclass(frozen=True, slots=True)
class KeptFile:
    """One file a step kept: artifact name, path inside it, content digest and size."""

    name: str
    path: str
    digest: str
    size: int


def check_artifact_name(name: object) -> str:
    """``name`` of an artifact, once checked.

    Raises
    ------
    ValueError
        For anything but 1 to 128 letters, digits, ``_``, ``-`` and ``.``
        starting with a letter or digit (no path separators, no ``..``), and
        for the reserved name ``output``.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(
            f"invalid artifact name {name!r}: use 1 to 128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit, e.g. 'weights' (a name is not a path)"
        )
    if name == OUTPUT:
        raise ValueError(
            f"the artifact name {OUTPUT!r} is reserved for the trial's captured standard output "
            "and error: choose another name"
        )
    return name


@dataclass(slots=True)
class _Source:
    name: str
    path: Path
    temporary: bool


class StepArtifacts:
    """The artifacts of one running step, uploaded to ``store``.

    Parameters
    ----------
    store : ArtifactStore
        Where the files go.
    step : str
        Name of the step (for messages).
    """

    def __init__(self, store: ArtifactStore, step: str) -> None:
        self.store = store
        self.step = step
        self._sources: dict[str, _Source] = {}
        self._uploaded: dict[tuple[str, int, int], tuple[str, int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listed: tuple[int, list[KeptFile]] = (0, [])

    def folder(self, name: str) -> Path:
        """A new empty local folder whose files are kept as artifact ``name``."""
        name = check_artifact_name(name)
        with self._lock:
            existing = self._sources.get(name)
            if existing is not None and existing.temporary:
                return existing.path
            self._refuse_twice(name)
            path = self.store.scratch_folder(f"daskperiment-{self.step}-") / name
            path.mkdir()
            self._sources[name] = _Source(name, path, temporary=True)
        self._start_uploads()
        return path

    def add(self, path: str | os.PathLike[str], name: str | None) -> str:
        """Keep the file or folder ``path`` as artifact ``name`` (default: its file name)."""
        source = Path(path)
        if not source.exists():
            raise ArtifactError(
                f"cannot keep {str(path)!r} as an artifact: no such file or folder. Write it "
                "before capturing it, or give its full path"
            )
        name = check_artifact_name(source.name if name is None else name)
        with self._lock:
            self._refuse_twice(name)
            self._sources[name] = _Source(name, source.absolute(), temporary=False)
        self._start_uploads()
        return name

    def _refuse_twice(self, name: str) -> None:
        if name in self._sources:
            raise ArtifactError(
                f"artifact {name!r} is already kept by step {self.step!r} of this trial: give "
                "each artifact its own name"
            )

    def collect(self) -> list[KeptFile]:
        """Upload every file not uploaded yet and list them all; remove the temporary folders.

        Raises
        ------
        ArtifactError
            When a file cannot be read or the store cannot be written.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            return self._upload_all(final=True)
        finally:
            for source in self._sources.values():
                if source.temporary:
                    shutil.rmtree(source.path.parent, ignore_errors=True)

    def _start_uploads(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._upload_periodically, name=f"daskperiment-artifacts-{self.step}", daemon=True
                )
                self._thread.start()

    def listed(self) -> tuple[int, list[KeptFile]]:
        """The files uploaded while the step runs, as of the last periodic upload, with the number of that listing.

        The number grows with each listing that differs from the one before
        (0: none yet): the metric stream writes a listing's records once.
        """
        with self._lock:
            return self._listed

    def _upload_periodically(self) -> None:
        while not self._stop.wait(UPLOAD_INTERVAL):
            try:
                kept = self._upload_all()
            except Exception as exc:  # retried at the end of the step, where it is reported
                logger.debug("periodic artifact upload of step %s failed: %s", self.step, exc)
                continue
            with self._lock:
                if kept != self._listed[1]:
                    self._listed = (self._listed[0] + 1, kept)

    def _upload_all(self, final: bool = False) -> list[KeptFile]:
        """Upload what is new; ``final`` (the step has ended) gives the temporary folders' files away."""
        kept: list[KeptFile] = []
        with self._lock:
            sources = list(self._sources.values())
        for source in sources:
            files = _files_of(source)
            # a link's target may be moved before the link is read: folders holding links are copied
            move = final and source.temporary and not any(file.is_symlink() for _, file in files)
            for relative, file in files:
                kept.append(KeptFile(source.name, relative, *self._upload(file, move)))
        return sorted(kept, key=lambda item: (item.name, item.path))

    def _upload(self, file: Path, move: bool) -> tuple[str, int]:
        """Upload ``file`` unless this same version of it was uploaded already (``move``: see ``put_file``)."""
        try:
            status = file.stat()
        except OSError as exc:
            raise ArtifactError(f"cannot read artifact file {str(file)!r}: {exc}") from exc
        version = (str(file), status.st_mtime_ns, status.st_size)
        done = self._uploaded.get(version)
        if done is None:
            done = self._uploaded[version] = self.store.put_file(file, move=move)
        return done


def _files_of(source: _Source) -> list[tuple[str, Path]]:
    """(path inside the artifact, file) of every file of a kept source, in a stable order."""
    if source.path.is_file():
        return [("", source.path)]
    if not source.path.is_dir():
        raise ArtifactError(
            f"artifact {source.name!r} ({str(source.path)!r}) disappeared before the step ended: "
            "keep files until the step returns"
        )
    root = source.path.resolve()
    files = []
    for folder, _, names in os.walk(source.path, followlinks=False):
        for file_name in names:
            file = Path(folder) / file_name
            target = file.resolve()
            if file.is_symlink() and not target.is_relative_to(root):
                raise ArtifactError(
                    f"artifact {source.name!r} holds {str(file)!r}, a link to {str(target)!r} "
                    "outside the artifact's folder: copy the file into the folder instead"
                )
            if target.is_file():
                files.append((file.relative_to(source.path).as_posix(), file))
    return sorted(files)
