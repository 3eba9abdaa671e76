"""A history read as columns is the table the trials' records make, to the byte, on every store.

``ex.get_history()`` reads the store's trials as columns
(``Backend.load_trial_columns``: no record per trial); the dashboard and the
sweep tables make the same table from records (``Backend.load_trials``). On a
varied history — every kind of value, unreadable and placeholder values,
signed pickles read with another key or by a reader that loads none,
failures, interruptions, sweeps, cached steps, running and killed trials,
notes and tags, records as daskperiment wrote them before data trees and
before statuses — both give the same table: columns, their order and dtypes,
every cell of the same type and value.
"""

from __future__ import annotations

import datetime
import json
import math
import pickle
import sqlite3
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

from daskperiment import Experiment, serialization
from daskperiment.backend.codec import UNREADABLE_PARAMETERS
from daskperiment.history import history_frame
from daskperiment.records import TrialColumns, TrialStart
from daskperiment.serialization import Trust, UnreadableValue, trusting
from test_history_decoding import VALUES

OLD_IDS = (1001, 1002, 1003)
"""Trials written as daskperiment wrote them before data trees (pickles) and statuses."""
DAMAGED_ID = 1004
"""A trial whose parameters are not a dict and whose result is damaged data."""
RUNNING_ID, KILLED_ID, STARTED_AND_RECORDED_ID = 1010, 1011, 5
"""Started trials: one alive, one whose heartbeat is stale, one whose record is written (its start ignored)."""
NOW = 2_000_000_000.0
RESULTS_OF_OLD = {1001: 500.5, 1002: None, 1003: Fraction(1003, 2)}
"""Results of the trials of ``OLD_IDS``: the last one's pickle loads a class (refused unless old pickles are trusted)."""


@pytest.fixture(params=["local", "redis", "mongo"])
def store(request: pytest.FixtureRequest) -> str:
    return request.param


def same(got: Any, expected: Any) -> bool:
    """Equal, of the same type, all the way down (NaN equal to NaN, NaT to NaT)."""
    if type(got) is not type(expected):
        return False
    if got is pd.NaT:
        return expected is pd.NaT
    if isinstance(expected, np.ndarray):
        return got.dtype == expected.dtype and np.array_equal(got, expected)
    if isinstance(expected, float):
        return (math.isnan(got) and math.isnan(expected)) or (
            got == expected and math.copysign(1, got) == math.copysign(1, expected)
        )
    if isinstance(expected, (list, tuple)):
        return len(got) == len(expected) and all(same(g, e) for g, e in zip(got, expected))
    if isinstance(expected, dict):
        return list(got) == list(expected) and all(same(got[k], expected[k]) for k in expected)
    return bool(got == expected)


def assert_same_table(new: pd.DataFrame, old: pd.DataFrame) -> None:
    """``new`` is ``old``: index, columns in order, dtypes, and every cell (type and value)."""
    assert new.index.tolist() == old.index.tolist()
    assert (new.index.name, new.index.dtype) == (old.index.name, old.index.dtype)
    assert new.columns.tolist() == old.columns.tolist()
    assert new.dtypes.tolist() == old.dtypes.tolist()
    for column in old.columns:
        for trial_id, got, expected in zip(old.index, new[column].tolist(), old[column].tolist()):
            assert same(got, expected), (column, trial_id, got, expected)
    assert new.to_csv() == old.to_csv()


def make_history(ex: Experiment) -> dict[int, str]:
    """Record a varied history in ``ex``; returns the expected status by trial id."""
    i, p = ex.parameter("i"), ex.parameter("p")
    k = ex.parameter("k", default=0)

    @ex(cache=True)
    def prepare(k):
        return k * 2

    @ex.result
    def echo(i, p, prepared):
        if i == -1:
            raise ValueError(f"bad input {p}")
        if i == -2:
            raise KeyboardInterrupt
        return VALUES[i]

    statuses: dict[int, str] = {}
    for index in [*range(len(VALUES)), -1, -2]:
        value = VALUES[index] if index >= 0 else index
        try:
            ex.run(echo(i, p, prepare(k)), i=index, p=value, scheduler="sync")
            statuses[ex.trial_id] = "finished"
        except ValueError:
            statuses[ex.trial_id] = "failed"
        except KeyboardInterrupt:
            statuses[ex.trial_id] = "interrupted"
    swept = ex.sweep(echo(i, p, prepare(k)), {"i": [0, 3, 5], "p": [1, 2], "k": [7]}, scheduler="sync")
    statuses.update((int(t), "finished") for t in swept.index)
    ex.set_note(2, "the first, \"quoted\" note")
    ex.add_tags(3, "baseline", "lr-sweep")
    ex.add_tags(int(swept.index[0]), "swept")
    ex.set_note(int(swept.index[-1]), "ünïcødé ✓")
    return statuses


