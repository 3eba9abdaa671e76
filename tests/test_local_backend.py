"""What only the embedded SQLite store does: files, schema, bad folders."""

from __future__ import annotations

import json
import pickle
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from daskperiment.backend import LocalBackend
from daskperiment.backend.local import SCHEMA_VERSION
from daskperiment.errors import BackendError
from daskperiment.records import ArtifactRecord, MetricPoint, RecordBatch, TrialStart
from test_store_contract import (
    cache_entry,
    check_a_version_1_trial_reads_with_the_defaults,
    listed,
    run_in_processes,
    trial,
)

# The schema of daskperiment's first local stores, as they are on disk.
VERSION_1_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters (name, value) VALUES ('trial_id', 0);
CREATE TABLE IF NOT EXISTS trials (
    trial_id INTEGER PRIMARY KEY,
    parameters BLOB NOT NULL,
    result BLOB NOT NULL,
    result_type TEXT NOT NULL,
    success INTEGER NOT NULL,
    finished REAL NOT NULL,
    process_time REAL NOT NULL,
    description TEXT,
    seed INTEGER,
    code_digest TEXT NOT NULL,
    environment_digest TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    key TEXT NOT NULL,
    trial_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    value REAL  -- NULL is NaN: SQLite stores NaN as NULL
);
CREATE INDEX IF NOT EXISTS metrics_by_key_trial ON metrics (key, trial_id, epoch);
CREATE TABLE IF NOT EXISTS persisted (
    step TEXT NOT NULL,
    trial_id INTEGER NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (step, trial_id)
);
CREATE TABLE IF NOT EXISTS step_outputs (input_key TEXT PRIMARY KEY, output_hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, content BLOB NOT NULL);
"""


def make_version_1_store(folder: Path, experiment_id: str) -> None:
    """A local store as daskperiment's schema 1 wrote it, holding trial 1 (see ``trial``)."""
    folder.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(folder / f"{experiment_id}.sqlite3", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.executescript(f"BEGIN IMMEDIATE; {VERSION_1_SCHEMA} PRAGMA user_version=1; COMMIT;")
    connection.execute("UPDATE counters SET value = 1 WHERE name = 'trial_id'")
    connection.execute(
        "INSERT INTO trials VALUES (1, ?, ?, 'float', 1, ?, 0.25, NULL, 1, ?, ?)",
        (
            pickle.dumps({"a": 1, "b": [1, 2]}, protocol=5),  # as earlier versions stored values
            pickle.dumps(1.5, protocol=5),
            1_700_000_001.0,
            "c" * 64,
            "e" * 64,
        ),
    )
    connection.close()


# What schema 2 added to schema 1, as it wrote it.
VERSION_2_CHANGES = """
ALTER TABLE trials ADD COLUMN sweep_id TEXT;
ALTER TABLE trials ADD COLUMN worker_environments TEXT;
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def make_version_2_store(folder: Path, experiment_id: str) -> None:
    """A local store as schema 2 wrote it: trial 1 (see ``trial``) of sweep ``sweep-1``, a setting."""
    make_version_1_store(folder, experiment_id)
    connection = sqlite3.connect(folder / f"{experiment_id}.sqlite3", isolation_level=None)
    connection.executescript(f"BEGIN IMMEDIATE; {VERSION_2_CHANGES} PRAGMA user_version=2; COMMIT;")
    connection.execute(
        "UPDATE trials SET sweep_id = 'sweep-1', worker_environments = ? WHERE trial_id = 1",
        (json.dumps(["a" * 64]),),
    )
    connection.execute("INSERT INTO settings VALUES ('objective', '\"minimize\"')")
    connection.close()


def schema_of(database: Path) -> tuple[int, list[str], list[str]]:
    """Schema version, columns of ``trials`` and tables of a database."""
    with sqlite3.connect(database) as connection:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        columns = [row[1] for row in connection.execute("PRAGMA table_info(trials)")]
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
    connection.close()
    return version, columns, tables


def drop_the_status_column(connection: sqlite3.Connection) -> None:
    """Make the ``trials`` table of a database as it was before schema 6 (no ``status`` column)."""
    columns = [row[1] for row in connection.execute("PRAGMA table_info(trials)") if row[1] != "status"]
    connection.execute(f"CREATE TABLE trials_before AS SELECT {', '.join(columns)} FROM trials")
    connection.execute("DROP TABLE trials")
    connection.execute("ALTER TABLE trials_before RENAME TO trials")


def drop_the_metric_time_column(connection: sqlite3.Connection) -> None:
    """Make the ``metrics`` table of a database as it was before schema 7 (no ``time`` column)."""
    connection.execute("ALTER TABLE metrics DROP COLUMN time")


def test_repr_shows_the_folder_as_given(tmp_path: Path) -> None:
    assert repr(LocalBackend(Path("daskperiment_cache/x"), "x")) == "LocalBackend('daskperiment_cache/x')"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path, "x")
    assert backend.last_trial_id() == 0
    backend.close()
    with sqlite3.connect(tmp_path / "x.sqlite3") as connection:
        connection.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(BackendError, match="newer daskperiment"):
        LocalBackend(tmp_path, "x").last_trial_id()


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.sqlite3").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(BackendError, match="cannot open the local store"):
        LocalBackend(tmp_path, "x").last_trial_id()


def test_folder_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(BackendError, match="cannot create the local store folder"):
        LocalBackend(tmp_path / "file" / "sub", "x").last_trial_id()


def test_experiment_ids_of_a_local_folder(tmp_path: Path) -> None:
    from daskperiment.backend import experiment_ids

    assert experiment_ids(tmp_path / "missing") == []
    for name in ("b", "a"):
        LocalBackend(tmp_path / name, name).last_trial_id()
    (tmp_path / "not_an_experiment").mkdir()
    assert experiment_ids(tmp_path) == ["a", "b"]
    LocalBackend(tmp_path, "c").last_trial_id()  # an experiment opened with this folder itself
    assert experiment_ids(tmp_path) == ["a", "b", "c"]


def test_a_version_1_store_is_upgraded_in_place(tmp_path: Path) -> None:
    make_version_1_store(tmp_path, "x")
    check_a_version_1_trial_reads_with_the_defaults(LocalBackend(tmp_path, "x"))
    backend = LocalBackend(tmp_path, "x")
    assert backend.allocate_trial_id() == 2  # the counter is kept
    backend.save_setting("objective", '"minimize"')
    assert backend.load_setting("objective") == '"minimize"'
    backend.close()
    version, columns, tables = schema_of(tmp_path / "x.sqlite3")
    assert version == SCHEMA_VERSION == 8
    assert columns[-4:] == ["sweep_id", "worker_environments", "cached_steps", "status"]
    assert {"settings", "cache_entries", "artifacts", "trial_starts", "annotations"} <= set(tables)


def test_a_version_2_store_is_upgraded_in_place(tmp_path: Path) -> None:
    make_version_2_store(tmp_path, "x")
    backend = LocalBackend(tmp_path, "x")
    kept = trial(1, sweep_id="sweep-1", worker_environment_digests=("a" * 64,))
    assert backend.load_trials() == [kept]
    assert backend.load_setting("objective") == '"minimize"'
    assert backend.allocate_trial_id() == 2  # the counter is kept
    cached = trial(2, cached_steps=(("prepare", 1),))
    backend.write_batch(
        RecordBatch(
            trials=[cached],
            cache_entries=[cache_entry("k")],
            artifacts=[ArtifactRecord(2, "output", "", "d" * 64, 5)],
        )
    )
    backend.close()
    reopened = LocalBackend(tmp_path, "x")
    assert reopened.load_trials() == [kept, cached]
    assert reopened.load_cache_entries(["k"]) == {"k": listed(cache_entry("k"))}
    assert reopened.load_cache_payload("k") == b"payload k"
    assert reopened.load_artifacts(2) == [ArtifactRecord(2, "output", "", "d" * 64, 5)]
    reopened.close()
    version, columns, tables = schema_of(tmp_path / "x.sqlite3")
    assert version == SCHEMA_VERSION == 8
    assert columns[-4:] == ["sweep_id", "worker_environments", "cached_steps", "status"]
    assert {"settings", "cache_entries", "artifacts", "trial_starts", "annotations"} <= set(tables)


def test_a_version_3_store_is_upgraded_and_its_metrics_read_as_floats(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path, "x")
    backend.last_trial_id()
    backend.close()
    with sqlite3.connect(tmp_path / "x.sqlite3") as connection:  # schema 3: no metric_kinds table
        connection.execute("DROP TABLE metric_kinds")
        drop_the_status_column(connection)  # schema 6
        drop_the_metric_time_column(connection)  # schema 7
        connection.execute("INSERT INTO metrics VALUES ('loss', 1, 0, 2.0), ('loss', 1, 1, 1.5)")
        connection.execute("PRAGMA user_version=3")
    connection.close()
    backend = LocalBackend(tmp_path, "x")
    assert backend.load_metrics("loss", [1]).integer is False  # saved before: not known to be ints
    backend.write_metrics([MetricPoint(2, "loss", 0, 1), MetricPoint(2, "steps", 0, 7)])
    assert backend.load_metrics("loss", [2]).integer is False
    assert backend.load_metrics("steps", [2]).integer is True
    backend.close()
    version, _, tables = schema_of(tmp_path / "x.sqlite3")
    assert version == SCHEMA_VERSION == 8 and "metric_kinds" in tables


def test_a_version_5_store_is_upgraded_and_its_trials_get_a_status_from_success(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path, "x")
    failed = trial(2, success=False, result=None, result_type="", description="E(x)")
    assert backend.allocate_trial_ids(2) == range(1, 3)
    backend.write_batch(RecordBatch(trials=[trial(1), failed]))
    backend.close()
    with sqlite3.connect(tmp_path / "x.sqlite3") as connection:  # schema 5: no status, no starts
        drop_the_status_column(connection)
        drop_the_metric_time_column(connection)
        connection.execute("DROP TABLE trial_starts")
        connection.execute("PRAGMA user_version=5")
    connection.close()
    backend = LocalBackend(tmp_path, "x")
    assert [(t.trial_id, t.status) for t in backend.load_trials()] == [(1, "finished"), (2, "failed")]
    assert backend.load_starts() == {}
    start = TrialStart({"a": 1}, 3, 1_700_000_000.0, 1_700_000_000.0, 10.0, "host:1")
    assert backend.start_trials([start]) == range(3, 4)  # the counter is kept
    assert backend.load_starts() == {3: start}
    backend.close()
    version, columns, tables = schema_of(tmp_path / "x.sqlite3")
    assert version == SCHEMA_VERSION == 8 and columns[-1] == "status" and "trial_starts" in tables


def _open_and_write_trial(folder: Path, trial_id: int) -> int:
    backend = LocalBackend(folder, "x")
    backend.write_trial(trial(trial_id, sweep_id=f"sweep-{trial_id}"))
    backend.close()
    return trial_id


def test_processes_opening_a_version_1_store_at_once_upgrade_it_once(tmp_path: Path) -> None:
    make_version_1_store(tmp_path, "x")
    written = run_in_processes(_open_and_write_trial, [(tmp_path, t) for t in range(2, 6)])
    assert sorted(written) == [2, 3, 4, 5]
    backend = LocalBackend(tmp_path, "x")
    assert backend.load_trials() == [trial(1)] + [
        trial(t, sweep_id=f"sweep-{t}") for t in range(2, 6)
    ]
    backend.close()
    version, columns, _ = schema_of(tmp_path / "x.sqlite3")
    assert version == SCHEMA_VERSION == 8 and columns.count("sweep_id") == columns.count("cached_steps") == 1


def test_a_version_5_store_gets_the_annotations_table(tmp_path: Path) -> None:
    from daskperiment.records import Annotation, AnnotationEdit

    backend = LocalBackend(tmp_path, "x")
    backend.write_trial(trial(1))
    backend.close()
    with sqlite3.connect(tmp_path / "x.sqlite3") as connection:  # schema 5: no annotations, no status
        connection.execute("DROP TABLE annotations")
        drop_the_status_column(connection)
        drop_the_metric_time_column(connection)
        connection.execute("DROP TABLE trial_starts")
        connection.execute("PRAGMA user_version=5")
    connection.close()
    backend = LocalBackend(tmp_path, "x")
    assert backend.load_trials() == [trial(1)] and backend.load_annotations() == {}
    backend.edit_annotations([AnnotationEdit(1, note="kept", add_tags=frozenset({"t"}))])
    backend.close()
    assert LocalBackend(tmp_path, "x").load_annotations() == {1: Annotation(1, "kept", frozenset({"t"}))}
    version, _, tables = schema_of(tmp_path / "x.sqlite3")
    assert version == SCHEMA_VERSION == 8 and "annotations" in tables


def test_an_experiment_deletion_stopped_before_its_files_went_leaves_an_empty_store(tmp_path: Path, monkeypatch) -> None:
    """Killed between the transaction that empties the store and the removal of its files."""
    backend = LocalBackend(tmp_path, "x")
    assert backend.allocate_trial_ids(3) == range(1, 4)
    for trial_id in (1, 2, 3):
        backend.write_trial(trial(trial_id))
    backend.write_metrics([MetricPoint(1, "loss", 0, 1.0)])

    def stopped(path: Path, missing_ok: bool = False) -> None:
        raise KeyboardInterrupt  # as a kill would, once the transaction is committed

    monkeypatch.setattr(Path, "unlink", stopped)
    with pytest.raises(KeyboardInterrupt):
        backend.delete_experiment()
    monkeypatch.undo()
    reopened = LocalBackend(tmp_path, "x")
    assert reopened.load_trials() == [] and reopened.metric_keys() == []
    assert reopened.allocate_trial_id() == 1  # an empty experiment, counting from 1
    reopened.close()
    assert LocalBackend(tmp_path, "x").delete_experiment().trial_ids == ()
    assert not (tmp_path / "x.sqlite3").exists() and not (tmp_path / "code").exists()


def test_a_version_6_store_is_upgraded_and_its_metric_points_read_without_time(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path, "x")
    backend.write_trial(trial(1))
    backend.close()
    old = [(t, e, (t * 10 + e) / 4) for t in (1, 2, 3) for e in range(40)]
    with sqlite3.connect(tmp_path / "x.sqlite3") as connection:  # schema 6: points without time
        drop_the_metric_time_column(connection)
        connection.executemany("INSERT INTO metrics VALUES ('loss', ?, ?, ?)", old)
        connection.execute("INSERT INTO metric_kinds VALUES ('loss', 0)")
        connection.execute("PRAGMA user_version=6")
    connection.close()
    backend = LocalBackend(tmp_path, "x")
    series = backend.load_metrics("loss", [1, 2, 3])
    assert list(series) == [MetricPoint(t, "loss", e, v) for t, e, v in old]  # time None: unknown
    assert all(point.time is None for point in series) and np.isnan(series.times).all()
    assert backend.load_trials() == [trial(1)]
    timed = [MetricPoint(4, "loss", e, e / 3, 1_700_000_000.0 + e / 8) for e in range(50)]
    backend.write_metrics(timed + [MetricPoint(1, "loss", 40, 0.5, 1_700_000_100.25)])
    assert list(backend.load_metrics("loss", [4])) == timed
    points = list(backend.load_metrics("loss", [1]))
    assert points == [MetricPoint(1, "loss", e, (10 + e) / 4) for e in range(40)] + [
        MetricPoint(1, "loss", 40, 0.5, 1_700_000_100.25)
    ]
    backend.close()
    with sqlite3.connect(tmp_path / "x.sqlite3") as connection:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        columns = [row[1] for row in connection.execute("PRAGMA table_info(metrics)")]
    connection.close()
    assert version == SCHEMA_VERSION == 8 and columns == ["key", "trial_id", "epoch", "value", "time"]
