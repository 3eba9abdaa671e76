"""What the server stores (Redis, MongoDB) share: connections, errors and the local spool.

A batch the server cannot take (it is down, or dies while the batch is sent)
is kept in a local spool file and re-sent later, so no record is lost. Every
write of a batch is idempotent (metric chunks are named by the batch's
token), so a batch sent twice — once half-way before the server died, once
from the spool — is stored once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Sequence

from daskperiment.backend import DEFAULT_CACHE_DIRECTORY
from daskperiment.backend.base import (
    Backend,
    check_setting,
    check_setting_name,
    check_trial_id_count,
    trial_id_block,
)
from daskperiment.backend.spool import Spool
from daskperiment.backend.uri import redact, scheme_of, scrub, without_credentials
from daskperiment.errors import BackendError
from daskperiment.records import RecordBatch

logger = logging.getLogger(__name__)


_last_token_time = 0
_token_lock = threading.Lock()


def new_token() -> str:
    """A unique batch token; in one process, tokens sort in the order they were made.

    It starts with the time in nanoseconds, kept strictly increasing in the
    process (even if the clock steps back), then a random part.
    """
    global _last_token_time
    with _token_lock:
        _last_token_time = max(time.time_ns(), _last_token_time + 1)
        stamp = _last_token_time
    return f"{stamp:020d}-{uuid.uuid4().hex[:16]}"


def spool_directory(uri: str, experiment_id: str) -> Path:
    """``daskperiment_cache/<id>/spool/<scheme>-<hash of the server URI>/`` in the working dir."""
    server = without_credentials(uri)
    digest = hashlib.sha256(server.encode("utf-8")).hexdigest()[:16]
    folder = f"{scheme_of(uri).replace('+', '-')}-{digest}"
    return Path(DEFAULT_CACHE_DIRECTORY).absolute() / experiment_id / "spool" / folder


class ServerBackend(Backend):
    """A store on a server, shared by every process and machine that reaches it.

    Parameters
    ----------
    uri : str
        URI of the server (credentials and options included).
    experiment_id : str
        Id of the experiment: letters, digits, ``_``, ``-`` and ``.``.

    Notes
    -----
    The connection is made when the store is first used; then batches left in
    the spool by an earlier failure are re-sent (see :meth:`sync`).
    """

    kind: ClassVar[str] = "server"

    def __init__(self, uri: str, experiment_id: str) -> None:
        from daskperiment.experiment import validate_experiment_id  # experiment imports backend

        super().__init__(validate_experiment_id(experiment_id))
        self._uri = uri
        self.server = redact(uri)
        self.spool = Spool(spool_directory(uri, experiment_id))
        self._lock = threading.RLock()
        self._connection: Any = None
        self._connection_pid = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.server}')"

    def reopen_arguments(self) -> tuple[str, str]:
        return (self._uri, self.experiment_id)

    @property
    def uri(self) -> str:
        """The server's URI, its password (if any) shown as ``***`` (as in the repr)."""
        return self.server

    # -- what each server implements ----------------------------------------------
    @abstractmethod
    def _open_connection(self) -> Any:
        """Connect (and check the server answers); return the client object."""

    @abstractmethod
    def _connection_errors(self) -> tuple[type[BaseException], ...]:
        """Exceptions of the client library meaning the server could not be reached."""

    @abstractmethod
    def _server_errors(self) -> tuple[type[BaseException], ...]:
        """Base exceptions of the client library (the server refused a command, ...)."""

    @abstractmethod
    def _advance_trial_counter(self, count: int) -> int:
        """Add ``count`` to the trial id counter atomically; return its new value."""

    @abstractmethod
    def _encode(self, batch: RecordBatch, token: str) -> Any:
        """Serialize ``batch`` for the server (raises TypeError, sending nothing)."""

    @abstractmethod
    def _transmit(self, encoded: Any) -> None:
        """Write an encoded batch atomically (or idempotently and trial last)."""

    @abstractmethod
    def _read_step_outputs(self, input_keys: list[str]) -> dict[str, str]:
        """Known output hashes of ``input_keys``."""

    @abstractmethod
    def _write_setting(self, name: str, value: str) -> None:
        """Store ``value`` under ``name``, replacing any earlier value."""

    @abstractmethod
    def _read_setting(self, name: str) -> str | None:
        """The value stored under ``name``, if any."""

    # -- connection ---------------------------------------------------------------------
    def _client(self) -> Any:
        """The connected client; on a new connection, re-send what the spool holds."""
        with self._lock:
            if self._connection is not None and self._connection_pid == os.getpid():
                return self._connection
            self._connection = self._open_connection()
            self._connection_pid = os.getpid()
        self._resend_quietly()
        return self._connection

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and self._connection_pid == os.getpid():
                self._close_connection(self._connection)
            self._connection = None

    def _close_connection(self, connection: Any) -> None:
        """Release the client's connections."""
        connection.close()

    def _authentication_failed(self, exc: BaseException) -> bool:
        """Whether ``exc`` (an error of the client library) says the server refused the credentials."""
        return False

    @contextmanager
    def _reaching(self, action: str) -> Iterator[None]:
        """Turn the client library's connection errors into a clear BackendError."""
        try:
            yield
        except self._connection_errors() + self._server_errors() as exc:
            if self._authentication_failed(exc):
                raise authentication_error(self.kind, self.server, self._brief(exc)) from exc
            if not isinstance(exc, self._connection_errors()):
                raise self._refused(f"to {action}", exc) from exc
            raise BackendError(
                f"cannot reach the {self.kind} server {self.server} to {action}: "
                f"{self._brief(exc)}. Check that the server is running and reachable, and that "
                "the URI is right."
            ) from exc

    def _brief(self, exc: BaseException) -> str:
        """The client library's message of ``exc``, for an error of ours (the URI's secrets hidden)."""
        return scrub(str(exc), self._uri).rstrip(".")

    def _refused(self, what: str, exc: BaseException) -> BackendError:
        return BackendError(
            f"the {self.kind} server {self.server} refused {what}: {self._brief(exc)}. "
            "Check the credentials and options of the URI."
        )

    # -- writes ---------------------------------------------------------------------------
    def allocate_trial_ids(self, count: int) -> range:
        """Reserve ``count`` ids by one atomic increment of the counter on the server.

        See :meth:`Backend.allocate_trial_ids`.

        Raises
        ------
        ValueError
            When ``count`` is not a positive int (the server is not contacted).
        BackendError
            When the server cannot be reached or refuses the increment.
        """
        count = check_trial_id_count(count)
        with self._reaching("allocate a trial id" if count == 1 else f"allocate {count} trial ids"):
            last = self._advance_trial_counter(count)
        return trial_id_block(int(last), count)

    def write_batch(self, batch: RecordBatch) -> None:
        """Write ``batch`` atomically; if the server cannot be reached, spool it and raise.

        Raises
        ------
        TypeError
            When a value cannot be serialized (nothing is written or spooled).
        BackendError
            When the server cannot be reached: the batch is kept in the local
            spool and re-sent later (see :meth:`sync`).
        """
        token = new_token()
        encoded = self._encode(batch, token)
        try:
            self._transmit(encoded)
        except self._connection_errors() as exc:
            path = self.spool.put(token, batch)
            logger.warning("%s is unreachable; %s kept in %s", self.server, _describe(batch), path)
            raise BackendError(
                f"cannot write to the {self.kind} server {self.server}: {self._brief(exc)}. "
                f"Nothing is lost: {_describe(batch)} of experiment {self.experiment_id!r} is kept in {path} and "
                "will be re-sent when the experiment is next opened from this working directory "
                "with the server reachable, or when you call .backend.sync()"
            ) from exc
        except self._server_errors() as exc:
            raise self._refused(
                f"{_describe(batch)} of experiment {self.experiment_id!r}", exc
            ) from exc

    def sync(self) -> int:
        """Re-send the batches kept in the local spool; return how many were sent.

        Raises
        ------
        BackendError
            When the server still cannot be reached (unsent batches stay spooled).
        """
        with self._reaching("re-send spooled batches"):
            self._client()
            sent = 0
            for spooled in self.spool.pending():
                self._transmit(self._encode(spooled.batch, spooled.token))
                self.spool.remove(spooled)
                sent += 1
        if sent:
            logger.info(
                "re-sent %d spooled batch(es) of experiment %r to %s",
                sent,
                self.experiment_id,
                self.server,
            )
        return sent

    def _resend_quietly(self) -> None:
        if not self.spool.pending():
            return
        try:
            self.sync()
        except BackendError as exc:
            logger.warning("spooled batches of %r not re-sent yet: %s", self.experiment_id, exc)

    # -- settings -------------------------------------------------------------------------
    def save_setting(self, name: str, value: str) -> None:
        """Store the setting on the server at once (see :meth:`Backend.save_setting`).

        Raises
        ------
        TypeError, ValueError
            For a bad name or value (the server is not contacted).
        BackendError
            When the server cannot be reached or refuses the write: a setting
            is not kept in the spool, save it again once the server is back.
        """
        check_setting(name, value)
        with self._reaching(
            f"save the setting {name!r} of experiment {self.experiment_id!r} (settings are "
            "not spooled: save it again once the server is reachable)"
        ):
            self._write_setting(name, value)

    def load_setting(self, name: str) -> str | None:
        """Read the setting from the server (see :meth:`Backend.load_setting`).

        Raises
        ------
        TypeError, ValueError
            For a bad name (the server is not contacted).
        BackendError
            When the server cannot be reached or refuses the read.
        """
        check_setting_name(name)
        with self._reaching(f"read the setting {name!r}"):
            return self._read_setting(name)

    # -- reads ----------------------------------------------------------------------------
    def load_step_outputs(self, input_keys: Sequence[str]) -> dict[str, str]:
        """Known output hashes; ``{}`` (purity not checked) when the server cannot be reached.

        The purity check is advisory: a trial whose server went down must
        still reach :meth:`write_batch`, which keeps it in the spool.
        """
        if not input_keys:
            return {}
        try:
            return self._read_step_outputs(list(input_keys))
        except self._connection_errors() as exc:
            logger.warning(
                "purity not checked: cannot reach the %s server %s: %s",
                self.kind, self.server, self._brief(exc),
            )
            return {}
        except self._server_errors() as exc:
            raise self._refused("to read step output hashes", exc) from exc


def authentication_error(kind: str, server: str, detail: str) -> BackendError:
    """The error for credentials the server refused (``server``: the URI, its password hidden)."""
    return BackendError(
        f"authentication failed at the {kind} server {server}: {detail}. Check the user name "
        "and password of the URI (percent-encoded, e.g. with urllib.parse.quote(password, "
        "safe=''))"
    )


def _describe(batch: RecordBatch) -> str:
    if batch.trials:
        return "the record of trial " + ", ".join(str(t.trial_id) for t in batch.trials)
    parts = (batch.metrics, batch.persisted, batch.cache_entries, batch.artifacts)
    trial_ids = sorted({record.trial_id for records in parts for record in records})
    if trial_ids:
        return "a step's records of trial " + ", ".join(map(str, trial_ids))
    return "a batch of step hashes and blobs"