def write_old_trials(ex: Experiment, store: str) -> None:
    """Trials ``OLD_IDS`` as earlier daskperiment stored them, and the damaged trial ``DAMAGED_ID``."""
    backend = ex.backend
    old = [
        {"trial_id": t, "parameters": {"i": t, "p": [t, "x"]}, "result": RESULTS_OF_OLD[t],
         "result_type": type(RESULTS_OF_OLD[t]).__name__ if t != 1002 else "", "success": t != 1002, "finished": 1_600_000_000.0 + t,
         "process_time": 0.125, "description": None if t != 1002 else "RuntimeError(old)", "seed": None,
         "code_digest": "c" * 64, "environment_digest": None}
        for t in OLD_IDS
    ]
    assert backend.allocate_trial_ids(DAMAGED_ID - backend.last_trial_id())[-1] == DAMAGED_ID
    if store == "local":
        connection = sqlite3.connect(Path(backend.reopen_arguments()[0]) / f"{ex.id}.sqlite3")
        with connection:
            for doc in old:  # pickled values and no status: a store of schema 1, upgraded
                connection.execute(
                    "INSERT INTO trials (trial_id, parameters, result, result_type, success, finished, "
                    "process_time, description, seed, code_digest, environment_digest) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (doc["trial_id"], pickle.dumps(doc["parameters"], protocol=5),
                     pickle.dumps(doc["result"], protocol=5), doc["result_type"], int(doc["success"]),
                     doc["finished"], doc["process_time"], doc["description"], doc["seed"],
                     doc["code_digest"], doc["environment_digest"]),
                )
            connection.execute(
                "INSERT INTO trials (trial_id, parameters, result, result_type, success, finished, "
                "process_time, description, seed, code_digest, environment_digest, status) "
                "VALUES (?, '[1, 2]', '{\"a\": ', 'float', 1, 1600000100.0, 0.5, NULL, 3, ?, NULL, 'finished')",
                (DAMAGED_ID, "c" * 64),
            )
        connection.close()
        return
    damaged = {**old[0], "trial_id": DAMAGED_ID, "format": 2, "parameters": [1, 2],
               "result": {"@pickle": "not base64!", "type": "x.Y", "hmac": "00"}, "status": "finished"}
    if store == "redis":
        import redis

        client = redis.Redis.from_url(backend.reopen_arguments()[0])
        key = f"daskperiment:{ex.id}:trials"
        for doc in old:  # format 1: a pickled document of pickled values, without status
            values = {"parameters": pickle.dumps(doc["parameters"]), "result": pickle.dumps(doc["result"])}
            client.hset(key, doc["trial_id"], pickle.dumps({**doc, "format": 1, **values}, protocol=5))
            client.zadd(f"daskperiment:{ex.id}:trial_ids", {str(doc["trial_id"]): doc["trial_id"]})
        client.hset(key, DAMAGED_ID, json.dumps(damaged))
        client.zadd(f"daskperiment:{ex.id}:trial_ids", {str(DAMAGED_ID): DAMAGED_ID})
        client.close()
        return
    import pymongo

    uri = backend.reopen_arguments()[0]
    client = pymongo.MongoClient(uri)
    collection = client.get_default_database()[f"daskperiment_{ex.id}"]
    for doc in old:
        values = {"parameters": pickle.dumps(doc["parameters"]), "result": pickle.dumps(doc["result"])}
        collection.insert_one({"_id": f"trial:{doc['trial_id']}", "kind": "trial", **doc, "format": 1, **values})
    collection.insert_one({"_id": f"trial:{DAMAGED_ID}", "kind": "trial", **damaged})
    client.close()


