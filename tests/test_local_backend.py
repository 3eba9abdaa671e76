"""What only the embedded SQLite store does: files, schema, bad folders."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from daskperiment.backend import LocalBackend
from daskperiment.backend.local import SCHEMA_VERSION
from daskperiment.errors import BackendError


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
