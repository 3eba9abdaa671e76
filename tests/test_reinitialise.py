"""``Experiment(id, ...)`` re-initialises an open experiment, as daskperiment 0.5 did.

The backend given now is used; parameters and steps start empty; steps and
trial graphs of the replaced definition refuse to run (they would record into
a store the user switched away from, or with parameters and code that were
reset); dask workers unpickling an experiment get the open one unchanged.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from daskperiment import Experiment, ExperimentReinitializedError
from daskperiment.core.errors import ExperimentReinitializedError as CoreReinitializedError


def define(ex: Experiment):
    """Parameter ``a`` and result step ``double``; returns both."""
    a = ex.parameter("a")

    @ex.result
    def double(a):
        return 2 * a

    return a, double


def test_another_backend_switches_and_resets(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ex = Experiment("switch", backend=tmp_path / "one")
    a, double = define(ex)
    ex.set_parameters(a=1)
    assert double(a).compute(seed=1) == 2
    pending = double(a)  # a trial graph built before the switch
    caplog.set_level(logging.INFO, logger="daskperiment")

    assert Experiment("switch", backend=tmp_path / "two") is ex

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("Experiment 'switch' re-initialised with backend LocalBackend(" in w
               and "parameters and steps were reset" in w for w in warnings)
    assert repr(ex.backend) == f"LocalBackend('{tmp_path / 'two'}')"
    assert ex.get_parameters() == {} and ex.get_code() == ""
    assert ex.get_history().empty
    with pytest.raises(ExperimentReinitializedError, match="decorate the steps again"):
        pending.compute()
    with pytest.raises(ExperimentReinitializedError, match=r"with backend LocalBackend\('.*two'\)"):
        double(a)
    with pytest.raises(ExperimentReinitializedError):
        ex.sweep(pending, grid={"a": [1, 2]})
    assert ex.get_history().empty  # nothing ran in the new store...
    old = Experiment("switch", backend=tmp_path / "one")  # ...nor in the old one
    assert old.get_history()["Result"].tolist() == [2]


def test_new_steps_record_in_the_new_store(tmp_path: Path) -> None:
    ex = Experiment("moved", backend=tmp_path / "one")
    define(ex)
    Experiment("moved", backend=tmp_path / "two")
    a, double = define(ex)
    ex.set_parameters(a=5)
    assert double(a).compute(seed=1) == 10
    assert ex.get_history()["Result"].tolist() == [10]
    assert "def double(a):" in ex.get_code()


def test_same_backend_resets_parameters_and_code_and_keeps_history(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ex = Experiment("again", backend=tmp_path / "store", seed=3)
    a, double = define(ex)
    ex.set_parameters(a=1)
    double(a).compute()
    caplog.set_level(logging.INFO, logger="daskperiment")

    assert Experiment("again", backend=tmp_path / "store") is ex

    assert any(m.startswith("Experiment 'again' re-initialised: its parameters and steps were reset")
               for m in caplog.messages)
    assert ex.get_parameters() == {} and ex.get_code() == "" and ex.seed is None
    assert ex.get_history()["Result"].tolist() == [2]
    with pytest.raises(ExperimentReinitializedError, match="re-initialised by a later Experiment"):
        double(a).compute()
    a, double = define(ex)
    ex.set_parameters(a=4)
    assert double(a).compute() == 8
    assert ex.get_history()["Result"].tolist() == [2, 8]


def test_workers_unpickle_the_open_experiment_unchanged(tmp_path: Path) -> None:
    ex = Experiment("worker", backend=tmp_path / "store", seed=7)
    a, double = define(ex)
    ex.set_parameters(a=2)
    assert pickle.loads(pickle.dumps(ex)) is ex
    assert ex.get_parameters() == {"a": 2} and "def double" in ex.get_code() and ex.seed == 7
    assert double(a).compute() == 4


def test_error_is_importable_from_core_errors() -> None:
    assert CoreReinitializedError is ExperimentReinitializedError
    assert issubclass(ExperimentReinitializedError, RuntimeError)