def start_trials(ex: Experiment) -> None:
    """A running trial, a killed one, and a start whose trial is recorded (trial 5)."""
    backend = ex.backend
    assert backend.allocate_trial_ids(RUNNING_ID - 1 - DAMAGED_ID)[-1] == RUNNING_ID - 1
    alive = TrialStart({"i": 1, "p": "running", "new": 1.5}, 11, NOW - 5, NOW - 1, 10.0, "host:1")
    stale = TrialStart({"i": 2, "p": (1, 2)}, None, NOW - 500, NOW - 400, 10.0, "host:2", "sweep-x")
    assert backend.start_trials([alive, stale]) == range(RUNNING_ID, KILLED_ID + 1)
    recorded = TrialStart({"i": 0}, 1, NOW - 900, NOW - 900, 10.0, "host:3")
    backend.beat_trials([STARTED_AND_RECORDED_ID], NOW)  # a recorded trial's heartbeat is ignored
    if type(backend).__name__ == "LocalBackend":  # a start left beside its record (a batch cut short)
        connection = sqlite3.connect(Path(backend.reopen_arguments()[0]) / f"{ex.id}.sqlite3")
        with connection:
            connection.execute(
                "INSERT INTO trial_starts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (STARTED_AND_RECORDED_ID, serialization.to_text(dict(recorded.parameters)), 1,
                 recorded.started, recorded.heartbeat, 10.0, "host:3", None),
            )
        connection.close()


