"""A bad record never breaks an experiment: unprintable errors and results, metrics the stores cannot hold."""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np
import pytest

from daskperiment import Experiment, MetricError


@pytest.fixture(params=["local", "redis", "mongo"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Keyword arguments of ``make_experiment`` for each kind of store."""
    if request.param == "local":
        return {}
    return {"backend": request.getfixturevalue(f"{request.param}_uri")}


# -- errors and results that cannot be shown ------------------------------------------------------
class UnprintableError(Exception):
    """An error whose ``str()`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("str() of this error is broken")


class UnrepresentableError(Exception):
    """An error whose ``str()`` and ``repr()`` raise."""

    def __str__(self) -> str:
        raise RuntimeError("str() of this error is broken")

    def __repr__(self) -> str:
        raise RuntimeError("repr() of this error is broken")


class Unusable:
    """A result that neither pickles nor has a ``repr()``."""

    def __reduce__(self) -> Any:
        raise RuntimeError("cannot pickle this")

    def __repr__(self) -> str:
        raise RuntimeError("repr() of this result is broken")


KINDS = ("value", "unprintable", "unrepresentable", "unusable", "plain")
EXPECTED = {
    "value": (True, None),
    "unprintable": (False, "UnprintableError(<test_bad_records.UnprintableError object: str() raised RuntimeError>)"),
    "unrepresentable": (
        False, "UnrepresentableError(<test_bad_records.UnrepresentableError object: str() raised RuntimeError>)"
    ),
    "unusable": (True, None),
    "plain": (False, "ValueError(bad input 4)"),
}


def test_unprintable_errors_and_results_are_recorded_and_reraised(
    make_experiment: Callable[..., Experiment], store: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="daskperiment")
    ex = make_experiment(**store)
    n = ex.parameter("n")
    raised: dict[int, BaseException] = {}

    @ex.result
    def train(n: int) -> Any:
        ex.save_metric("loss", 0, float(n))
        kind = KINDS[n % len(KINDS)]
        if kind == "value":
            return n * 10
        if kind == "unusable":
            return Unusable()
        error = {"unprintable": UnprintableError, "unrepresentable": UnrepresentableError}.get(kind)
        raised[n] = error() if error else ValueError(f"bad input {n % len(KINDS)}")
        raise raised[n]

    trials = range(1, 31)
    for value in trials:
        kind = KINDS[value % len(KINDS)]
        if EXPECTED[kind][0]:
            result = ex.run(train(n), n=value)
            assert result == value * 10 if kind == "value" else isinstance(result, Unusable)
            continue
        with pytest.raises(Exception) as failure:
            ex.run(train(n), n=value)
        assert failure.value is raised[value]  # the original exception, re-raised

    history = ex.get_history(verbose=True)
    assert history.index.tolist() == list(trials)
    for value in trials:
        row = history.loc[value]
        kind = KINDS[value % len(KINDS)]
        success, description = EXPECTED[kind]
        assert row["n"] == value and row["Success"] == success
        assert (description is None and np.isnan(row["Description"])) or row["Description"] == description
        if kind == "value":
            assert row["Result"] == value * 10
        if kind == "unusable":
            assert row["Result"] == "<test_bad_records.Unusable object: repr() raised RuntimeError>"
            assert row["Result Type"] == "<class 'test_bad_records.Unusable'>"
    assert ex.load_metric("loss", list(trials)).loc[0].tolist() == [float(v) for v in trials]
    failures = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert failures.count(f"Experiment failed: {EXPECTED['unprintable'][1]}") == 6
    assert failures.count(f"Experiment failed: {EXPECTED['unrepresentable'][1]}") == 6


# -- metric points the stores cannot hold ----------------------------------------------------------
REFUSED_POINTS = [  # (key, epoch, value), what the error says
    ("loss", 2**63, 1.0, "epochs are stored as 64-bit integers"),
    ("loss", -(2**63) - 1, 1.0, "epochs are stored as 64-bit integers"),
    ("loss", np.uint64(2**64 - 1), 1.0, "epochs are stored as 64-bit integers"),
    ("loss", float("nan"), 1.0, "use an integer"),
    ("loss", float("inf"), 1.0, "use an integer"),
    ("loss", "3", 1.0, "use an integer"),
    ("loss", 1, 10**30, "integer values are stored exactly up to 2**53"),
    ("loss", 1, 2**53 + 1, "integer values are stored exactly up to 2**53"),
    ("loss", 1, np.int64(-(2**63)), "integer values are stored exactly up to 2**53"),
    ("loss", 1, 1 + 2j, "use a real number"),
    ("loss", 1, "0.5", "use a real number"),
    ("loss", 1, None, "use a real number"),
    ("loss", 1, True, "use a real number"),
    ("loss", 1, __import__("fractions").Fraction(10**400, 3), "does not convert to a float"),
    ("lo\ud800ss", 1, 1.0, "lone surrogate"),
    ("lo\x00ss", 1, 1.0, "NUL character"),
    ("", 1, 1.0, "non-empty str"),
    (None, 1, 1.0, "non-empty str"),
]


def test_metric_points_the_stores_cannot_hold_are_refused_at_the_call(
    make_experiment: Callable[..., Experiment], store: dict[str, Any]
) -> None:
    ex = make_experiment(**store)
    n = ex.parameter("n")
    messages: dict[int, list[str]] = {}

    @ex.result
    def train(n: int) -> int:
        ex.save_metric("loss", 0, 0.5 * n)
        messages[n] = []
        for key, epoch, value, _ in REFUSED_POINTS:
            with pytest.raises(MetricError) as refused:
                ex.save_metric(key, epoch, value)
            messages[n].append(str(refused.value))
        ex.save_metric("loss", 1, 0.25 * n)
        ex.save_metric("steps", 2**63 - 1, -(2**53))  # the limits themselves are stored
        ex.save_metric("損失", -(2**63), float("inf"))
        if n % 4 == 0:
            ex.save_metric("loss", 2, 10**19)  # not handled: the trial fails, recorded as failed
        return n

    trials = range(1, 25)
    for value in trials:
        if value % 4:
            assert ex.run(train(n), n=value) == value
        else:
            with pytest.raises(MetricError, match="'loss'.*stored exactly up to 2"):
                ex.run(train(n), n=value)
        for message, (key, _, _, expected) in zip(messages[value], REFUSED_POINTS):
            assert expected in message and (key in (None, "") or repr(key) in message), message

    history = ex.get_history()
    assert history.index.tolist() == list(trials)
    assert history["n"].tolist() == list(trials)
    assert history["Success"].tolist() == [bool(v % 4) for v in trials]
    for value in trials:
        if value % 4 == 0:
            assert "MetricError(invalid value 10000000000000000000 for metric 'loss'" in history.loc[value, "Description"]
    loss = ex.load_metric("loss", list(trials))
    assert loss.index.tolist() == [0, 1]
    assert loss.loc[0].tolist() == [0.5 * v for v in trials] and loss.loc[1].tolist() == [0.25 * v for v in trials]
    steps = ex.load_metric("steps", list(trials))
    assert steps.index.tolist() == [2**63 - 1] and steps.loc[2**63 - 1].tolist() == [-(2**53)] * len(trials)
    assert ex.load_metric("損失", list(trials)).loc[-(2**63)].tolist() == [float("inf")] * len(trials)
