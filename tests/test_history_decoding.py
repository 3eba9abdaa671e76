"""Reading a history back gives every value as it was recorded, on every store.

Histories are decoded in bulk (plain JSON taken as it is, tagged values
walked, Redis documents parsed as one array): each row must still come back
exactly as its trial recorded it, whatever its values look like.
"""

from __future__ import annotations

import datetime
import json
import math
import pickle
from fractions import Fraction
from typing import Any, Callable

import numpy as np
import pytest

from daskperiment import Experiment, serialization

VALUES: list[Any] = [
    0, -1, 2**62, 2**70, -(2**80), 0.5, float("nan"), float("inf"), -float("inf"), -0.0, 1e-300,
    "", "plain", '"@not a tag"', "@at the start", '{"@tuple": [1, 2]}', "\\u0040tuple", "ünïcødé ✓",
    'quote " and @', None, True, False, [1, "@x", None], {"@key": 1}, {"k": "@v"}, {"$where": 1},
    {"": 0}, {1: "int key"}, (1, 2), (), ((1,), [2, (3,)]), {"a": {"b": [1, (2, 3)]}}, b"bytes\x00",
    datetime.datetime(2024, 1, 2, 3, 4, 5), datetime.date(2024, 1, 2), np.float32(0.5), np.int64(-3),
    np.arange(6).reshape(2, 3), np.complex128(1 + 2j), Fraction(1, 3), [float("nan"), {"x": (1,)}],
]
"""Values a trial records, plain or not (each trial records one as its result and as parameter ``p``)."""


