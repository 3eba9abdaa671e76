"""Content-addressed files in an fsspec location: the store behind a trial's artifacts.

Every file is kept once, under the digest of its content:
``<location>/objects/<digest[:2]>/<digest>``. The location is a local folder
or anything fsspec reaches (``s3://bucket/prefix``, ``gcs://...``). Objects
never change once written; reading one back from a remote location downloads
it once into a local cache.

The digest (:func:`content_digest`, 64 lowercase hexadecimal digits) of a
content is its BLAKE3 hash (256 bits): a cryptographic hash that is a tree
over the content, so large files are hashed on every core (the ``blake3``
package), several times faster than SHA-256 on one.

Files a caller gives away (the temporary folders of :meth:`ArtifactStore.scratch_folder`,
kept with ``put_file(path, move=True)``) are hashed where they are and renamed
into a local location: read once, never copied.

This is a low layer: it knows nothing of experiments, trials or stores.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any

import fsspec
import platformdirs
from blake3 import blake3
from fsspec.implementations.local import LocalFileSystem

from daskperiment.errors import ArtifactError
from daskperiment.userdirs import cache_dir

logger = logging.getLogger(__name__)

CHUNK = 8 * 2**20
"""Bytes read, hashed and written at a time."""

READ_ONLY = 0o444
"""Mode of stored objects, downloaded copies and materialized files."""

S3_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 10,
    "read_timeout": 60,
    "retries": {"max_attempts": 3, "mode": "standard"},
}
"""botocore settings of S3 locations unless ``storage_options["config_kwargs"]`` sets them."""

_DIGEST = re.compile(r"[0-9a-f]{64}")


class ArtifactStore:
    """Files kept by content in a local folder or an fsspec location.

    Parameters
    ----------
    url : str
        A folder (plain path or ``file://`` URL) or an fsspec URL such as
        ``"s3://bucket/prefix"``.
    storage_options : dict, optional
        Options of the fsspec filesystem (credentials, ``client_kwargs``,
        ...). S3 locations get a 10 s connect timeout and 3 attempts per
        request unless ``config_kwargs`` says otherwise.
    cache_dir : str or pathlib.Path, optional
        Local folder of the objects downloaded from a remote location. By
        default ``$DASKPERIMENT_CACHE_DIR/artifacts`` if that variable is set,
        else the ``artifacts`` folder of the user's cache directory.

    Attributes
    ----------
    url : str
        The location: an absolute path for a local folder, else the URL
        without a trailing ``/``.

    Notes
    -----
    A store pickles as its URL, storage options and cache folder (it is sent
    to dask workers); the filesystem is opened again in the new process.
    Objects are written atomically (a local object is copied to a temporary
    name and renamed; a remote object is uploaded with one PUT or one
    multipart upload), so a failure never leaves a partial object behind.
    Local objects are not synced to disk (as the local store's own data, they
    survive a crashed process but not always a power cut): an object found
    with the wrong size is written again.

    Examples
    --------
    >>> store = ArtifactStore("artifacts")  # doctest: +SKIP
    >>> digest = store.put_bytes(b"hello")  # doctest: +SKIP
    >>> store.fetch(digest).read_bytes()  # doctest: +SKIP
    b'hello'
    """

    def __init__(
        self, url: str, storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.strip():
            raise ArtifactError(
                f"the artifact location must be a folder or an fsspec URL such as 's3://bucket/prefix', not {url!r}"
            )
        self._storage_options = dict(storage_options or {})
        self._cache_dir_option = None if cache_dir is None else os.fspath(cache_dir)
        self._lock = threading.Lock()
        self._opened: tuple[fsspec.AbstractFileSystem, str] | None = self._open(url)
        self.url = self._opened[1] if self._is_local(self._opened[0]) else url.rstrip("/")

    # -- pickling ----------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "storage_options": self._storage_options, "cache_dir": self._cache_dir_option}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.url = state["url"]
        self._storage_options = state["storage_options"]
        self._cache_dir_option = state["cache_dir"]
        self._lock = threading.Lock()
        self._opened = None

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    def __dask_tokenize__(self) -> tuple[str, str]:
        """Its identity in dask hashes (cache keys of steps using its artifacts): the location."""
        return ("ArtifactStore", self.url)

    def subfolder(self, name: str) -> "ArtifactStore":
        """The store of the folder ``name`` of this location (same options and download cache)."""
        return ArtifactStore(
            f"{self.url}/{check_relative_path(name)}", self._storage_options, self._cache_dir_option
        )

    def _open(self, url: str) -> tuple[fsspec.AbstractFileSystem, str]:
        """The filesystem of ``url`` and the path of the location in it."""
        protocol = fsspec.core.split_protocol(url)[0]
        if protocol is None:
            url = os.path.expanduser(url)
        options = self._storage_options
        if protocol in ("s3", "s3a"):
            options = {**options, "config_kwargs": {**S3_DEFAULTS, **options.get("config_kwargs", {})}}
        try:
            fs, root = fsspec.core.url_to_fs(url, **options)
        except ImportError as exc:
            raise ArtifactError(
                f"the artifact location {url!r} needs a package that is not installed ({exc}): install it"
            ) from exc
        except (ValueError, TypeError) as exc:
            raise ArtifactError(
                f"the artifact location {url!r} cannot be opened ({exc}): check the URL and the storage options"
            ) from exc
        return fs, root.rstrip("/") or root

    @staticmethod
    def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
        return isinstance(fs, LocalFileSystem)

    def _location(self) -> tuple[fsspec.AbstractFileSystem, str]:
        """The filesystem and the root path in it (opened on first use in this process)."""
        if self._opened is None:
            with self._lock:
                if self._opened is None:
                    self._opened = self._open(self.url)
        return self._opened

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem of the location."""
        return self._location()[0]

    @property
    def _local(self) -> bool:
        return self._is_local(self.fs)

    @property
    def cache_dir(self) -> Path:
        """Local folder of the objects downloaded from a remote location."""
        if self._cache_dir_option is not None:
            return Path(self._cache_dir_option)
        return cache_dir() / "artifacts"

    def _object(self, digest: str) -> str:
        """Path of an object in the location (validates the digest)."""
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise ValueError(f"{digest!r} is not a content digest (64 lowercase hexadecimal digits)")
        return f"{self._location()[1]}/objects/{digest[:2]}/{digest}"

    # -- writing -----------------------------------------------------------------
    def put_file(self, path: str | os.PathLike[str], *, move: bool = False) -> tuple[str, int]:
        """Keep the content of the file ``path``; return its digest and size.

        The file is read once; identical content is stored once.

        Parameters
        ----------
        path : str or os.PathLike
            The file.
        move : bool, default False
            The file is the caller's to give away: nothing writes it any
            more, and it is not used afterwards (it may be gone). It is then
            hashed where it is and renamed into a local location (copied
            when it is on another filesystem or has other hard links), or
            uploaded as it is to a remote one. Files of a
            :meth:`scratch_folder` are kept this way.

        Raises
        ------
        ArtifactError
            When ``path`` is missing, is a folder or cannot be read, or the
            location cannot be written.
        """
        source = Path(path)
        if source.is_dir():
            raise ArtifactError(
                f"cannot keep {str(source)!r} as a file artifact: it is a folder; give a file "
                "(a folder is kept file by file)"
            )
        try:
            handle = open(source, "rb", buffering=0)
        except FileNotFoundError as exc:
            raise ArtifactError(
                f"cannot keep {str(source)!r} as an artifact: there is no such file; check the path, "
                "and that the file is written before it is captured"
            ) from exc
        except OSError as exc:
            raise ArtifactError(f"cannot keep {str(source)!r} as an artifact: {exc}; make it readable") from exc
        with handle:
            try:
                if move:
                    return self._take(source, handle)
                return self._put_local(handle) if self._local else self._put_remote(handle)
            except OSError as exc:
                raise ArtifactError(
                    f"cannot keep {str(source)!r} in the artifact location {self.url!r}: {exc}"
                ) from exc

    def put_bytes(self, data: bytes) -> str:
        """Keep ``data``; return its digest (identical content is stored once).

        Raises
        ------
        ArtifactError
            When the location cannot be written.
        """
        digest = content_digest(data)
        if self._stored_size(digest) == len(data):
            return digest
        if self._local:
            target = Path(self._object(digest))
            handle, temporary = self._local_temporary()
            with _removed_on_failure(temporary):
                with handle:
                    handle.write(data)
                self._install(temporary, target)
        else:
            self._remote("store an object", lambda: self.fs.pipe_file(self._object(digest), data))
        logger.debug("stored %s (%d bytes) in %s", digest, len(data), self.url)
        return digest

    def _put_local(self, source: IO[bytes]) -> tuple[str, int]:
        """Copy ``source`` to a temporary file of the location, hashing it, then rename it."""
        handle, temporary = self._local_temporary()
        with _removed_on_failure(temporary):
            with handle:
                digest, size = _copy_hashing(source, handle)
            if self._stored_size(digest) == size:
                temporary.unlink()
            else:
                self._install(temporary, Path(self._object(digest)))
        logger.debug("stored %s (%d bytes) in %s", digest, size, self.url)
        return digest, size

    def _put_remote(self, source: IO[bytes]) -> tuple[str, int]:
        """Upload a snapshot of ``source`` (in memory or in a local temporary file) unless stored."""
        if os.fstat(source.fileno()).st_size <= CHUNK:
            data = source.read()
            return self.put_bytes(data), len(data)
        handle, temporary = _temporary_in(self._cache_folder(), ".upload-")
        try:
            with handle:
                digest, size = _copy_hashing(source, handle)
            if self._stored_size(digest) != size:
                target = self._object(digest)
                self._remote("upload an object", lambda: self.fs.put_file(str(temporary), target))
                logger.debug("uploaded %s (%d bytes) to %s", digest, size, self.url)
        finally:
            temporary.unlink(missing_ok=True)
        return digest, size

    def _take(self, source: Path, handle: IO[bytes]) -> tuple[str, int]:
        """Keep the file ``source`` (open as ``handle``) that its caller gives away: hash it in place,
        then rename it into a local location, or upload it as it is."""
        digest, size = _file_digest(source, handle)
        if self._stored_size(digest) == size:
            return digest, size
        if not self._local:
            self._remote("upload an object", lambda: self.fs.put_file(str(source), self._object(digest)))
            logger.debug("uploaded %s (%d bytes) to %s", digest, size, self.url)
            return digest, size
        target = Path(self._object(digest))
        target.parent.mkdir(parents=True, exist_ok=True)
        status = os.fstat(handle.fileno())
        if status.st_nlink == 1 and status.st_dev == os.stat(target.parent).st_dev:
            self._install(source, target)
        else:  # another filesystem, or a file linked elsewhere too: a copy
            temporary_handle, temporary = self._local_temporary()
            with _removed_on_failure(temporary):
                temporary_handle.close()  # filled by name: copyfile lets the kernel copy
                shutil.copyfile(source, temporary)
                self._install(temporary, target)
        logger.debug("stored %s (%d bytes) in %s", digest, size, self.url)
        return digest, size

    def scratch_folder(self, prefix: str) -> Path:
        """A new empty local folder for files to keep with ``put_file(path, move=True)``.

        For a local location it is inside the location (in its ``tmp``
        folder), so that its files are renamed into place; otherwise in the
        system's temporary folder. The caller removes it when done.

        Raises
        ------
        ArtifactError
            When the folder cannot be created.
        """
        parent = Path(self._location()[1]) / "tmp" if self._local else None
        try:
            if parent is not None:
                parent.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        except OSError as exc:
            raise ArtifactError(
                f"cannot create a folder for artifact files in {str(parent or tempfile.gettempdir())!r}: {exc}; "
                "choose a writable artifact location"
            ) from exc

    def _local_temporary(self) -> tuple[IO[bytes], Path]:
        """A new temporary file in the objects folder of a local location."""
        return _temporary_in(Path(self._location()[1]) / "objects", ".tmp-")

    def _install(self, temporary: Path, target: Path) -> None:
        """Make the complete file ``temporary`` the read-only object ``target``."""
        os.chmod(temporary, READ_ONLY)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary, target)
        except OSError as exc:
            raise ArtifactError(
                f"cannot write to the artifact folder {self.url!r}: {exc}; choose a writable artifact location"
            ) from exc

    def _stored_size(self, digest: str) -> int | None:
        """Size of the stored object ``digest``, ``None`` if it is absent."""
        path = self._object(digest)
        if self._local:
            try:
                return os.stat(path).st_size
            except (FileNotFoundError, NotADirectoryError):
                return None
            except OSError as exc:
                raise ArtifactError(
                    f"cannot look up artifact object {digest} in {self.url!r}: {exc}; make the folder readable"
                ) from exc
        info = self._remote("look up an object", lambda: _info_or_none(self.fs, path))
        return None if info is None else int(info["size"])

    # -- reading -----------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        """Whether the object ``digest`` is stored."""
        return self._stored_size(digest) is not None

    def get_bytes(self, digest: str) -> bytes:
        """Content of the object ``digest`` (checked against its digest).

        Raises
        ------
        ArtifactError
            When the object is missing or damaged, or the location cannot be read.
        """
        path = self._object(digest)
        try:
            if self._local:
                data = Path(path).read_bytes()
            else:
                data = self._remote("read an object", lambda: self.fs.cat_file(path))
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise self._missing(digest) from exc
        except OSError as exc:  # of a local folder: a remote location's are ArtifactErrors
            raise ArtifactError(
                f"cannot read artifact object {digest} in {self.url!r}: {exc}; make the folder readable"
            ) from exc
        actual = content_digest(data)
        if actual != digest:
            raise self._corrupted(digest, actual)
        return data

    def fetch(self, digest: str) -> Path:
        """A local, read-only path to the content of the object ``digest``.

        A local location returns the object file itself. A remote object is
        downloaded once into :attr:`cache_dir`, checked against its digest;
        later calls return that copy without asking the location.

        Raises
        ------
        ArtifactError
            When the object is missing, the download is damaged, or the
            location cannot be read.
        """
        path = self._object(digest)
        if self._local:
            if not os.path.isfile(path):
                raise self._missing(digest)
            return Path(path)
        cached = self._cache_folder() / digest
        if cached.is_file():
            return cached
        handle, temporary = _temporary_in(cached.parent, f".{digest}-")
        with _removed_on_failure(temporary):
            with handle:
                actual, size = self._remote("download an object", lambda: self._download(path, digest, handle))
            if actual != digest:
                raise self._corrupted(digest, actual)
            os.chmod(temporary, READ_ONLY)
            os.replace(temporary, cached)
        logger.debug("downloaded %s (%d bytes) from %s", digest, size, self.url)
        return cached

    def _download(self, path: str, digest: str, target: IO[bytes]) -> tuple[str, int]:
        try:
            remote = self.fs.open(path, "rb", block_size=CHUNK)
        except FileNotFoundError as exc:
            if _no_bucket(exc):
                raise
            raise self._missing(digest) from exc
        with remote:
            return _copy_hashing(remote, target)

    def materialize(self, files: Sequence[tuple[str, str]], target_dir: str | os.PathLike[str]) -> Path:
        """A local folder holding ``files``, each a (relative path, digest) pair.

        Files are hard links to the fetched objects where possible, read-only
        copies otherwise. A folder already holding exactly these files (as
        links) is returned as it is; otherwise it is built anew next to
        ``target_dir`` and renamed into place.

        Raises
        ------
        ValueError
            When a path is absolute, leaves the folder, is given twice, or is
            both a file and a folder.
        ArtifactError
            When an object cannot be fetched.
        """
        target = Path(target_dir)
        entries = _folder_entries(files)
        sources = {path: self.fetch(digest) for path, digest in entries}
        if _holds(target, sources):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            for path, source in sources.items():
                _link_or_copy(source, building / path)
            try:
                os.rename(building, target)
            except OSError:  # a previous folder is in the way
                if _holds(target, sources):
                    shutil.rmtree(building)
                    return target
                aside = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
                os.replace(target, aside / target.name)
                os.rename(building, target)
                shutil.rmtree(aside, ignore_errors=True)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        return target

    # -- deleting ----------------------------------------------------------------
    def delete(self, digests: Iterable[str]) -> None:
        """Remove the objects ``digests`` (absent ones are ignored), and their downloaded copies."""
        paths = [self._object(digest) for digest in digests]
        if not paths:
            return
        if self._local:
            try:
                for path in paths:
                    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                        os.unlink(path)
            except OSError as exc:
                raise ArtifactError(
                    f"cannot delete artifact objects in {self.url!r}: {exc}; make the folder writable"
                ) from exc
        else:
            self._remote("delete objects", lambda: _remove_all(self.fs, paths))
            for path in paths:
                (self._cache_folder() / path.rsplit("/", 1)[1]).unlink(missing_ok=True)
        logger.debug("deleted %d objects from %s", len(paths), self.url)

    # -- errors ------------------------------------------------------------------
    def _cache_folder(self) -> Path:
        folder = self.cache_dir
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArtifactError(
                f"cannot create the artifact download folder {str(folder)!r}: {exc}; "
                "give a writable cache_dir (or set $DASKPERIMENT_CACHE_DIR)"
            ) from exc
        return folder

    def _remote(self, doing: str, call: Any) -> Any:
        """``call()``, its failures to reach the location raised as ArtifactError."""
        try:
            return call()
        except ArtifactError:
            raise
        except FileNotFoundError as exc:
            if not _no_bucket(exc):
                raise
            raise ArtifactError(
                f"cannot {doing}: the bucket of the artifact location {self.url!r}{self._at()} does not exist; "
                "create it, or fix the location"
            ) from exc
        except PermissionError as exc:
            raise ArtifactError(
                f"cannot {doing}: access to the artifact location {self.url!r}{self._at()} was denied ({exc}); "
                "check the credentials (storage_options or the environment) and their permissions"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - fsspec backends raise their own errors (botocore, aiohttp, ...)
            raise ArtifactError(
                f"cannot {doing}: the artifact location {self.url!r}{self._at()} could not be reached "
                f"({type(exc).__name__}: {exc}); check the endpoint URL, the network and the credentials"
            ) from exc

    def _at(self) -> str:
        """`` at <endpoint>`` when the storage options name an endpoint, else nothing."""
        options = self._storage_options
        endpoint = options.get("endpoint_url") or options.get("client_kwargs", {}).get("endpoint_url")
        return f" at {endpoint}" if endpoint else ""

    def _missing(self, digest: str) -> ArtifactError:
        return ArtifactError(
            f"artifact object {digest} is missing from {self.url!r}: it was deleted, or the artifacts "
            "were kept in another location (check the experiment's artifact location)"
        )

    def _corrupted(self, digest: str, actual: str) -> ArtifactError:
        return ArtifactError(
            f"artifact object {digest} in {self.url!r} is damaged: its content has the digest {actual}; "
            "it cannot be used (delete it, and keep the file again if you still have it)"
        )


def artifact_location(explicit: str | None, store_root: str | None, experiment_id: str) -> str:
    """Where an experiment keeps its artifacts.

    Parameters
    ----------
    explicit : str or None
        A location given for the experiment; used as it is.
    store_root : str or None
        The store's own artifact folder (the local store's ``artifacts``
        subfolder), ``None`` for a server store.
    experiment_id : str
        Id of the experiment.

    Returns
    -------
    str
        ``explicit`` if given; else ``$DASKPERIMENT_ARTIFACTS/<experiment_id>``
        if that variable is set; else ``store_root``; else
        ``<user data directory>/artifacts/<experiment_id>``.

    Notes
    -----
    Shared locations get a folder per experiment: removing an experiment's
    objects (evicting its step cache) then only needs that experiment's
    records, never those of every experiment that shares the location.
    """
    if explicit:
        return explicit
    configured = os.environ.get("DASKPERIMENT_ARTIFACTS")
    if configured:
        return f"{configured.rstrip('/')}/{experiment_id}"
    if store_root:
        return store_root
    return str(Path(platformdirs.user_data_dir("daskperiment")) / "artifacts" / experiment_id)


def check_relative_path(path: str) -> str:
    """``path`` as a relative path inside an artifact, with ``/`` separators.

    Raises
    ------
    ValueError
        When ``path`` is empty, absolute (or has a drive), or leaves the
        artifact directory through ``..``.
    """
    if not isinstance(path, str):
        raise ValueError(f"a path inside an artifact must be a string, not {type(path).__name__}")
    text = path.replace("\\", "/") if os.sep == "\\" else path
    if "\0" in text:
        raise ValueError(f"the path {path!r} contains a NUL character: rename the file")
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).drive:
        raise ValueError(
            f"the path {path!r} is absolute; give a path relative to the artifact directory, such as 'model/weights.bin'"
        )
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(
            f"the path {path!r} leads outside the artifact directory; give a path inside it, such as 'model/weights.bin'"
        )
    if not parts:
        raise ValueError(f"the path {path!r} names no file; give a file name, such as 'weights.bin'")
    return "/".join(parts)


