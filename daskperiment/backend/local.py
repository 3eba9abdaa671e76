"""The embedded default store: one SQLite database per experiment.

Why SQLite: every write is one transaction, so a trial costs the same whatever
the history's length (no file is rewritten), a process killed mid-trial leaves
earlier trials intact (write-ahead log, atomic commits), and several processes
on one machine can write one experiment at once (the database serializes
writers, trial ids come from one counter row).

Faults of the disk are named, never raw ``sqlite3`` errors: a store that cannot
be written (a read-only mount, another user's folder) is opened read-only to
read it; a store whose folder was removed while open is created again (an
ERROR says what was lost, ids continue after those this process saw); a full
disk or a damaged database fails the write with a message saying what was not
recorded, and a database failing its integrity check is not written again.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Callable, Mapping, Sequence, TypeVar

from daskperiment import serialization
from daskperiment.backend.base import (
    Backend,
    check_setting,
    check_setting_name,
    check_starts,
    check_trial_id_count,
    describe_batch,
    trial_id_block,
)
from daskperiment.backend.codec import (
    annotation_from_document,
    bulk_decoding,
    cache_entry_document,
    cache_entry_from_document,
    cached_steps_of,
    cached_steps_pairs,
    decoded_columns,
    metric_kinds,
    parameters_of,
)
from daskperiment.codefiles import write_version
from daskperiment.errors import BackendError
from daskperiment.records import (
    Annotation,
    AnnotationEdit,
    ArtifactRecord,
    Blob,
    CacheEntry,
    Deletion,
    MetricPoint,
    MetricSeries,
    PersistedValue,
    RecordBatch,
    TrialColumns,
    TrialRecord,
    TrialStart,
    ended_statuses,
)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 8
BUSY_TIMEOUT_SECONDS = 60.0

# -- schema 6 (issue 12): notes and tags of trials, one row per annotated trial ----------
_ANNOTATIONS = """CREATE TABLE IF NOT EXISTS annotations (
        trial_id INTEGER PRIMARY KEY,
        note TEXT NOT NULL,
        tags TEXT NOT NULL  -- JSON list of the trial's tags, sorted
    )"""
# -- end of schema 6 --------------------------------------------------------------------

_METRIC_KINDS = """CREATE TABLE IF NOT EXISTS metric_kinds (
        key TEXT PRIMARY KEY,
        all_int INTEGER NOT NULL  -- 1 while every value saved under the key was an int
    )"""

# -- schema 6: running trials (trial_starts; trials.status) ------------------------------
# A trial's start is written with its id (one transaction), its heartbeat updated
# while it runs, and the row deleted by the batch recording its end.
_TRIAL_STARTS = """CREATE TABLE IF NOT EXISTS trial_starts (
        trial_id INTEGER PRIMARY KEY,
        parameters TEXT NOT NULL,  -- JSON text, as trials.parameters
        seed INTEGER,
        started REAL NOT NULL,
        heartbeat REAL NOT NULL,  -- POSIX time its process last marked it alive
        interval REAL NOT NULL,  -- seconds between heartbeats of that process
        process TEXT NOT NULL,
        sweep_id TEXT
    )"""
_STATUS_UPGRADE = ("ALTER TABLE trials ADD COLUMN status TEXT",)  # the table comes with _SCHEMA
# -- end of schema 6 ---------------------------------------------------------------------

# -- schema 8 (issue 15): fewer pages written per trial ---------------------------------
# A trial's metric points are inserted together: indexed by trial first, they fill one
# leaf page of the index (by key first, each key of the trial dirtied a leaf of its own).
# Every query on metrics names the trial ids (load_metrics, deletion); the keys are read
# from metric_kinds, which holds every key of metrics and no other.
_METRICS_INDEX = "CREATE INDEX IF NOT EXISTS metrics_by_trial ON metrics (trial_id, key, epoch)"
# Step outputs are keyed by hashes: without a rowid, a row is one entry of one B-tree
# (with one, a row and its key's index entry, in two).
_STEP_OUTPUTS = (
    "CREATE TABLE IF NOT EXISTS {name} (input_key TEXT PRIMARY KEY, output_hash TEXT NOT NULL) WITHOUT ROWID"
)
# A start inserted past the trial id counter moves the counter to its id: a trial
# starts in one statement (see LocalBackend.start_trials), and an imported start's id
# is never given again.
_STARTS_TAKE_IDS = """CREATE TRIGGER IF NOT EXISTS starts_take_ids AFTER INSERT ON trial_starts
    WHEN NEW.trial_id > (SELECT value FROM counters WHERE name = 'trial_id')
    BEGIN UPDATE counters SET value = NEW.trial_id WHERE name = 'trial_id'; END"""
_SCHEMA_8_UPGRADE = (
    # the keys of metrics, exactly (kinds of keys left without points go; keys
    # without a kind read as floats, as schema 3 made them)
    "DELETE FROM metric_kinds WHERE key NOT IN (SELECT DISTINCT key FROM metrics)",
    "INSERT OR IGNORE INTO metric_kinds (key, all_int) SELECT DISTINCT key, 0 FROM metrics",
    "DROP INDEX IF EXISTS metrics_by_key_trial",
    _STEP_OUTPUTS.format(name="step_outputs_8"),
    "INSERT INTO step_outputs_8 (input_key, output_hash) SELECT input_key, output_hash FROM step_outputs",
    "DROP TABLE step_outputs",
    "ALTER TABLE step_outputs_8 RENAME TO step_outputs",
)
# -- end of schema 8 ---------------------------------------------------------------------

# The schema, created if missing; statements run one by one inside a transaction
# (``executescript`` would commit it first).
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO counters (name, value) VALUES ('trial_id', 0)",
    """CREATE TABLE IF NOT EXISTS trials (
        trial_id INTEGER PRIMARY KEY,
        parameters BLOB NOT NULL,  -- JSON text (json_extract-able); a BLOB: a pickle of schema < 5
        result BLOB NOT NULL,  -- JSON text, as parameters
        result_type TEXT NOT NULL,
        success INTEGER NOT NULL,
        finished REAL NOT NULL,
        process_time REAL NOT NULL,
        description TEXT,
        seed INTEGER,
        code_digest TEXT NOT NULL,
        environment_digest TEXT,
        sweep_id TEXT,
        worker_environments TEXT,  -- JSON list of digests, NULL when there is none
        cached_steps TEXT,  -- JSON list of [step, trial id], NULL when there is none
        status TEXT  -- finished, failed or interrupted; NULL before schema 6 (follows success)
    )""",
    _TRIAL_STARTS,
    """CREATE TABLE IF NOT EXISTS metrics (
        key TEXT NOT NULL,
        trial_id INTEGER NOT NULL,
        epoch INTEGER NOT NULL,
        value REAL,  -- NULL is NaN: SQLite stores NaN as NULL
        time REAL  -- POSIX time of the save_metric call; NULL: unknown (saved before schema 7)
    )""",
    _METRICS_INDEX,
    _METRIC_KINDS,
    """CREATE TABLE IF NOT EXISTS persisted (
        step TEXT NOT NULL,
        trial_id INTEGER NOT NULL,
        payload BLOB NOT NULL,
        PRIMARY KEY (step, trial_id)
    )""",
    _STEP_OUTPUTS.format(name="step_outputs"),
    "CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, content BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS cache_entries (
        key TEXT PRIMARY KEY,
        step TEXT NOT NULL,
        trial_id INTEGER NOT NULL,
        size INTEGER NOT NULL,
        payload BLOB,  -- NULL when the output is in the artifact store (location)
        location TEXT,
        metrics TEXT NOT NULL,  -- JSON list of [key, epoch, value], NaN and infinities kept
        created REAL NOT NULL,
        last_used REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS cache_entries_by_use ON cache_entries (last_used)",
    """CREATE TABLE IF NOT EXISTS artifacts (
        trial_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        digest TEXT NOT NULL,
        size INTEGER NOT NULL,
        step TEXT NOT NULL,
        PRIMARY KEY (trial_id, name, path)
    )""",
    _ANNOTATIONS,
    _STARTS_TAKE_IDS,
)

# Statements taking an existing database from schema version N to N + 1, before
# the schema's missing tables are created.
_UPGRADES = {
    1: (
        "ALTER TABLE trials ADD COLUMN sweep_id TEXT",
        "ALTER TABLE trials ADD COLUMN worker_environments TEXT",
    ),
    2: ("ALTER TABLE trials ADD COLUMN cached_steps TEXT",),
    # metrics saved before: their int-ness is unknown, so they read as floats
    3: (_METRIC_KINDS, "INSERT OR IGNORE INTO metric_kinds (key, all_int) SELECT DISTINCT key, 0 FROM metrics"),
    # parameters and result are now JSON text (see serialization.to_text); the pickles
    # (BLOBs) of earlier trials stay as they are and read as serialization.from_text says
    4: (),
    # schema 6 (issue 12): trial starts and statuses; the annotations table, which _SCHEMA creates
    5: _STATUS_UPGRADE,
    # schema 7: the time of each metric point; earlier points have none (NULL)
    6: ("ALTER TABLE metrics ADD COLUMN time REAL",),
    # schema 8 (issue 15): metrics indexed by trial, step outputs without rowid, starts take ids
    7: _SCHEMA_8_UPGRADE,
}

_TRIAL_COLUMNS = (
    "trial_id, parameters, result, result_type, success, finished, process_time,"
    " description, seed, code_digest, environment_digest, sweep_id, worker_environments,"
    " cached_steps, status"
)
# The columns of a history (see TrialColumns), in its order.
_HISTORY_COLUMNS = (
    "trial_id, parameters, result, result_type, success, finished, process_time, description, seed,"
    " sweep_id, cached_steps, status"
)
_START_COLUMNS = "trial_id, parameters, seed, started, heartbeat, interval, process, sweep_id"
# Columns of cache_entries holding the fields of a cache entry document (see codec).
_CACHE_FIELDS = ("key", "step", "trial_id", "size", "location", "metrics", "created")
# Every column but the payload, which only load_cache_payload reads.
_CACHE_LISTED = ", ".join(_CACHE_FIELDS) + ", last_used"
_ARTIFACT_COLUMNS = "trial_id, name, path, digest, size, step"
# A metric point as load_metrics reads it (without the trial id when one trial is read).
_METRIC_POINT = [("trial_id", "<i8"), ("epoch", "<i8"), ("value", "<f8"), ("time", "<f8")]
T = TypeVar("T")


class LocalBackend(Backend):
    """Store an experiment in ``directory``: a SQLite database and one code file per code version.

    Parameters
    ----------
    directory : str or pathlib.Path
        Folder of the experiment, created if missing. It holds
        ``<experiment id>.sqlite3`` and ``code/versions/<digest>.py``, one file
        per distinct code text (a trial's own ``code/<experiment id>_<trial id>.py``
        is made on request, see :meth:`Experiment.code_file`).
    experiment_id : str
        Id of the experiment.
    """

    def __init__(self, directory: str | os.PathLike[str], experiment_id: str) -> None:
        super().__init__(experiment_id)
        self._shown_directory = Path(directory).as_posix()
        self.directory = Path(directory).absolute()
        self.database_path = self.directory / f"{experiment_id}.sqlite3"
        self.code_directory = self.directory / "code"
        self._lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None
        self._connection_pid = 0
        self._read_only = False
        self._file_identity: tuple[int, int] | None = None
        self._highest_id = 0
        self._damage: str | None = None
        self._code_versions: set[str] = set()
        self._known = _Known(None)

    def __repr__(self) -> str:
        return f"LocalBackend('{self._shown_directory}')"

    def reopen_arguments(self) -> tuple[str, str]:
        return (str(self.directory), self.experiment_id)

    @property
    def cache_dir(self) -> Path:
        """The experiment's folder (daskperiment 0.5's name of :attr:`directory`)."""
        return self.directory

    @property
    def code_dir(self) -> Path:
        """The folder of the code text files of the trials (0.5's name of :attr:`code_directory`)."""
        return self.code_directory

    # -- connection -----------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        """The writable connection, opened (the store created or upgraded) if need be."""
        if self._connection is not None and self._connection_pid == os.getpid():
            if not self._read_only:
                return self._connection
            self.close()
        try:
            self.code_directory.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.database_path,
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
            _use_write_ahead_log(connection)
            connection.execute("PRAGMA synchronous=NORMAL")
            with _transaction(connection):
                self._prepare_schema(connection)
        except sqlite3.DatabaseError as exc:
            raise BackendError(
                f"cannot open the local store {self.database_path}: {exc}. "
                "Check that the folder is writable and the file is a daskperiment database."
            ) from exc
        except OSError as exc:
            raise BackendError(f"cannot create the local store folder {self.directory}: {exc}") from exc
        self._connection, self._connection_pid = connection, os.getpid()
        self._read_only, self._file_identity = False, _file_identity(self.database_path)
        return connection

    def _reader(self) -> sqlite3.Connection:
        """A connection to read: the open one, a writable one, else a read-only one.

        A store that cannot be written (a read-only mount, another user's
        folder) is read through a read-only connection.
        """
        if self._connection is not None and self._connection_pid == os.getpid():
            return self._connection
        try:
            return self._connect()
        except BackendError as refused:
            if not self.database_path.is_file():
                raise
            connection = _open_read_only(self.database_path)
            if connection is None:
                raise
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            if version != SCHEMA_VERSION:
                connection.close()
                raise BackendError(
                    f"{refused} The store has schema {version} and this daskperiment reads "
                    f"{SCHEMA_VERSION}: open it once where it can be written, to upgrade it."
                ) from refused
            logger.info("the local store %s cannot be written: it is read only", self.database_path)
            self._connection, self._connection_pid = connection, os.getpid()
            self._read_only = True
            return connection

    def _check_still_there(self) -> None:
        """Create the store again (with an ERROR) if its database was removed since it was opened.

        The check is one ``stat`` of the database file per write transaction.
        """
        if self._connection is None or self._connection_pid != os.getpid() or self._read_only:
            return
        if _file_identity(self.database_path) == self._file_identity:
            return
        self.close()
        floor = self._highest_id
        logger.error(
            "the local store %s was removed (or replaced) while experiment %r was open: the "
            "trials recorded in it before are gone from that folder (this process saw ids up to "
            "%d). A new store is created there; new trial ids continue after %d, and the code "
            "and environment are sent again.",
            self.database_path, self.experiment_id, floor, floor,
        )
        self._code_versions.clear()
        self.generation += 1
        self._connect().execute(
            "UPDATE counters SET value = MAX(value, ?) WHERE name = 'trial_id'", (floor,)
        )

    def _write_failed(self, exc: sqlite3.DatabaseError, what: str) -> BackendError:
        """The error of a write of ``what`` that SQLite refused; a damaged store is not written again."""
        name = getattr(exc, "sqlite_errorname", "")
        reason = ""
        if name.startswith("SQLITE_FULL"):
            reason = "the disk is full: free space, then run the trial again"
        elif name.startswith("SQLITE_READONLY"):
            reason = "the store cannot be written (a read-only folder or mount)"
        damage = self._integrity_problem()
        if damage is not None:
            self._damage = damage
            reason = (
                f"the database is damaged (integrity check: {damage}); nothing more is written to "
                f"it. Restore it from a backup, or salvage it with: sqlite3 {self.database_path} "
                "'.recover'"
            )
        return BackendError(
            f"the local store {self.database_path} could not record {what}: {exc}. It was not "
            f"recorded{'; ' + reason if reason else ''}."
        )

    def _integrity_problem(self) -> str | None:
        """What ``PRAGMA quick_check`` finds wrong with the database, None when it is sound."""
        try:
            connection = sqlite3.connect(self.database_path, timeout=BUSY_TIMEOUT_SECONDS)
            try:
                rows = connection.execute("PRAGMA quick_check").fetchall()
            finally:
                connection.close()
        except sqlite3.DatabaseError as exc:
            return str(exc)
        problems = [row[0] for row in rows if row[0] != "ok"]
        return "; ".join(problems[:3]) if problems else None

    def _prepare_schema(self, connection: sqlite3.Connection) -> None:
        """Create the schema of a new database, or upgrade an older one in place.

        Run in a write transaction: of processes opening one database at once,
        the first upgrades it and the others find it upgraded.
        """
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise BackendError(
                f"{self.database_path} was written by a newer daskperiment "
                f"(schema {version} > {SCHEMA_VERSION}); upgrade daskperiment to read it"
            )
        if version == SCHEMA_VERSION:
            return
        upgrades = range(version, SCHEMA_VERSION) if version else ()
        for statement in [*(s for v in upgrades for s in _UPGRADES[v]), *_SCHEMA]:
            connection.execute(statement)
        connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        if version:
            logger.info(
                "upgraded %s from schema %d to %d", self.database_path, version, SCHEMA_VERSION
            )

    @contextmanager
    def _write(self, what: str, one_statement: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction recording ``what`` (named in errors).

        ``one_statement``: the block runs a single statement, which is a
        transaction of its own (no ``BEGIN``/``COMMIT`` around it).
        """
        with self._lock:
            if self._damage is not None:
                raise BackendError(
                    f"the local store {self.database_path} is damaged (integrity check: "
                    f"{self._damage}): {what} was not recorded. Restore it from a backup, or "
                    f"salvage it with: sqlite3 {self.database_path} '.recover'"
                )
            self._check_still_there()
            connection = self._open_to_write(what)
            try:
                if one_statement:
                    yield connection
                else:
                    with _transaction(connection):
                        yield connection
            except sqlite3.DatabaseError as exc:
                raise self._write_failed(exc, what) from exc

    def _open_to_write(self, what: str) -> sqlite3.Connection:
        """The writable connection (see :meth:`_connect`); a database too damaged to open is named so.

        Opening parses the schema, which may lie on damaged pages: the error
        then says what was not recorded and what the integrity check found.
        """
        try:
            return self._connect()
        except BackendError as exc:
            cause = exc.__cause__
            if isinstance(cause, sqlite3.DatabaseError) and getattr(cause, "sqlite_errorname", "").startswith(
                "SQLITE_CORRUPT"
            ):
                raise self._write_failed(cause, what) from cause
            raise

    def _read(
        self, query: str, arguments: Sequence[object] = (),
        collect: Callable[[sqlite3.Cursor], T] = sqlite3.Cursor.fetchall,  # type: ignore[assignment]
    ) -> T:
        """The rows of ``query`` (or what ``collect`` makes of its cursor); a BackendError if it fails."""
        with self._lock:
            self._check_still_there()  # issue 12: another process deleted (or replaced) the experiment
            try:
                return collect(self._reader().execute(query, arguments))
            except sqlite3.DatabaseError as exc:
                damage = self._integrity_problem()
                raise BackendError(
                    f"cannot read the local store {self.database_path}: {exc}"
                    + (f"; the database is damaged (integrity check: {damage})" if damage else "")
                ) from exc

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and self._connection_pid == os.getpid():
                self._connection.close()
            self._connection = None

    # -- writes -------------------------------------------------------------
    def allocate_trial_ids(self, count: int) -> range:
        """Reserve ``count`` ids by one ``UPDATE … RETURNING`` of the counter row (its own transaction).

        See :meth:`Backend.allocate_trial_ids`.
        """
        count = check_trial_id_count(count)
        with self._write("a new trial id", one_statement=True) as connection:
            (row,) = connection.execute(
                "UPDATE counters SET value = value + ? WHERE name = 'trial_id' RETURNING value",
                (count,),
            ).fetchall()
        self._highest_id = max(self._highest_id, int(row[0]))
        return trial_id_block(int(row[0]), count)

    def start_trials(self, starts: Sequence[TrialStart]) -> range:
        """Reserve ids and insert the starts in one transaction (see :meth:`Backend.start_trials`).

        One start is one statement: its row takes the id after the counter's,
        and inserting it moves the counter there (trigger ``starts_take_ids``).
        """
        rows = [_start_row(start) for start in check_starts(starts)]  # raises before the transaction
        if len(rows) == 1:
            with self._write("the start of a trial", one_statement=True) as connection:
                ((trial_id,),) = connection.execute(
                    f"INSERT OR REPLACE INTO trial_starts ({_START_COLUMNS}) SELECT value + 1, ?, ?, ?, ?, ?, ?, ? "
                    "FROM counters WHERE name = 'trial_id' RETURNING trial_id",
                    rows[0],
                ).fetchall()
            self._highest_id = max(self._highest_id, trial_id)
            return trial_id_block(trial_id, 1)
        with self._write(f"the start of {len(rows)} trials") as connection:
            (row,) = connection.execute(
                "UPDATE counters SET value = value + ? WHERE name = 'trial_id' RETURNING value",
                (len(rows),),
            ).fetchall()
            ids = trial_id_block(int(row[0]), len(rows))
            connection.executemany(
                f"INSERT OR REPLACE INTO trial_starts ({_START_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(trial_id, *start) for trial_id, start in zip(ids, rows)],
            )
        self._highest_id = max(self._highest_id, ids[-1])
        return ids

    def beat_trials(self, trial_ids: Sequence[int], when: float) -> None:
        if not trial_ids:
            return
        with self._write("the heartbeat of running trials") as connection:
            connection.execute(
                "UPDATE trial_starts SET heartbeat = ? WHERE trial_id IN (SELECT value FROM json_each(?))",
                (float(when), _json_list(sorted({int(t) for t in trial_ids}))),
            )

    def write_batch(self, batch: RecordBatch) -> dict[str, str]:
        """Write the batch in one transaction, which also reads the step outputs it replaces.

        Reads first (:meth:`_held_rows`) what the batch's writes
        depend on: the step outputs it replaces, the blobs its trials refer to
        that the store holds, the kinds of its metric keys (a kind's row is
        written only when it changes). See :meth:`Backend.write_batch`.
        """
        # Serialize everything before the transaction: a value that cannot be
        # serialized raises here, and nothing is written.
        trials = [_trial_row(trial) for trial in batch.trials]
        cache_entries = [_cache_row(entry) for entry in batch.cache_entries]
        outputs = {output.input_key: output.output_hash for output in batch.step_outputs}  # the latest wins
        sent = {blob.digest for blob in batch.blobs}
        wanted = sorted({d for trial in batch.trials for d in trial.blob_digests()} - sent)
        integer, real = metric_kinds(batch.metrics) if batch.metrics else ((), ())
        with self._write(describe_batch(batch)) as connection:
            previous, held, kinds, known = self._held_rows(connection, list(outputs), wanted, [*integer, *real])
            if batch.blobs:
                connection.executemany(
                    "INSERT OR IGNORE INTO blobs (digest, content) VALUES (?, ?)",
                    [(blob.digest, blob.content) for blob in batch.blobs],
                )
            _insert_rows(  # a row holding the same hash already is left as it is
                connection, "INSERT OR REPLACE INTO step_outputs (input_key, output_hash)",
                [(key, output) for key, output in outputs.items() if previous.get(key) != output],
            )
            if batch.metrics:
                _insert_metrics(connection, batch.metrics)
                _note_metric_kinds(connection, integer, real, kinds)
            if batch.persisted:
                connection.executemany(
                    "INSERT OR REPLACE INTO persisted (step, trial_id, payload) VALUES (?, ?, ?)",
                    [(p.step, p.trial_id, p.payload) for p in batch.persisted],
                )
            if cache_entries:
                connection.executemany(
                    f"INSERT OR REPLACE INTO cache_entries ({_CACHE_LISTED}, payload)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    cache_entries,
                )
            if batch.artifacts:
                connection.executemany(
                    f"INSERT OR REPLACE INTO artifacts ({_ARTIFACT_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (a.trial_id, a.name, a.path, a.digest, a.size, a.step)
                        for a in batch.artifacts
                    ],
                )
            if trials:
                _insert_rows(connection, f"INSERT OR REPLACE INTO trials ({_TRIAL_COLUMNS})", trials)
                _delete_starts(connection, [trial.trial_id for trial in batch.trials])
        real_keys = set(real)
        known.note(held | sent, {key: 0 if key in real_keys else kinds.get(key, 1) for key in (*integer, *real)})
        # issue 12: blobs a deletion removed
        self._blobs_missing(batch, [digest for digest in wanted if digest not in held])
        if trials:
            self._highest_id = max(self._highest_id, *(t.trial_id for t in batch.trials))
            self._write_code_versions({t.code_digest for t in batch.trials}, batch.blobs)
        return previous

    def _held_rows(
        self, connection: sqlite3.Connection, input_keys: Sequence[str], digests: Sequence[str],
        metric_keys: Sequence[str],
    ) -> tuple[dict[str, str], set[str], dict[str, int], "_Known"]:
        """What the store holds of a batch's keys, read in the batch's transaction.

        The writes depending on it see the same store. Returns the output hashes of ``input_keys`` (``step_outputs``), which of
        ``digests`` are blobs, the ``all_int`` of ``metric_keys``
        (``metric_kinds``), and what this connection knows of the store (see
        :class:`_Known`): blobs and kinds it knows are not read again while no
        other connection has written since.
        """
        ((version,),) = connection.execute("PRAGMA data_version").fetchall()
        known = self._known
        if known.connection is not connection or known.version != version:
            known = self._known = _Known(connection, version)
        previous = dict(_select_in(
            connection, "SELECT input_key, output_hash FROM step_outputs WHERE input_key", input_keys
        ))
        held = {digest for digest in digests if digest in known.blobs}
        held.update(digest for (digest,) in _select_in(
            connection, "SELECT digest FROM blobs WHERE digest", [d for d in digests if d not in held]
        ))
        kinds = {key: known.kinds[key] for key in metric_keys if key in known.kinds}
        kinds.update(_select_in(
            connection, "SELECT key, all_int FROM metric_kinds WHERE key", [k for k in metric_keys if k not in kinds]
        ))
        return previous, held, kinds, known

    def save_setting(self, name: str, value: str) -> None:
        """Store the setting in the ``settings`` table (see :meth:`Backend.save_setting`)."""
        check_setting(name, value)
        with self._write(f"the setting {name!r}") as connection:
            connection.execute(
                "INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)", (name, value)
            )

    def _write_code_versions(self, digests: set[str], blobs: list[Blob]) -> None:
        """Write ``code/versions/<digest>.py`` for each code version this process has not written yet.

        One file per distinct code text, none per trial: a trial's own file is
        made on request (:func:`daskperiment.codefiles.trial_code_file`).
        """
        for digest in digests - self._code_versions:
            try:
                blob = next((b for b in blobs if b.digest == digest), None) or self.load_blob(digest)
                write_version(self.code_directory, digest, blob.content if blob is not None else b"")
            except (OSError, BackendError) as exc:
                logger.warning("could not write the code file of version %s: %s", digest, exc)
                continue
            self._code_versions.add(digest)

    # -- reads --------------------------------------------------------------
    def last_trial_id(self) -> int:
        (value,) = self._read("SELECT COALESCE(MAX(trial_id), 0) FROM trials")[0]
        return int(value)

    def deletions(self) -> int:
        found = self._read("SELECT value FROM counters WHERE name = 'deletions'")
        return int(found[0][0]) if found else 0

    def load_trials(self, trial_ids: Sequence[int] | None = None) -> list[TrialRecord]:
        with bulk_decoding():
            if trial_ids is None:
                rows = self._read(f"SELECT {_TRIAL_COLUMNS} FROM trials ORDER BY trial_id")
            else:
                ids = sorted({int(t) for t in trial_ids})
                rows = self._read(
                    f"SELECT {_TRIAL_COLUMNS} FROM trials WHERE trial_id IN "
                    f"(SELECT value FROM json_each(?)) ORDER BY trial_id",
                    (_json_list(ids),),
                )
            return [_trial_record(row) for row in rows]

    def load_trial_columns(self) -> TrialColumns:
        with bulk_decoding():
            return _trial_columns(self._read(f"SELECT {_HISTORY_COLUMNS} FROM trials ORDER BY trial_id"))

    def load_starts(self, trial_ids: Sequence[int] | None = None) -> dict[int, TrialStart]:
        if trial_ids is None:
            rows = self._read(f"SELECT {_START_COLUMNS} FROM trial_starts ORDER BY trial_id")
        else:
            rows = self._read(
                f"SELECT {_START_COLUMNS} FROM trial_starts WHERE trial_id IN "
                "(SELECT value FROM json_each(?)) ORDER BY trial_id",
                (_json_list(sorted({int(t) for t in trial_ids})),),
            )
        return {int(row[0]): _trial_start(row[1:]) for row in rows}

    def load_metrics(self, key: str, trial_ids: Sequence[int]) -> MetricSeries:
        """Read the points into columns straight from the cursor (no row objects kept).

        The trial id is read only when several trials are asked for (every
        column read costs a tenth of the time for 100,000 points). See
        :meth:`Backend.load_metrics`.
        """
        import numpy as np

        ids = sorted({int(t) for t in trial_ids})
        one = len(ids) == 1
        points = self._read(
            f"SELECT {'' if one else 'trial_id, '}epoch, IFNULL(value, 'nan'), IFNULL(time, 'nan') FROM metrics "
            "WHERE key = ? AND trial_id IN (SELECT value FROM json_each(?)) ORDER BY trial_id, epoch, rowid",
            (key, _json_list(ids)),
            # ids and epochs exact int64; NULL (SQLite's NaN, or no time) read as the text 'nan', numpy's NaN
            lambda cursor: np.fromiter(cursor, dtype=_METRIC_POINT[1:] if one else _METRIC_POINT),
        )
        if not len(points):
            return MetricSeries(key, [], [], [])
        kind = self._read("SELECT all_int FROM metric_kinds WHERE key = ?", (key,))
        trial_id_column = np.full(len(points), ids[0], dtype=np.int64) if one else points["trial_id"].copy()
        return MetricSeries(
            key, trial_id_column, points["epoch"].copy(), points["value"].copy(), bool(kind and kind[0][0]),
            points["time"].copy(),
        )

    def metric_keys(self) -> list[str]:
        return [key for (key,) in self._read("SELECT key FROM metric_kinds ORDER BY key")]  # the keys of metrics

    def load_persisted(self, step: str, trial_id: int) -> PersistedValue | None:
        rows = self._read(
            "SELECT payload FROM persisted WHERE step = ? AND trial_id = ?", (step, trial_id)
        )
        return PersistedValue(trial_id, step, rows[0][0]) if rows else None

    def persisted_keys(self) -> list[tuple[int, str]]:
        return [(int(t), s) for t, s in self._read("SELECT trial_id, step FROM persisted ORDER BY trial_id, step")]

    def load_blob(self, digest: str) -> Blob | None:
        rows = self._read("SELECT content FROM blobs WHERE digest = ?", (digest,))
        return Blob(digest, bytes(rows[0][0])) if rows else None

    def load_setting(self, name: str) -> str | None:
        """Read the setting from the ``settings`` table (see :meth:`Backend.load_setting`)."""
        rows = self._read("SELECT value FROM settings WHERE name = ?", (check_setting_name(name),))
        return rows[0][0] if rows else None

    def load_step_outputs(self, input_keys: Sequence[str]) -> dict[str, str]:
        if not input_keys:
            return {}
        rows = self._read(
            "SELECT input_key, output_hash FROM step_outputs WHERE input_key IN "
            "(SELECT value FROM json_each(?))",
            (_json_list(list(input_keys)),),
        )
        return dict(rows)

    # -- step cache -------------------------------------------------------------
    def load_cache_entries(self, keys: Sequence[str]) -> dict[str, CacheEntry]:
        if not keys:
            return {}
        rows = self._read(
            f"SELECT {_CACHE_LISTED} FROM cache_entries WHERE key IN "
            "(SELECT value FROM json_each(?))",
            (_json_list(list(keys)),),
        )
        return {row[0]: _cache_entry(row) for row in rows}

    def load_cache_payload(self, key: str) -> bytes | None:
        rows = self._read("SELECT payload FROM cache_entries WHERE key = ?", (key,))
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    def touch_cache_entries(self, keys: Sequence[str], when: float) -> None:
        if not keys:
            return
        with self._write("the use of cache entries") as connection:
            connection.execute(
                "UPDATE cache_entries SET last_used = ? WHERE key IN "
                "(SELECT value FROM json_each(?))",
                (float(when), _json_list(list(keys))),
            )

    def cache_entries(self) -> list[CacheEntry]:
        rows = self._read(f"SELECT {_CACHE_LISTED} FROM cache_entries ORDER BY last_used, key")
        return [_cache_entry(row) for row in rows]

    def delete_cache_entries(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        with self._write("the removal of cache entries") as connection:
            connection.execute(
                "DELETE FROM cache_entries WHERE key IN (SELECT value FROM json_each(?))",
                (_json_list(list(keys)),),
            )

    # -- artifacts ------------------------------------------------------------------
    def load_artifacts(self, trial_id: int) -> list[ArtifactRecord]:
        rows = self._read(
            f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE trial_id = ? ORDER BY name, path",
            (int(trial_id),),
        )
        return [ArtifactRecord(*row) for row in rows]

    def artifact_digests(self) -> list[str]:
        """Read the ``artifacts`` table (see :meth:`Backend.artifact_digests`)."""
        return [digest for (digest,) in self._read("SELECT DISTINCT digest FROM artifacts ORDER BY digest")]

    # -- notes and tags (issue 12) --------------------------------------------------
    def load_annotations(self, trial_ids: Sequence[int] | None = None) -> dict[int, Annotation]:
        """Read the ``annotations`` table (see :meth:`Backend.load_annotations`)."""
        if trial_ids is None:
            rows = self._read("SELECT trial_id, note, tags FROM annotations")
        else:
            rows = self._read(
                "SELECT trial_id, note, tags FROM annotations WHERE trial_id IN "
                "(SELECT value FROM json_each(?))",
                (_json_list(sorted({int(t) for t in trial_ids})),),
            )
        return {int(row[0]): _annotation(row) for row in rows}

    def edit_annotations(self, edits: Sequence[AnnotationEdit]) -> None:
        """Apply the edits in one transaction (see :meth:`Backend.edit_annotations`)."""
        if not edits:
            return
        ids = _json_list(sorted({int(edit.trial_id) for edit in edits}))
        with self._write("notes and tags") as connection:
            rows = connection.execute(
                "SELECT trial_id, note, tags FROM annotations WHERE trial_id IN "
                "(SELECT value FROM json_each(?))",
                (ids,),
            ).fetchall()
            annotations = {int(row[0]): _annotation(row) for row in rows}
            for edit in edits:
                trial_id = int(edit.trial_id)
                annotations[trial_id] = edit.apply(annotations.get(trial_id, Annotation(trial_id)))
            connection.executemany(
                "INSERT OR REPLACE INTO annotations (trial_id, note, tags) VALUES (?, ?, ?)",
                [(t, a.note, _json_list(sorted(a.tags))) for t, a in annotations.items() if a],
            )
            connection.executemany(
                "DELETE FROM annotations WHERE trial_id = ?",
                [(t,) for t, a in annotations.items() if not a],
            )

    # -- deleting trials and experiments (issue 12) --------------------------------------
    def delete_trials(self, trial_ids: Sequence[int]) -> Deletion:
        """Delete the trials and their records in one transaction (see :meth:`Backend.delete_trials`).

        The trials' code files go once it is committed (a process killed in
        between leaves some of them, which nothing reads).
        """
        ids = _json_list(sorted({int(t) for t in trial_ids}))
        with self._write("the deletion of trials") as connection:
            self._known = _Known(None)  # blobs and kinds may go (forgotten while no batch can be written)
            selected = "(SELECT value FROM json_each(?))"
            rows = connection.execute(
                f"SELECT trial_id, code_digest, environment_digest, worker_environments FROM trials "
                f"WHERE trial_id IN {selected}",
                (ids,),
            ).fetchall()
            started = [t for (t,) in connection.execute(  # running or killed: not recorded yet
                f"SELECT trial_id FROM trial_starts WHERE trial_id IN {selected}", (ids,)
            )]
            artifacts = {
                digest for (digest,) in connection.execute(
                    f"SELECT DISTINCT digest FROM artifacts WHERE trial_id IN {selected}", (ids,)
                )
            }
            keys = _json_list([key for (key,) in connection.execute(
                f"SELECT DISTINCT key FROM metrics WHERE trial_id IN {selected}", (ids,)
            )])
            connection.execute(f"DELETE FROM metrics WHERE trial_id IN {selected}", (ids,))
            # the kinds of keys no point is left of (each key's search stops at its first point)
            connection.execute(
                "DELETE FROM metric_kinds WHERE key IN (SELECT value FROM json_each(?)) AND NOT EXISTS "
                "(SELECT 1 FROM metrics WHERE metrics.key = metric_kinds.key)",
                (keys,),
            )
            for table in ("trials", "trial_starts", "persisted", "artifacts", "annotations"):
                connection.execute(f"DELETE FROM {table} WHERE trial_id IN {selected}", (ids,))
            if rows or started:
                connection.execute(
                    "INSERT INTO counters (name, value) VALUES ('deletions', 1) "
                    "ON CONFLICT (name) DO UPDATE SET value = value + 1"
                )
            unused = _blobs_of(rows) - _blobs_of(connection.execute(
                "SELECT trial_id, code_digest, environment_digest, worker_environments FROM trials"
            ))
            connection.execute(
                f"DELETE FROM blobs WHERE digest IN {selected}", (_json_list(sorted(unused)),)
            )
            orphans = artifacts - {
                digest for (digest,) in connection.execute(
                    f"SELECT DISTINCT digest FROM artifacts WHERE digest IN {selected}",
                    (_json_list(sorted(artifacts)),),
                )
            }
        deleted = tuple(sorted({int(row[0]) for row in rows} | {int(t) for t in started}))
        self._blobs_removed(sorted(unused))
        self._remove_code_files(deleted, unused)
        return Deletion(deleted, tuple(sorted(orphans)))

    def delete_experiment(self) -> Deletion:
        """Empty the database in one transaction, then remove its files (see :meth:`Backend.delete_experiment`).

        A process killed in between leaves an empty experiment: deleting it
        again removes the files.
        """
        with self._write("the deletion of the experiment") as connection:
            self._known = _Known(None)
            trial_ids = tuple(t for (t,) in connection.execute("SELECT trial_id FROM trials ORDER BY trial_id"))
            artifacts = tuple(d for (d,) in connection.execute("SELECT DISTINCT digest FROM artifacts ORDER BY digest"))
            cached = tuple(d for (d,) in connection.execute(
                "SELECT DISTINCT location FROM cache_entries WHERE location IS NOT NULL ORDER BY location"
            ))
            blobs = {d for (d,) in connection.execute("SELECT digest FROM blobs")}
            tables = [name for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "AND name != 'counters'"
            )]
            for table in tables:
                connection.execute(f"DELETE FROM {table}")
            connection.execute("UPDATE counters SET value = 0")  # a store left by a kill counts from 1
        with self._lock:
            self.close()
            _remove_database(self.database_path)
            self._highest_id = 0
            self._file_identity = None
            self._remove_code_files(self._code_file_ids(), blobs | self._code_version_digests())
            self._code_versions.clear()
            self.generation += 1
        for folder in (self.code_directory / "versions", self.code_directory, self.directory):
            try:
                folder.rmdir()  # only when nothing else is left in it
            except OSError:
                break
        return Deletion(trial_ids, artifacts, cached)

    def load_settings(self) -> dict[str, str]:
        """Read the ``settings`` table (see :meth:`Backend.load_settings`)."""
        return dict(self._read("SELECT name, value FROM settings ORDER BY name"))

    def step_outputs(self) -> dict[str, str]:
        """Read the ``step_outputs`` table (see :meth:`Backend.step_outputs`)."""
        return dict(self._read("SELECT input_key, output_hash FROM step_outputs ORDER BY input_key"))

    def import_starts(self, starts: Mapping[int, TrialStart]) -> None:
        """Insert the starts in one transaction (see :meth:`Backend.import_starts`)."""
        rows = [(int(trial_id), *_start_row(start)) for trial_id, start in starts.items()]
        if not rows:
            return
        with self._write("the starts of imported trials") as connection:
            connection.executemany(
                f"INSERT OR REPLACE INTO trial_starts ({_START_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ? "
                "WHERE NOT EXISTS (SELECT 1 FROM trials WHERE trial_id = ?)",
                [(*row, row[0]) for row in rows],
            )

    def staging(self, experiment_id: str) -> "LocalBackend":
        """A database of this folder (see :meth:`Backend.staging`): :meth:`adopt` copies it in one transaction."""
        return LocalBackend(self.directory, experiment_id)

    def adopt(self, staging: Backend) -> None:
        """Copy every table of the staged database into this one in one transaction, then remove it.

        See :meth:`Backend.adopt`. A process killed before the commit leaves
        this database as it was (and the staged one, which
        :meth:`discard_stagings` removes); killed after, the staged file only.
        """
        if not isinstance(staging, LocalBackend) or staging.directory != self.directory:
            raise ValueError(f"{staging!r} is not a staging of {self!r}: make it with .staging(id)")
        staging.close()  # its last connection: its write-ahead log is merged into the file
        with self._lock:
            self._known = _Known(None)  # its blobs and kinds replace these
            connection = self._connect()
            try:
                connection.execute("ATTACH DATABASE ? AS staged", (str(staging.database_path),))
            except sqlite3.DatabaseError as exc:
                raise self._write_failed(exc, "the imported experiment") from exc
            try:
                with self._write("the imported experiment") as connection:
                    tables = [name for (name,) in connection.execute(
                        "SELECT name FROM staged.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                    )]
                    for table in tables:
                        columns = ", ".join(row[1] for row in connection.execute(f"PRAGMA staged.table_info({table})"))
                        connection.execute(f"DELETE FROM main.{table}")
                        connection.execute(f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM staged.{table}")
                    (last,) = connection.execute("SELECT value FROM counters WHERE name = 'trial_id'").fetchone()
            finally:
                connection.execute("DETACH DATABASE staged")
        self._highest_id = max(self._highest_id, int(last))
        _remove_database(staging.database_path)

    def discard_stagings(self, prefix: str) -> list[str]:
        """Remove the databases of this folder whose experiment ids start with ``prefix`` (see :meth:`Backend.discard_stagings`)."""
        found = sorted(self.directory.glob(f"{glob.escape(prefix)}*.sqlite3"))
        for path in found:
            _remove_database(path)
        return [path.name[: -len(".sqlite3")] for path in found]

    def _code_file_ids(self) -> list[int]:
        """Trial ids of this experiment's code files (those a deletion cut short left too)."""
        pattern = re.compile(re.escape(self.experiment_id) + r"_([0-9]+)\.py")
        try:
            names = os.listdir(self.code_directory)
        except FileNotFoundError:
            return []
        return [int(found[1]) for found in map(pattern.fullmatch, names) if found]

    def _code_version_digests(self) -> set[str]:
        try:
            return {path.stem for path in (self.code_directory / "versions").glob("*.py")}
        except OSError:
            return set()

    def _remove_code_files(self, trial_ids: Sequence[int], digests: set[str]) -> None:
        """Remove the code files of deleted trials, and the code versions of removed blobs no file links to."""
        for trial_id in trial_ids:
            (self.code_directory / f"{self.experiment_id}_{trial_id}.py").unlink(missing_ok=True)
        for digest in digests:
            self._code_versions.discard(digest)
            version = self.code_directory / "versions" / f"{digest}.py"
            try:
                if version.stat().st_nlink == 1:  # no trial file of another experiment links to it
                    version.unlink()
            except FileNotFoundError:
                pass

    is_local = True

    def artifact_root(self) -> str:
        """The ``artifacts`` folder next to the database (see :meth:`Backend.artifact_root`)."""
        return str(self.directory / "artifacts")


MAX_PARAMETERS = 32_766
"""Most values SQLite binds to one statement (its default limit since 3.32)."""
METRIC_ROWS_PER_INSERT = 6500
"""Metric points inserted by one statement (5 parameters each: within SQLite's 32,766)."""


def _insert_metrics(connection: sqlite3.Connection, points: Sequence[MetricPoint]) -> None:
    """Insert ``points`` in order, many rows per statement.

    ``executemany`` would run one statement per point, each letting go of the
    interpreter's lock and taking it back: a thread writing points while the
    trial's step saves more (the metric stream) would make that step wait at
    each of them. One statement per :data:`METRIC_ROWS_PER_INSERT` points
    lets go of it once per statement.
    """
    for start in range(0, len(points), METRIC_ROWS_PER_INSERT):
        rows = points[start:start + METRIC_ROWS_PER_INSERT]
        connection.execute(
            _values_statement("INSERT INTO metrics (key, trial_id, epoch, value, time)", 5, len(rows), ""),
            [value for p in rows for value in (p.key, p.trial_id, p.epoch, p.value, p.time)],
        )


def _note_metric_kinds(
    connection: sqlite3.Connection, integer: Sequence[str], real: Sequence[str], kinds: Mapping[str, int],
) -> None:
    """Record which keys got only int values (``metric_kinds``), in one statement, if one changes.

    ``integer`` and ``real``: the keys of the points written, by kind (see
    :func:`~daskperiment.backend.codec.metric_kinds`); ``kinds``: the rows the
    store holds for them, read in this transaction. A key's row is written only
    when it is new or stops being all-int: a trial saving the metrics of
    earlier trials runs no statement.
    """
    _insert_rows(
        connection, "INSERT INTO metric_kinds (key, all_int)",
        [(key, 1) for key in integer if key not in kinds] + [(key, 0) for key in real if kinds.get(key, 1)],
        " ON CONFLICT (key) DO UPDATE SET all_int = 0 WHERE all_int AND NOT excluded.all_int",
    )


def _insert_rows(connection: sqlite3.Connection, insert: str, rows: Sequence[tuple], tail: str = "") -> None:
    """Run ``insert VALUES (…), (…) tail`` for ``rows``: as many rows per statement as SQLite binds.

    One statement instead of one per row (``executemany``): a trial's rows
    cost one call into SQLite.
    """
    if not rows:
        return
    columns = len(rows[0])
    per_statement = max(1, MAX_PARAMETERS // columns)
    for start in range(0, len(rows), per_statement):
        chunk = rows[start:start + per_statement]
        connection.execute(_values_statement(insert, columns, len(chunk), tail), list(chain.from_iterable(chunk)))


@lru_cache(maxsize=256)
def _values_statement(insert: str, columns: int, rows: int, tail: str) -> str:
    """``insert VALUES (?, …), … tail`` for ``rows`` rows of ``columns`` values (made once per shape)."""
    placeholders = f"({', '.join('?' * columns)})"
    return f"{insert} VALUES {', '.join([placeholders] * rows)}{tail}"


def _select_in(connection: sqlite3.Connection, select: str, keys: Sequence[str]) -> Iterator[tuple]:
    """The rows of ``select IN (keys)`` (``select`` ends with the column), as many keys per statement as SQLite binds.

    Bound values: no JSON text to parse (as ``json_each`` would).
    """
    for start in range(0, len(keys), MAX_PARAMETERS):
        chunk = keys[start:start + MAX_PARAMETERS]
        yield from connection.execute(_in_statement(select, len(chunk)), chunk)


@lru_cache(maxsize=256)
def _in_statement(select: str, count: int) -> str:
    """``select IN (?, …)`` for ``count`` values (made once per shape)."""
    return f"{select} IN ({', '.join('?' * count)})"


class _Known:
    """The blobs and metric kinds a connection knows the store holds, as of a ``data_version``.

    ``PRAGMA data_version`` changes when another connection (another process)
    commits; a connection's own writes leave it as it is. While it stays,
    what the connection read or wrote is what the store holds, so batches do
    not read it again. Writes of the connection that remove blobs or kinds
    (deletions, adopting a staged import) forget it, holding the store's lock:
    a batch committed before notes what it wrote in what was forgotten, one
    after reads again.

    Parameters
    ----------
    connection : sqlite3.Connection or None
        The connection it is known by.
    version : int or None
        The ``data_version`` it holds for.
    """

    def __init__(self, connection: sqlite3.Connection | None, version: int | None = None) -> None:
        self.connection = connection
        self.version = version
        self.blobs: set[str] = set()
        self.kinds: dict[str, int] = {}

    def note(self, blobs: Iterable[str], kinds: Mapping[str, int]) -> None:
        """Remember blobs and kinds (``all_int``) the store holds once a batch is committed."""
        self.blobs.update(blobs)
        self.kinds.update(kinds)


def _delete_starts(connection: sqlite3.Connection, trial_ids: Sequence[int]) -> None:
    """Delete the starts of ``trial_ids`` (trials recorded: no longer running)."""
    if len(trial_ids) == 1:
        connection.execute("DELETE FROM trial_starts WHERE trial_id = ?", (trial_ids[0],))
    else:
        connection.execute(
            "DELETE FROM trial_starts WHERE trial_id IN (SELECT value FROM json_each(?))",
            (_json_list(list(trial_ids)),),
        )


def _remove_database(path: Path) -> None:
    """Remove the SQLite database at ``path`` with its log files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _use_write_ahead_log(connection: sqlite3.Connection) -> None:
    """Switch the database to WAL mode, waiting while other processes hold it.

    SQLite answers "database is locked" at once, without its busy handler, when
    processes switch a new database's journal mode at the same time: retry
    until the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _file_identity(path: Path) -> tuple[int, int] | None:
    """Device and inode of the file at ``path``, None when there is none."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


def _open_read_only(path: Path) -> sqlite3.Connection | None:
    """A read-only connection to the database at ``path``, None when even that cannot be opened.

    A write-ahead-log database on a read-only mount cannot make its shared
    memory file: it is then opened as immutable (nothing can change it there).
    """
    for options in ("mode=ro", "mode=ro&immutable=1"):
        try:
            connection = sqlite3.connect(
                f"{path.as_uri()}?{options}", uri=True, timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None, check_same_thread=False,
            )
            connection.execute("PRAGMA user_version").fetchone()
            return connection
        except sqlite3.DatabaseError:
            continue
    return None


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if connection.in_transaction:  # SQLite ends it itself after some errors (disk full)
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _json_list(values: list) -> str:
    return json.dumps(values)


def _trial_row(trial: TrialRecord) -> tuple:
    workers, cached = trial.worker_environment_digests, trial.cached_steps
    return (
        trial.trial_id,
        serialization.to_text(dict(trial.parameters)),
        serialization.to_text(trial.result),
        trial.result_type,
        int(trial.success),
        trial.finished,
        trial.process_time,
        trial.description,
        trial.seed,
        trial.code_digest,
        trial.environment_digest,
        trial.sweep_id,
        _json_list(list(workers)) if workers else None,
        _json_list(cached_steps_pairs(cached)) if cached else None,
        trial.status,
    )


def _trial_record(row: tuple) -> TrialRecord:
    (trial_id, parameters, result, result_type, success, finished, process_time,
     description, seed, code_digest, environment_digest, sweep_id, worker_environments,
     cached_steps, status) = row
    return TrialRecord(  # positional: a history of 100,000 trials makes 100,000 of them
        trial_id,
        parameters_of(serialization.from_text(parameters)),
        serialization.from_text(result),
        result_type,
        bool(success),
        finished,
        process_time,
        description,
        seed,
        code_digest,
        environment_digest,
        sweep_id,
        tuple(json.loads(worker_environments)) if worker_environments else (),
        cached_steps_of(json.loads(cached_steps)) if cached_steps else (),
        status or "",
    )


def _trial_columns(rows: Sequence[tuple]) -> TrialColumns:
    """The trials of rows of ``_HISTORY_COLUMNS`` as columns: what ``_trial_record`` gives each, column by column."""
    columns = [list(map(itemgetter(i), rows)) for i in range(12)]
    columns[1] = serialization.from_texts(columns[1])  # parameters
    columns[2] = serialization.from_texts(columns[2])  # results
    columns[4] = list(map(bool, columns[4]))  # success
    columns[10] = [json.loads(pairs) if pairs else None for pairs in columns[10]]  # cached steps
    return decoded_columns(columns)


def _start_row(start: TrialStart) -> tuple:
    """The columns of ``start`` after its trial id (see ``_START_COLUMNS``)."""
    return (
        serialization.to_text(dict(start.parameters)),
        start.seed,
        float(start.started),
        float(start.heartbeat),
        float(start.interval),
        start.process,
        start.sweep_id,
    )


def _trial_start(row: tuple) -> TrialStart:
    parameters, seed, started, heartbeat, interval, process, sweep_id = row
    return TrialStart(
        parameters_of(serialization.from_text(parameters)), seed, started, heartbeat, interval,
        process, sweep_id,
    )


def _cache_row(entry: CacheEntry) -> tuple:
    """The row of ``entry``: the columns ``_CACHE_LISTED``, then the payload.

    Raises
    ------
    TypeError, ValueError
        When a metric point of the entry is not a (key, integer epoch, number) triple.
    """
    document = cache_entry_document(entry)
    return (*(document[name] for name in _CACHE_FIELDS), float(entry.last_used), entry.payload)


def _cache_entry(row: tuple) -> CacheEntry:
    """The entry, without payload, of a row of the columns ``_CACHE_LISTED``."""
    *fields, last_used = row
    return cache_entry_from_document(dict(zip(_CACHE_FIELDS, fields)), last_used)


def _annotation(row: tuple) -> Annotation:
    """The annotation of an ``annotations`` row (trial_id, note, tags)."""
    trial_id, note, tags = row
    return annotation_from_document({"trial_id": trial_id, "note": note, "tags": json.loads(tags)})


def _blobs_of(rows: Iterable[tuple]) -> set[str]:
    """Digests of the blobs ``(trial_id, code_digest, environment_digest, worker_environments)`` rows refer to."""
    digests: set[str] = set()
    for _, code, environment, workers in rows:
        digests.add(code)
        if environment:
            digests.add(environment)
        if workers:
            digests.update(json.loads(workers))
    return digests