def tables(ex: Experiment, verbose: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The history read as columns, and the same history made from records."""
    backend = ex.backend
    starts = backend.load_starts()
    annotations = backend.load_annotations()
    new = history_frame(backend.load_trial_columns(), verbose=verbose, starts=starts, now=NOW, annotations=annotations)
    old = history_frame(backend.load_trials(), verbose=verbose, starts=starts, now=NOW, annotations=annotations)
    return new, old


def check_rows(frame: pd.DataFrame, statuses: dict[int, str]) -> None:
    """Rows checked against what each trial recorded."""
    assert frame.loc[list(statuses), "Status"].tolist() == list(statuses.values())
    for trial_id, status in statuses.items():
        row = frame.loc[trial_id]
        assert row["Success"] == (status == "finished")
        if status != "finished":
            assert isinstance(row["Result"], float) and math.isnan(row["Result"])
        elif trial_id < 1000:
            index = int(row["i"])  # a float column: the damaged trial has no parameter i
            assert same(row["Result"], VALUES[index]), (trial_id, row["Result"], VALUES[index])
            if not isinstance(row["Sweep"], str):
                assert same(row["p"], VALUES[index]), (trial_id, row["p"], VALUES[index])
            else:
                assert row["p"] in (1, 2) and row["i"] in (0, 3, 5) and row["k"] == 7
    assert frame.loc[2, "Note"] == 'the first, "quoted" note' and frame.loc[3, "Tags"] == "baseline, lr-sweep"
    assert frame.loc[1, "Note"] == frame.loc[1, "Tags"] == ""
    assert frame.loc[RUNNING_ID, "Status"] == "running" and frame.loc[KILLED_ID, "Status"] == "killed"
    assert frame.loc[RUNNING_ID, "new"] == 1.5 and frame.loc[KILLED_ID, "Sweep"] == "sweep-x"
    assert frame.loc[KILLED_ID, "Description"].startswith("killed: process host:2 stopped marking it alive")
    assert frame.loc[STARTED_AND_RECORDED_ID, "Status"] == "finished"
    assert frame.loc[1001, "p"] == [1001, "x"] and frame.loc[1003, "Result"] == Fraction(1003, 2)
    assert frame.loc[1002, "Status"] == "failed" and frame.loc[1002, "Description"] == "RuntimeError(old)"
    assert frame.loc[DAMAGED_ID, UNREADABLE_PARAMETERS] == [1, 2]
    assert isinstance(frame.loc[DAMAGED_ID, "Result"], UnreadableValue)
    assert pd.isna(frame.loc[RUNNING_ID, "Finished"]) and pd.isna(frame.loc[KILLED_ID, "Process Time"])


def test_the_history_read_as_columns_is_the_table_of_the_records(
    make_experiment: Callable[..., Experiment], store: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    ex = make_experiment(**({} if store == "local" else {"backend": request.getfixturevalue(f"{store}_uri")}))
    statuses = make_history(ex)
    assert len(statuses) > 45 and "interrupted" in statuses.values() and "failed" in statuses.values()
    write_old_trials(ex, store)
    start_trials(ex)
    statuses.update({1001: "finished", 1002: "failed", 1003: "finished", DAMAGED_ID: "finished"})
    with trusting(Trust.OLD_PICKLES):  # the earlier daskperiment's pickles loaded, as `migrate` does
        for verbose in (False, True):
            new, old = tables(ex, verbose)
            assert_same_table(new, old)
            check_rows(new, statuses)
            assert ("Seed" in new.columns) == ("Result Type" in new.columns) == verbose
            assert new.columns.tolist()[:5] == ["i", "p", "k", UNREADABLE_PARAMETERS, "new"]
            assert {"Sweep", "Cached", "Note", "Tags"} <= set(new.columns)
        assert_same_table(ex.get_history(verbose=True).drop(columns=["Status", "Description"]),
                          new.drop(columns=["Status", "Description"]))  # the experiment's own reads (now: this moment)
    cached = new["Cached"].tolist()
    assert cached[0] == "" and any(text.startswith("prepare (trial ") for text in cached)
    new, old = tables(ex, verbose=True)  # pickles of the earlier daskperiment not loaded: placeholders
    assert_same_table(new, old)
    assert new.loc[1001, "p"] == [1001, "x"] and new.loc[1001, "Result"] == 500.5  # plain types load
    assert isinstance(new.loc[1003, "Result"], UnreadableValue) and "fractions.Fraction" in repr(new.loc[1003, "Result"])
    with trusting(Trust.NONE):  # what the dashboard reads: signed pickles shown, never loaded
        new, old = tables(ex, verbose=True)
    assert_same_table(new, old)
    fraction = next(n for n, v in enumerate(VALUES) if type(v) is Fraction)
    row = new.index[(new["i"] == fraction) & (new.index < 1000)][0]
    assert repr(new.loc[row, "Result"]) == "<pickled fractions.Fraction>"
    monkeypatch.setenv("DASKPERIMENT_SIGNING_KEY", "another-teams-key-1234")  # signed with another key
    new, old = tables(ex, verbose=False)
    assert_same_table(new, old)
    assert "signature" in new.loc[row, "Result"].reason or "key" in new.loc[row, "Result"].reason


def test_columns_of_an_empty_store_and_of_records(make_experiment: Callable[..., Experiment], store: str,
                                                  request: pytest.FixtureRequest) -> None:
    ex = make_experiment(**({} if store == "local" else {"backend": request.getfixturevalue(f"{store}_uri")}))
    columns = ex.backend.load_trial_columns()
    assert len(columns) == 0 and columns == TrialColumns.of([])
    assert_same_table(history_frame(columns, verbose=True), history_frame([], verbose=True))
    n = ex.parameter("n")

    @ex.result
    def square(n):
        return n * n

    for value in range(30):
        ex.run(square(n), n=value, scheduler="sync")
    columns = ex.backend.load_trial_columns()
    assert columns == TrialColumns.of(ex.backend.load_trials())
    assert columns.trial_ids == list(range(1, 31)) and columns.results == [v * v for v in range(30)]
    assert columns.parameters == [{"n": v} for v in range(30)] and set(columns.statuses) == {"finished"}
    history = ex.get_history()
    assert history["n"].tolist() == list(range(30)) and history["Result"].tolist() == [v * v for v in range(30)]
    assert history["Finished"].is_monotonic_increasing and (history["Process Time"] >= pd.Timedelta(0)).all()
    assert abs(history["Finished"].iloc[-1] - datetime.datetime.now()) < datetime.timedelta(minutes=5)