def content_digest(data: bytes | bytearray | memoryview) -> str:
    """The digest under which ``data`` is stored: its BLAKE3 hash, in hexadecimal.

    Examples
    --------
    >>> content_digest(b"hello") == blake3(b"hello").hexdigest()
    True
    """
    hasher = _hasher()
    hasher.update(data)
    return hasher.hexdigest()


def _hasher() -> blake3:
    """A BLAKE3 hasher using every core on large updates (it releases the GIL meanwhile)."""
    return blake3(max_threads=blake3.AUTO)


# -- helpers ---------------------------------------------------------------------------
def _file_digest(path: Path, handle: IO[bytes]) -> tuple[str, int]:
    """Digest and size of the file ``path`` (open as ``handle``), which nothing writes any more.

    Raises
    ------
    ArtifactError
        When the file changes meanwhile.
    """
    before = os.fstat(handle.fileno())
    digest, size = _hash_stream(handle)
    after = os.fstat(handle.fileno())
    if (after.st_size, after.st_mtime_ns, size) != (before.st_size, before.st_mtime_ns, before.st_size):
        raise _changed(path)
    return digest, size


def _changed(path: Path) -> ArtifactError:
    return ArtifactError(
        f"cannot keep {str(path)!r}: it changed while it was being kept; write the files of an "
        "artifact folder before the step returns"
    )