@pytest.fixture(params=["local", "redis", "mongo"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Keyword arguments of ``make_experiment`` for each kind of store."""
    if request.param == "local":
        return {}
    return {"backend": request.getfixturevalue(f"{request.param}_uri")}


def same(got: Any, expected: Any) -> bool:
    """Equal, of the same type, all the way down (NaN equal to NaN)."""
    if type(got) is not type(expected):
        return False
    if isinstance(expected, np.ndarray):
        return got.dtype == expected.dtype and np.array_equal(got, expected)
    if isinstance(expected, float):
        return (math.isnan(got) and math.isnan(expected)) or (got == expected and math.copysign(1, got) == math.copysign(1, expected))
    if isinstance(expected, (list, tuple)):
        return len(got) == len(expected) and all(same(g, e) for g, e in zip(got, expected))
    if isinstance(expected, dict):
        return list(got) == list(expected) and all(same(got[k], expected[k]) for k in expected)
    return bool(got == expected)


def record_values(ex: Experiment) -> dict[int, int]:
    """One trial per value (and two failed trials); returns trial id -> index into VALUES (-1: failed)."""
    i, p = ex.parameter("i"), ex.parameter("p")

    @ex.result
    def echo(i, p):
        if i < 0:
            raise ValueError(f"bad input {i}")
        return VALUES[i]

    recorded = {}
    for index in [*range(len(VALUES)), -1, -2]:
        try:
            ex.run(echo(i, p), i=index, p=VALUES[index] if index >= 0 else index, scheduler="sync")
        except ValueError:
            pass
        recorded[ex.trial_id] = index
    return recorded


def check_history(ex: Experiment, recorded: dict[int, int]) -> None:
    history = ex.get_history(verbose=True)
    assert history.index.tolist() == sorted(recorded)
    for trial_id, index in recorded.items():
        row = history.loc[trial_id]
        if index < 0:
            assert not row["Success"] and row["Description"] == f"ValueError(bad input {index})"
            assert math.isnan(row["Result"]) and row["p"] == index and row["Result Type"] == "None"
            continue
        assert row["Success"] and isinstance(row["Description"], float) and math.isnan(row["Description"])
        assert same(row["Result"], VALUES[index]), (trial_id, row["Result"], VALUES[index])
        assert same(row["p"], VALUES[index]), (trial_id, row["p"], VALUES[index])
        assert row["i"] == index and row["Result Type"] == f"<class '{serialization.type_name(VALUES[index])}'>"
        parameters = ex.get_parameters(trial_id)
        assert list(parameters) == ["i", "p"] and same(parameters["p"], VALUES[index])


def test_every_value_reads_back_as_recorded(make_experiment: Callable[..., Experiment], store: dict[str, Any]) -> None:
    ex = make_experiment(**store)
    recorded = record_values(ex)
    check_history(ex, recorded)
    check_history(make_experiment(ex.id, **store), recorded)  # read again, as another session would


def test_a_redis_history_mixing_older_documents_reads_every_trial(
    make_experiment: Callable[..., Experiment], redis_uri: str
) -> None:
    import redis

    ex = make_experiment(backend=redis_uri)
    recorded = record_values(ex)
    client = redis.Redis.from_url(redis_uri)
    key = f"daskperiment:{ex.id}:trials"
    older = {t: index for t, index in recorded.items() if index in (0, 5, 11, 12)}  # plain values
    for trial_id, index in older.items():  # as daskperiment stored them before format 2: a pickled document
        document = json.loads(client.hget(key, trial_id))
        document.update(format=1, parameters=pickle.dumps({"i": index, "p": VALUES[index]}),
                        result=pickle.dumps(VALUES[index]))
        client.hset(key, trial_id, pickle.dumps(document))
        client.zremrangebyscore(f"daskperiment:{ex.id}:history", trial_id, trial_id)  # nor a history row
    client.close()
    check_history(ex, recorded)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a":1,"b":[2,"@"]}', {"a": 1, "b": [2, "@"]}),
        ('"\\"@x"', '"@x'),
        ('{"@tuple":[1,2]}', (1, 2)),
        ('{"\\u0040tuple":[1,2]}', (1, 2)),  # an escaped tag is a tag, as JSON reads it
        ('[{"x":{"@int":"0x10"}}]', [{"x": 16}]),
        ('{"k":"\\u0040tuple"}', {"k": "@tuple"}),
    ],
)
def test_plain_and_tagged_texts_read_as_json_says(text: str, expected: Any) -> None:
    assert same(serialization.from_text(text), expected)
    assert serialization.is_plain_text(text) == ('"@' not in text and '"\\u0040' not in text)


EPOCHS = [0, 1, -5, 2**62, 1, 7, 3]  # epoch 1 twice: both points kept, the later one shown
REALS = [0.5, float("nan"), float("inf"), -float("inf"), -0.0, 1e-300, 2.0**53]


def test_every_metric_point_reads_back_as_saved(make_experiment: Callable[..., Experiment], store: dict[str, Any]) -> None:
    ex = make_experiment(**store)
    n = ex.parameter("n")

    @ex.result
    def train(n):
        for epoch, value in zip(EPOCHS, REALS):
            ex.save_metric("real", epoch, value + n if value == value else value)
            ex.save_metric("count", epoch, n * 1000 + epoch % 1000)  # ints only: an int64 table
        return n

    trials = {ex.run(train(n), n=value, scheduler="sync"): value for value in range(1, 13)}
    trial_ids = sorted(trials)
    assert trial_ids == list(range(1, 13))
    order = sorted(range(len(EPOCHS)), key=lambda i: EPOCHS[i])  # by epoch, then as saved
    for key in ("real", "count"):
        series = ex.backend.load_metrics(key, trial_ids)
        expected = [
            (t, EPOCHS[i], REALS[i] + trials[t] if key == "real" and REALS[i] == REALS[i] else
             REALS[i] if key == "real" else trials[t] * 1000 + EPOCHS[i] % 1000)
            for t in trial_ids for i in order
        ]
        assert series.trial_ids.dtype == series.epochs.dtype == np.int64 and series.values.dtype == np.float64
        assert series.integer == (key == "count")
        assert [(int(t), int(e)) for t, e in zip(series.trial_ids, series.epochs)] == [(t, e) for t, e, _ in expected]
        assert all(same(float(v), float(x)) for v, (_, _, x) in zip(series.values, expected))
    table = ex.load_metric("real", trial_ids)
    assert table.index.tolist() == sorted(set(EPOCHS)) and table.columns.tolist() == trial_ids
    assert table.loc[1].tolist() == [REALS[4] + t for t in trial_ids]  # the later point of epoch 1
    assert all(same(float(v), float("inf")) for v in table.loc[-5])
    counts = ex.load_metric("count", trial_ids)
    assert counts.dtypes.tolist() == [np.dtype("int64")] * 12
    assert counts.loc[2**62].tolist() == [t * 1000 + 2**62 % 1000 for t in trial_ids]
