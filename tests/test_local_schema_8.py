"""Schema 8 of the local store (issue 15): the upgrade of stores written in schema 7's layout.

Schema 8 indexes metric points by trial (schema 7: by key), keeps step outputs
in a table without rowid, starts a trial in one statement (a trigger moves the
trial id counter) and reads metric keys from ``metric_kinds``.
"""

from __future__ import annotations

import math
import sqlite3
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from daskperiment.backend import LocalBackend
from daskperiment.backend.local import SCHEMA_VERSION
from daskperiment.errors import BackendError
from daskperiment.records import MetricPoint, PersistedValue, RecordBatch, StepOutput, TrialStart
from test_store_contract import run_in_processes, trial

KEYS = ("loss", "accuracy", "steps", "lr")


def start(trial_id: int, sweep_id: str | None = None) -> TrialStart:
    return TrialStart({"a": trial_id, "b": [1, 2]}, trial_id, 1_700_000_000.0 + trial_id,
                      1_700_000_000.5 + trial_id, 5.0, f"host:{1000 + trial_id}", sweep_id)


def points_of(trial_id: int) -> list[MetricPoint]:
    """The points trial ``trial_id`` saves: what its id gives, some keys only in some trials."""
    points = [MetricPoint(trial_id, "loss", e, (trial_id * 100 + e) / 8, 1_700_000_000.0 + e) for e in range(12)]
    points += [MetricPoint(trial_id, "steps", e, trial_id * 10 + e) for e in range(3)]  # int: stays int
    if trial_id % 3 == 0:
        points += [MetricPoint(trial_id, "accuracy", 0, math.nan), MetricPoint(trial_id, "accuracy", 0, 0.5)]
    if trial_id == 7:
        points.append(MetricPoint(trial_id, "lr", 0, 0.125))  # the only trial with this key
    return points


def output_key(step: str, trial_id: int) -> str:
    return f"{step}-{trial_id * 7919 % 1000:04d}" + "0" * 40  # random-looking order


def fill(folder: Path) -> None:
    """A store holding 60 started trials: 48 recorded (metrics, step outputs, persisted values), 12
    still running, trials 5 and 6 deleted."""
    backend = LocalBackend(folder, "x")
    ids = [*backend.start_trials([start(1)]), *backend.start_trials([start(t, "sweep") for t in range(2, 31)])]
    ids += [backend.start_trials([start(t)])[0] for t in range(31, 61)]
    assert ids == list(range(1, 61))
    for first in range(1, 49, 6):
        chosen = range(first, first + 6)
        backend.write_batch(RecordBatch(
            trials=[trial(t, sweep_id="sweep" if t < 31 else None) for t in chosen],
            metrics=[p for t in chosen for p in points_of(t)],
            step_outputs=[StepOutput(output_key(s, t), f"{s}{t}") for t in chosen for s in ("prepare", "score")],
            persisted=[PersistedValue(t, "score", f"value {t}".encode()) for t in chosen],
        ))
    backend.save_setting("objective", '"minimize"')
    assert backend.delete_trials([5, 6]).trial_ids == (5, 6)
    backend.close()


def comparable(points: Any) -> list[tuple]:
    """Metric points as tuples, NaN values as the text 'nan' (NaN equals nothing)."""
    return [(p.trial_id, p.key, p.epoch, "nan" if math.isnan(p.value) else p.value, p.time) for p in points]


def contents(backend: LocalBackend) -> dict[str, Any]:
    """Everything the store gives to read."""
    ids = list(range(1, 62))
    return {
        "trials": backend.load_trials(),
        "starts": backend.load_starts(),
        "keys": backend.metric_keys(),
        "metrics": {
            key: (comparable(backend.load_metrics(key, ids)), backend.load_metrics(key, ids).integer) for key in KEYS
        },
        "one trial": [comparable(backend.load_metrics("loss", [t])) for t in (1, 30, 48, 55)],
        "step outputs": backend.step_outputs(),
        "persisted": backend.persisted_keys(),
        "settings": backend.load_settings(),
        "deletions": backend.deletions(),
        "last": backend.last_trial_id(),
    }