def _copy_hashing(source: IO[bytes], target: IO[bytes]) -> tuple[str, int]:
    """Copy ``source`` to ``target`` in one pass; return the digest and size of what was written."""
    return _hash_stream(source, target.write)


def _hash_stream(source: IO[bytes], sink: Callable[[memoryview], Any] | None = None) -> tuple[str, int]:
    """Read ``source`` to its end, giving each piece to ``sink``; return the digest and size of what was read."""
    hasher = _hasher()
    buffer = bytearray(CHUNK)
    size = 0
    while count := _read_full(source, buffer):
        piece = memoryview(buffer)[:count]
        hasher.update(piece)
        if sink is not None:
            sink(piece)
        size += count
    return hasher.hexdigest(), size


def _read_full(source: IO[bytes], buffer: bytearray | memoryview) -> int:
    """Fill ``buffer`` from ``source`` as far as it goes; the number of bytes read (0 at the end)."""
    view = memoryview(buffer)
    filled = 0
    while filled < len(buffer):
        count = source.readinto(view[filled:])
        if not count:
            break
        filled += count
    return filled


def _temporary_in(folder: Path, prefix: str) -> tuple[IO[bytes], Path]:
    """A new file (open for writing) with a unique name in ``folder``, created if needed."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(prefix=prefix, dir=folder)
    except OSError as exc:
        raise ArtifactError(
            f"cannot write in {str(folder)!r}: {exc}; choose a writable artifact location (or cache_dir)"
        ) from exc
    return os.fdopen(descriptor, "wb"), Path(name)


@contextlib.contextmanager
def _removed_on_failure(path: Path) -> Iterator[Path]:
    """Delete the temporary file ``path`` when the block raises."""
    try:
        yield path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _info_or_none(fs: fsspec.AbstractFileSystem, path: str) -> dict[str, Any] | None:
    try:
        return fs.info(path)
    except FileNotFoundError as exc:
        if _no_bucket(exc):
            raise
        return None


def _remove_all(fs: fsspec.AbstractFileSystem, paths: list[str]) -> None:
    """Remove the files ``paths`` of ``fs``, ignoring absent ones."""
    try:
        fs.rm(paths)
    except FileNotFoundError as exc:
        if _no_bucket(exc):
            raise
        for path in paths:
            try:
                fs.rm_file(path)
            except FileNotFoundError:
                pass


def _no_bucket(exc: FileNotFoundError) -> bool:
    """Whether an object store's 'not found' is about the bucket, not the object."""
    return "bucket does not exist" in str(exc).lower()


def _folder_entries(files: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """``files`` with checked, normalised paths; no path twice, none both a file and a folder."""
    entries = [(check_relative_path(path), digest) for path, digest in files]
    paths = {path for path, _ in entries}
    if len(paths) != len(entries):
        raise ValueError("a path is given twice in the files of one artifact; give each file once")
    for path in paths:
        parent = PurePosixPath(path).parent
        while str(parent) != ".":
            if str(parent) in paths:
                raise ValueError(f"{str(parent)!r} is both a file and a folder of the artifact; rename one")
            parent = parent.parent
    return entries


def _holds(folder: Path, sources: dict[str, Path]) -> bool:
    """Whether ``folder`` holds exactly links to ``sources`` (relative path -> file)."""
    if not folder.is_dir():
        return False
    present = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if not path.is_dir()}
    if present != set(sources):
        return False
    return all(os.path.samefile(folder / path, source) for path, source in sources.items())


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` as ``target``, or copy it (read-only) where links are not possible."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
    shutil.copyfile(source, target)
    os.chmod(target, READ_ONLY)
