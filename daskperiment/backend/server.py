"""What the server stores (Redis, MongoDB) share: connections, errors and the local spool.

A batch the server cannot take (it is down, or dies while the batch is sent)
is kept in a local spool file and re-sent later, so no record is lost. Every
write of a batch is idempotent (metric chunks are named by the batch's
token), so a batch sent twice — once half-way before the server died, once
from the spool — is stored once.

Every operation waits at most :data:`DEFAULT_TIMEOUT_SECONDS` for the server
(the URI option ``timeout``, in seconds, sets another bound): a hung server
makes a trial's write fail, and the batch is spooled, after that time.

A server can lose its data (restarted without it, flushed, the experiment's
keys or collection deleted). The store holds an *epoch*, a random token made
with the trial id counter; every allocation and write checks, on the server
and in the same operation, that the epoch is the one this process knows. When
it is not, the loss is reported (an ERROR naming the server), the counter is
raised past every trial id this process has seen, a new epoch is made, and
:attr:`Backend.generation` increases so that writers send code and environment
again. A trial record never replaces another trial (one written by another
batch): the trial is recorded under a new id, with a WARNING.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from abc import abstractmethod
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Sequence

from daskperiment.backend import DEFAULT_CACHE_DIRECTORY
from daskperiment.backend.base import (
    Backend,
    check_setting,
    check_setting_name,
    check_starts,
    check_trial_id_count,
    describe_batch,
    trial_id_block,
)
from daskperiment.backend.spool import Spool
from daskperiment.backend.uri import pop_option, redact, scheme_of, scrub, without_credentials
from daskperiment.errors import BackendError, BackendURIError, BatchSpooledError
from daskperiment.records import RecordBatch, TrialRecord, TrialStart

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
"""How long an operation waits for the server, unless the URI's ``timeout`` option says otherwise."""
TIMEOUT_OPTION = "timeout"
_ATTEMPTS = 3


class EpochChanged(Exception):
    """The store's epoch is not the one an operation was checked against; nothing was done."""


class TrialsTaken(Exception):
    """Trial ids of a batch are held by trials of other batches; nothing was written."""

    def __init__(self, trial_ids: Sequence[int]) -> None:
        super().__init__(trial_ids)
        self.trial_ids = sorted({int(t) for t in trial_ids})


def new_epoch() -> str:
    """A new random epoch token."""
    return uuid.uuid4().hex