def make_it_schema_7(database: Path) -> None:
    """Give a database the layout of schema 7, as daskperiment wrote it."""
    connection = sqlite3.connect(database, isolation_level=None)
    connection.executescript("""
        BEGIN IMMEDIATE;
        DROP TRIGGER starts_take_ids;
        DROP INDEX metrics_by_trial;
        CREATE INDEX metrics_by_key_trial ON metrics (key, trial_id, epoch);
        CREATE TABLE step_outputs_7 (input_key TEXT PRIMARY KEY, output_hash TEXT NOT NULL);
        INSERT INTO step_outputs_7 SELECT input_key, output_hash FROM step_outputs ORDER BY output_hash;
        DROP TABLE step_outputs;
        ALTER TABLE step_outputs_7 RENAME TO step_outputs;
        PRAGMA user_version=7;
        COMMIT;
    """)
    connection.close()


def schema_objects(database: Path, mode: str = "ro") -> tuple[int, dict[str, str]]:
    """The schema version, and the SQL of each index, table and trigger by name (read with ``mode``)."""
    connection = sqlite3.connect(f"{database.as_uri()}?mode={mode}", uri=True)
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    objects = dict(connection.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
    connection.close()
    return version, objects


@pytest.fixture
def old_store(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A store of schema 7's layout, and what it reads as (read before it was made schema 7)."""
    fill(tmp_path)
    backend = LocalBackend(tmp_path, "x")
    expected = contents(backend)
    backend.close()
    make_it_schema_7(tmp_path / "x.sqlite3")
    version, objects = schema_objects(tmp_path / "x.sqlite3")
    assert version == 7 and "metrics_by_key_trial" in objects and "WITHOUT ROWID" not in objects["step_outputs"]
    return tmp_path, expected


def test_what_the_store_holds_before_the_upgrade(old_store: tuple[Path, dict[str, Any]]) -> None:
    """The store the upgrade tests start from holds what fill wrote (so comparing with it checks something)."""
    _, expected = old_store
    recorded = [t for t in range(1, 49) if t not in (5, 6)]
    assert expected["trials"] == [trial(t, sweep_id="sweep" if t < 31 else None) for t in recorded]
    assert expected["starts"] == {t: start(t, "sweep" if t < 31 else None) for t in range(49, 61)}
    assert expected["keys"] == ["accuracy", "loss", "lr", "steps"]
    for key in KEYS:
        points, integer = expected["metrics"][key]
        assert points == comparable(p for t in recorded for p in points_of(t) if p.key == key) and points
        assert integer == (key == "steps")
    assert expected["one trial"] == [comparable(p for p in points_of(t) if p.key == "loss") for t in (1, 30, 48)] + [[]]
    assert expected["step outputs"] == {
        output_key(s, t): f"{s}{t}" for t in range(1, 49) for s in ("prepare", "score")
    }
    assert expected["persisted"] == [(t, "score") for t in recorded]
    assert expected["deletions"] == 1 and expected["last"] == 48


def test_a_schema_7_store_is_upgraded_in_place_and_reads_as_it_did(old_store: tuple[Path, dict[str, Any]]) -> None:
    folder, expected = old_store
    with sqlite3.connect(folder / "x.sqlite3") as connection:
        # kinds out of step with the points: a key without points, points of a float key without a kind
        connection.execute("INSERT INTO metric_kinds VALUES ('ghost', 1)")
        connection.execute("DELETE FROM metric_kinds WHERE key = 'accuracy'")
    connection.close()
    backend = LocalBackend(folder, "x")
    assert contents(backend) == expected
    version, objects = schema_objects(folder / "x.sqlite3")
    assert version == SCHEMA_VERSION == 8
    assert "metrics_by_key_trial" not in objects and "(trial_id, key, epoch)" in objects["metrics_by_trial"]
    assert objects["step_outputs"].endswith("WITHOUT ROWID") and "starts_take_ids" in objects
    assert "step_outputs_8" not in objects
    # ids go on after the counter (trial 60 started last), recording replaces its start
    assert backend.start_trials([start(61)]) == range(61, 62)
    assert backend.start_trials([start(62), start(63)]) == range(62, 64)
    assert backend.allocate_trial_id() == 64
    replaced = backend.write_batch(RecordBatch(
        trials=[trial(61)], metrics=points_of(61),
        step_outputs=[StepOutput(output_key("score", 3), "changed"), StepOutput(output_key("score", 61), "new")],
    ))
    assert replaced == {output_key("score", 3): "score3"}  # what a purity warning compares
    same = backend.write_batch(RecordBatch(step_outputs=[StepOutput(output_key("prepare", 3), "prepare3")]))
    assert same == {output_key("prepare", 3): "prepare3"}  # the same output again: held, not rewritten
    assert backend.load_starts([61, 62, 63]) == {62: start(62), 63: start(63)}
    assert backend.load_trials([61]) == [trial(61)]
    assert list(backend.load_metrics("loss", [61])) == [p for p in points_of(61) if p.key == "loss"]
    assert backend.load_step_outputs([output_key("score", 3), output_key("prepare", 3)]) == {
        output_key("score", 3): "changed", output_key("prepare", 3): "prepare3",
    }
    backend.close()


def test_deleting_trials_after_the_upgrade_keeps_the_keys_of_the_others(
    old_store: tuple[Path, dict[str, Any]],
) -> None:
    folder, _ = old_store
    backend = LocalBackend(folder, "x")
    assert backend.delete_trials([7, 8, 9]).trial_ids == (7, 8, 9)
    assert backend.metric_keys() == ["accuracy", "loss", "steps"]  # lr: only trial 7 had it
    remaining = [t for t in range(1, 49) if t not in (5, 6, 7, 8, 9)]
    assert list(backend.load_metrics("steps", list(range(1, 61)))) == [
        p for t in remaining for p in points_of(t) if p.key == "steps"
    ]
    assert backend.load_metrics("steps", [1]).integer
    assert backend.delete_trials([t for t in remaining if t % 3 == 0]).trial_ids
    assert backend.metric_keys() == ["loss", "steps"]
    backend.close()


def _open_and_start(folder: Path, count: int) -> list[int]:
    """Open the store (the first opener upgrades it), start ``count`` trials one by one and record them."""
    backend = LocalBackend(folder, "x")
    ids = []
    for _ in range(count):
        (trial_id,) = backend.start_trials([start(0)])
        backend.write_batch(RecordBatch(trials=[trial(trial_id)], metrics=points_of(trial_id)))
        ids.append(trial_id)
    backend.close()
    return ids


def test_processes_opening_a_schema_7_store_at_once_upgrade_it_once(old_store: tuple[Path, dict[str, Any]]) -> None:
    folder, expected = old_store
    started = run_in_processes(_open_and_start, [(folder, 10)] * 4)
    ids = sorted(t for group in started for t in group)
    assert ids == list(range(61, 101))  # unique and gap-free, after the 60 of the old store
    assert all(group == sorted(group) for group in started)
    backend = LocalBackend(folder, "x")
    assert backend.load_trials()[: len(expected["trials"])] == expected["trials"]
    assert backend.load_trials(ids) == [trial(t) for t in ids]
    assert list(backend.load_metrics("steps", ids)) == [p for t in ids for p in points_of(t) if p.key == "steps"]
    assert backend.load_starts() == expected["starts"]
    backend.close()
    version, objects = schema_objects(folder / "x.sqlite3")
    assert version == 8 and "metrics_by_key_trial" not in objects


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Callable[[], Path]]:
    """Mounts a small tmpfs (tests run as root, which chmod does not stop): ``mount()``."""
    mounted: list[Path] = []

    def make() -> Path:
        folder = tmp_path / f"mount{len(mounted)}"
        folder.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)], check=True)
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def test_a_read_only_schema_7_store_says_to_open_it_where_it_can_be_written(
    mount: Callable[[], Path],
) -> None:
    folder = mount() / "ro"
    fill(folder)
    make_it_schema_7(folder / "x.sqlite3")
    subprocess.run(["mount", "-o", "remount,ro", str(folder.parent)], check=True)
    backend = LocalBackend(folder, "x")
    refused = "The store has schema 7 and this daskperiment reads 8: open it once where it can be written"
    with pytest.raises(BackendError, match=refused):
        backend.load_trials()
    with pytest.raises(BackendError, match="cannot open the local store"):
        backend.start_trials([start(61)])
    version, objects = schema_objects(folder / "x.sqlite3", "ro&immutable=1")  # on a read-only mount
    assert version == 7 and "metrics_by_key_trial" in objects  # left as it was


