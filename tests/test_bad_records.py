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