def timeout_option(uri: str) -> tuple[str, float]:
    """``uri`` without its ``timeout`` option, and that timeout in seconds (the default if absent).

    Raises
    ------
    BackendURIError
        When the option is not a positive number of seconds.
    """
    rest, text = pop_option(uri, TIMEOUT_OPTION)
    if text is None:
        return rest, DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise BackendURIError(
            f"the option {TIMEOUT_OPTION}={text!r} of {redact(uri)!r} must be a positive number "
            "of seconds, e.g. '?timeout=10'"
        )
    return rest, seconds


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
    server = without_credentials(pop_option(uri, TIMEOUT_OPTION)[0])
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
    the spool by an earlier failure are re-sent (see :meth:`sync`). The URI
    option ``timeout`` (seconds, default :data:`DEFAULT_TIMEOUT_SECONDS`)
    bounds every wait for the server.
    """

    kind: ClassVar[str] = "server"

    def __init__(self, uri: str, experiment_id: str) -> None:
        from daskperiment.experiment import validate_experiment_id  # experiment imports backend

        super().__init__(validate_experiment_id(experiment_id))
        self._uri = uri
        self._client_uri, self.timeout = timeout_option(uri)
        self.server = redact(uri)
        self.spool = Spool(spool_directory(uri, experiment_id))
        self._lock = threading.RLock()
        self._connection: Any = None
        self._connection_pid = 0
        self._epoch: str | None = None
        self._highest_id = 0

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
    def _advance_trial_counter(self, count: int, epoch: str) -> int | None:
        """Add ``count`` to the trial id counter atomically; return its new value.

        None (and the counter unchanged) when the store's epoch is not ``epoch``.
        """

    @abstractmethod
    def _encode_starts(self, starts: list[TrialStart]) -> Any:
        """Serialize trial starts for the server (raises TypeError, sending nothing)."""

    @abstractmethod
    def _record_starts(self, encoded: Any, count: int, epoch: str) -> int | None:
        """Add ``count`` to the counter and store the encoded starts under the new ids, atomically.

        Returns the counter's new value (the last id); None, with nothing
        done, when the store's epoch is not ``epoch``.
        """

    @abstractmethod
    def _beat(self, trial_ids: list[int], when: float) -> None:
        """Set the heartbeat of the stored starts of ``trial_ids`` (others ignored)."""

    @abstractmethod
    def _claim_epoch(self, floor: int) -> str:
        """The store's epoch, made (a :func:`new_epoch`) if it has none; the counter raised to ``floor``.

        A store whose counter was lost gets a new epoch and a counter of at
        least ``floor``. Atomic: processes claiming at once get one epoch.
        """

    @abstractmethod
    def _read_epoch(self) -> str | None:
        """The store's epoch, None when it has none."""

    @abstractmethod
    def _encode(self, batch: RecordBatch, token: str) -> Any:
        """Serialize ``batch`` for the server (raises TypeError, sending nothing)."""

    @abstractmethod
    def _transmit(self, encoded: Any, epoch: str, token: str, trial_ids: list[int]) -> bool:
        """Write an encoded batch atomically (or idempotently and trial last).

        The trial records of ``trial_ids`` are written only where the store
        holds no trial of that id, or one written with ``token``.

        Returns
        -------
        bool
            Whether the store had lost its epoch and counter (the batch was
            written into the emptied store; the epoch must be claimed again).

        Raises
        ------
        EpochChanged
            When the store's epoch is another one than ``epoch`` (nothing is written).
        TrialsTaken
            When trials of other batches hold some of ``trial_ids`` (nothing is written).
        """

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
            try:
                self._adopt_epoch(self._claim_epoch(self._highest_id))
            except BaseException:
                self.close()
                raise
        self._resend_quietly()
        return self._connection

    # -- epoch: noticing that the server lost the experiment's records ------------------
    def epoch(self) -> str | None:
        """The store's epoch token: it changes when the server loses the experiment's records.

        Raises
        ------
        BackendError
            When the server cannot be reached.
        """
        with self._reaching("read the experiment's epoch"):
            self._client()
            return self._read_epoch()

    def _current_epoch(self) -> str:
        self._client()
        assert self._epoch is not None
        return self._epoch

    def _adopt_epoch(self, current: str) -> None:
        """Take ``current`` as the store's epoch; report the loss when it replaces another."""
        previous, self._epoch = self._epoch, current
        if previous is None or previous == current:
            return
        self.generation += 1
        last = self.last_trial_id()
        logger.error(
            "the %s server %s has lost the records of experiment %r: its epoch token changed (the "
            "server restarted without its data, was flushed, or the experiment's %s deleted). "
            "Trials recorded there before (this process saw ids up to %d) are gone from it unless "
            "restored from a backup; it now holds trials up to id %d, recorded since. No trial is "
            "overwritten: new trial ids continue after %d, and the code and environment are sent "
            "again.",
            self.kind, self.server, self.experiment_id, self._lost_records_name,
            self._highest_id, last, max(last, self._highest_id),
        )

    _lost_records_name: ClassVar[str] = "records were"

    def _recover(self, failed_epoch: str) -> None:
        """After an operation found another epoch than ``failed_epoch``: claim and adopt the store's."""
        with self._lock:
            if self._epoch != failed_epoch:  # another thread has recovered already
                return
            self._adopt_epoch(self._claim_epoch(self._highest_id))

    def _note_ids(self, trial_ids: Sequence[int]) -> None:
        if trial_ids:
            with self._lock:
                self._highest_id = max(self._highest_id, *trial_ids)

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
            for _ in range(_ATTEMPTS):
                epoch = self._current_epoch()
                last = self._advance_trial_counter(count, epoch)
                if last is not None:
                    break
                self._recover(epoch)
            else:
                raise self._unsettled("allocate trial ids")
        ids = trial_id_block(int(last), count)
        self._note_ids([ids[-1]])
        return ids

    def start_trials(self, starts: Sequence[TrialStart]) -> range:
        """Reserve ids and record the starts in one atomic operation (see :meth:`Backend.start_trials`).

        Raises
        ------
        ValueError, TypeError
            For empty starts, or parameters that cannot be serialized (the server is not contacted).
        BackendError
            When the server cannot be reached or refuses the write (nothing is
            spooled: no trial starts without its record).
        """
        listed = check_starts(starts)
        encoded = self._encode_starts(listed)
        count = len(listed)
        with self._reaching("start a trial" if count == 1 else f"start {count} trials"):
            for _ in range(_ATTEMPTS):
                epoch = self._current_epoch()
                last = self._record_starts(encoded, count, epoch)
                if last is not None:
                    break
                self._recover(epoch)
            else:
                raise self._unsettled("start trials")
        ids = trial_id_block(int(last), count)
        self._note_ids([ids[-1]])
        return ids

    def beat_trials(self, trial_ids: Sequence[int], when: float) -> None:
        """Update the heartbeats in one round trip (see :meth:`Backend.beat_trials`).

        Raises
        ------
        BackendError
            When the server cannot be reached (a heartbeat is not spooled: the next one follows).
        """
        ids = sorted({int(t) for t in trial_ids})
        if ids:
            with self._reaching("mark running trials alive"):
                self._beat(ids, float(when))

    def _unsettled(self, action: str) -> BackendError:
        return BackendError(
            f"cannot {action} on the {self.kind} server {self.server}: the epoch of experiment "
            f"{self.experiment_id!r} changed {_ATTEMPTS} times in a row (is something deleting "
            "its records?)"
        )

    def write_batch(self, batch: RecordBatch) -> None:
        """Write ``batch`` atomically; if the server cannot be reached, spool it and raise.

        Raises
        ------
        TypeError
            When a value cannot be serialized (nothing is written or spooled).
        BatchSpooledError
            When the server cannot be reached: the batch is kept in the local
            spool and re-sent later (see :meth:`sync`).
        BackendError
            When the server refuses the batch (it is not spooled).
        """
        token = new_token()
        encoded = self._encode(batch, token)
        try:
            self._send(batch, token, encoded)
        except self._connection_errors() as exc:
            path = self.spool.put(token, batch)
            logger.warning("%s is unreachable; %s kept in %s", self.server, describe_batch(batch), path)
            raise BatchSpooledError(
                f"cannot write to the {self.kind} server {self.server}: {self._brief(exc)}. "
                f"Nothing is lost: {describe_batch(batch)} of experiment {self.experiment_id!r} is kept in {path} and "
                "will be re-sent when the experiment is next opened from this working directory "
                "with the server reachable, or when you call .backend.sync()"
            ) from exc
        except self._server_errors() as exc:
            raise self._refused(
                f"{describe_batch(batch)} of experiment {self.experiment_id!r}", exc
            ) from exc

    def rewrite_trials(self, trials: Sequence[TrialRecord]) -> None:
        """Replace the stored trials of these ids in place (see :meth:`Backend.rewrite_trials`).

        Raises
        ------
        BackendError
            When the server cannot be reached or refuses the write (nothing is spooled).
        """
        token = new_token()
        batch = RecordBatch(trials=list(trials))
        encoded = self._encode(batch, token)
        try:
            self._transmit(encoded, self._current_epoch(), token, [])  # no id check: they are these trials
        except EpochChanged as exc:
            raise BackendError(
                f"the {self.kind} server {self.server} lost the records of experiment "
                f"{self.experiment_id!r} meanwhile: {describe_batch(batch)} not rewritten"
            ) from exc
        except self._connection_errors() as exc:
            raise BackendError(
                f"cannot write to the {self.kind} server {self.server}: {self._brief(exc)}; "
                f"{describe_batch(batch)} not rewritten"
            ) from exc
        except self._server_errors() as exc:
            raise self._refused(f"{describe_batch(batch)} of experiment {self.experiment_id!r}", exc) from exc

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
                self._send(spooled.batch, spooled.token, self._encode(spooled.batch, spooled.token))
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

    def _send(self, batch: RecordBatch, token: str, encoded: Any) -> None:
        """Transmit ``batch`` (encoded with ``token``), checked against the store's epoch.

        A store that lost its epoch is recovered from (see the module notes);
        trials whose ids other trials hold are written under new ids.
        """
        for _ in range(_ATTEMPTS):
            epoch = self._current_epoch()
            trial_ids = [trial.trial_id for trial in batch.trials]
            try:
                emptied = self._transmit(encoded, epoch, token, trial_ids)
            except EpochChanged:
                self._recover(epoch)
                continue
            except TrialsTaken as taken:
                batch = self._renumbered(batch, taken.trial_ids)
                encoded = self._encode(batch, token)
                continue
            self._note_ids(trial_ids)
            if emptied:
                self._recover(epoch)
            self._check_blobs(batch)
            return
        raise self._unsettled(f"write {describe_batch(batch)}")

    # -- blobs removed by deletions (issue 12) ---------------------------------------------
    @abstractmethod
    def _held_blobs(self, digests: list[str]) -> set[str]:
        """Those of ``digests`` the store holds a blob of (one round trip)."""

    def _check_blobs(self, batch: RecordBatch) -> None:
        """After writing ``batch``: note the blobs its trials refer to that the store lacks.

        Advisory: a failure to check is logged, the batch is written.
        """
        sent = {blob.digest for blob in batch.blobs}
        wanted = sorted({d for trial in batch.trials for d in trial.blob_digests()} - sent)
        if not wanted:  # blobs sent again after a deletion removed them: found missing anew next time
            self._blobs_missing(batch, [])
            return
        try:
            held = self._held_blobs(wanted)
        except self._server_errors() as exc:
            logger.warning("could not check the blobs of %s: %s", describe_batch(batch), self._brief(exc))
            return
        self._blobs_missing(batch, [digest for digest in wanted if digest not in held])

    def _forget_spooled(self) -> None:
        """Drop the batches spooled for this experiment (it was deleted: they must not bring it back)."""
        for spooled in self.spool.pending():
            self.spool.remove(spooled)

    def _start_afresh(self) -> None:
        """After this process deleted the experiment: its next use claims a new epoch, ids from 1."""
        with self._lock:
            self.close()
            self._epoch = None
            self._highest_id = 0
            self.generation += 1

    def _renumbered(self, batch: RecordBatch, taken: list[int]) -> RecordBatch:
        """``batch`` with the trials of ``taken`` ids (and their records) moved to new ids."""
        moves = dict(zip(taken, self.allocate_trial_ids(len(taken))))
        for old, new in moves.items():
            logger.warning(
                "trial %d of experiment %r is recorded as trial %d: the %s server %s holds another "
                "trial %d (recorded after the server lost its data)",
                old, self.experiment_id, new, self.kind, self.server, old,
            )

        def moved(records: list[Any]) -> list[Any]:
            return [
                _with_trial_id(record, moves[record.trial_id]) if record.trial_id in moves else record
                for record in records
            ]

        return RecordBatch(
            trials=moved(batch.trials),
            metrics=moved(batch.metrics),
            persisted=moved(batch.persisted),
            step_outputs=list(batch.step_outputs),
            blobs=list(batch.blobs),
            cache_entries=moved(batch.cache_entries),
            artifacts=moved(batch.artifacts),
        )

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


def _with_trial_id(record: Any, trial_id: int) -> Any:
    if isinstance(record, tuple):  # a MetricPoint
        return record._replace(trial_id=trial_id)
    return replace(record, trial_id=trial_id)


def authentication_error(kind: str, server: str, detail: str) -> BackendError:
    """The error for credentials the server refused (``server``: the URI, its password hidden)."""
    return BackendError(
        f"authentication failed at the {kind} server {server}: {detail}. Check the user name "
        "and password of the URI (percent-encoded, e.g. with urllib.parse.quote(password, "
        "safe=''))"
    )