def _blob_and_kind_rows(folder: Path) -> tuple[list[str], dict[str, int]]:
    connection = sqlite3.connect(folder / "x.sqlite3")
    blobs = [d for (d,) in connection.execute("SELECT digest FROM blobs ORDER BY digest")]
    kinds = dict(connection.execute("SELECT key, all_int FROM metric_kinds"))
    connection.close()
    return blobs, kinds


@pytest.mark.parametrize("deleter", ["another connection", "the same backend"])
def test_kinds_and_blobs_a_deletion_removed_are_written_again(tmp_path: Path, deleter: str) -> None:
    """A writer does not read again the kinds and blobs it knows, until someone else writes or it deletes."""
    from daskperiment.records import Blob

    writer = LocalBackend(tmp_path, "x")
    other = LocalBackend(tmp_path, "x") if deleter == "another connection" else writer
    code = [Blob("c" * 64, b"code"), Blob("e" * 64, b"environment")]
    for trial_id in range(1, 21):  # trial 1 sends the blobs; keys: steps (int) from trial 1, lr from 7
        sent = code if trial_id == 1 else []
        writer.write_batch(RecordBatch(trials=[trial(trial_id)], metrics=points_of(trial_id), blobs=sent))
    assert _blob_and_kind_rows(tmp_path) == (["c" * 64, "e" * 64], {"loss": 0, "steps": 1, "accuracy": 0, "lr": 0})
    assert other.delete_trials(list(range(1, 21))).trial_ids == tuple(range(1, 21))
    assert _blob_and_kind_rows(tmp_path) == ([], {})
    generation = writer.generation
    for trial_id in range(21, 41):
        sent = code if writer.generation != generation and trial_id == 22 else []  # the writer's reaction
        writer.write_batch(RecordBatch(trials=[trial(trial_id)], metrics=points_of(trial_id), blobs=sent))
        if trial_id == 21:
            assert writer.generation == generation + 1  # told the blobs are gone
    assert _blob_and_kind_rows(tmp_path) == (["c" * 64, "e" * 64], {"loss": 0, "steps": 1, "accuracy": 0})
    assert writer.metric_keys() == other.metric_keys() == ["accuracy", "loss", "steps"]
    # another writer saving a float under an int key: the first one's knowledge of the kind is stale
    other.write_metrics([MetricPoint(40, "steps", 9, 0.5)])
    writer.write_metrics([MetricPoint(40, "steps", 10, 3)])
    assert _blob_and_kind_rows(tmp_path)[1]["steps"] == 0 and not writer.load_metrics("steps", [40]).integer
    writer.write_metrics([MetricPoint(40, "new", 0, 1)])
    writer.write_metrics([MetricPoint(40, "new", 1, 1.5)])  # known int, now float
    assert _blob_and_kind_rows(tmp_path)[1]["new"] == 0
    writer.close()
    other.close()
