"""daskperiment 0.5's documented quickstart and tips, call by call: types, formats and errors.

The outputs checked here are those 0.5's published docs show (see the
project's shared notes on 0.5's behaviour).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import daskperiment
from daskperiment import Experiment


@pytest.fixture
def quickstart(tmp_path: Path) -> Experiment:
    """0.5's quickstart experiment, on a store of its own."""
    return Experiment("quickstart_pj", backend=tmp_path / "store")


def test_quickstart_history_formats(quickstart: Experiment) -> None:
    ex = quickstart
    a = ex.parameter("a")
    b = ex.parameter("b")

    @ex
    def prepare_data(a, b):
        return a + b

    @ex.result
    def calculate_score(s):
        return 10 / s

    s = calculate_score(prepare_data(a, b))
    assert re.fullmatch(r"Delayed\('calculate_score-[0-9a-f-]+'\)", repr(s))

    ex.set_parameters(a=1, b=2)
    assert s.compute(seed=11) == 3.3333333333333335
    ex.set_parameters(b=3)
    assert s.compute(seed=12) == 2.5
    assert ex.get_parameters(trial_id=1) == {"a": 1, "b": 2}
    assert ex.get_parameters(trial_id=2) == {"a": 1, "b": 3}

    history = ex.get_history()
    assert list(history.columns) == [
        "a", "b", "Result", "Success", "Finished", "Process Time", "Description", "Status"
    ]
    assert history["Description"].dtype == np.float64 and history["Description"].isna().all()
    assert pd.api.types.is_timedelta64_dtype(history["Process Time"])

    ex.set_parameters(a=1, b=-1)
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        s.compute(seed=13)
    verbose = ex.get_history(verbose=True)
    assert list(verbose.columns) == [
        "a", "b", "Seed", "Result", "Result Type", "Success", "Finished", "Process Time",
        "Description", "Status",
    ]
    assert verbose["Seed"].tolist() == [11, 12, 13]
    assert verbose["Result Type"].tolist() == ["<class 'float'>", "<class 'float'>", "None"]
    assert verbose["Success"].tolist() == [True, True, False]
    assert verbose["Status"].tolist() == ["finished", "finished", "failed"]
    assert verbose.loc[3, "Description"] == "ZeroDivisionError(division by zero)"
    assert verbose["Result"].dtype == np.float64 and np.isnan(verbose.loc[3, "Result"])
    assert pd.isna(verbose.loc[1, "Description"]) and pd.isna(verbose.loc[2, "Description"])


def test_result_type_of_other_types(ex: Experiment) -> None:
    @ex.result
    def count():
        return np.int64(3)

    count().compute()
    assert ex.get_history(verbose=True)["Result Type"].tolist() == ["<class 'numpy.int64'>"]


def test_failed_result_is_nan_whatever_the_other_results(ex: Experiment) -> None:
    from daskperiment.board.query import cell_text

    n = ex.parameter("n")

    @ex.result
    def label(n):
        return "x" * (10 // n)

    for value in (1, 0, 2):
        ex.set_parameters(n=value)
        try:
            label(n).compute()
        except ZeroDivisionError:
            pass
    history = ex.get_history(verbose=True)
    assert history.loc[1, "Result"] == "x" * 10 and history.loc[3, "Result"] == "xxxxx"
    assert isinstance(history.loc[2, "Result"], float) and np.isnan(history.loc[2, "Result"])
    assert history.loc[2, "Result Type"] == "None"
    assert cell_text(history.loc[2, "Result"]) == ""  # the dashboard's cell of a failed trial


def test_errors_are_importable_from_core_errors() -> None:
    from daskperiment.core import errors as core_errors

    assert core_errors.TrialIDNotFoundError is daskperiment.errors.TrialIDNotFoundError
    assert core_errors.LockedTrialError is daskperiment.errors.LockedTrialError
    for name in core_errors.__all__:
        assert getattr(core_errors, name) is getattr(daskperiment.errors, name)


def test_unknown_trial_id_is_a_value_error(ex: Experiment) -> None:
    from daskperiment.core.errors import TrialIDNotFoundError

    with pytest.raises(ValueError, match=r"^Unable to find trial id: 4\. .*has no trial yet") as raised:
        ex.get_parameters(trial_id=4)
    assert isinstance(raised.value, TrialIDNotFoundError) and isinstance(raised.value, KeyError)
    with pytest.raises(ValueError, match=r"^Unable to find trial id: 'x'\. .*positive integers"):
        ex.get_code(trial_id="x")


def test_parameter_errors_are_value_errors(ex: Experiment) -> None:
    a = ex.parameter("a")
    ex.parameter("c")

    @ex.result
    def double(a, c):
        return 2 * a + c

    with pytest.raises(ValueError, match=r"^Parameter is not declared: z\. .*ex.parameter\('z'\)") as raised:
        ex.set_parameters(z=1)
    assert isinstance(raised.value, daskperiment.ParameterNotDefinedError)
    with pytest.raises(ValueError, match=r"^Parameters are not defined: \['a', 'c'\]\. .*set_parameters\(a=") as raised:
        double(a, ex.parameter("c")).compute()
    assert isinstance(raised.value, daskperiment.ParameterUndefinedError)


def test_bad_experiment_id_and_metric_key_messages(ex: Experiment) -> None:
    with pytest.raises(ValueError, match=r"^Experiment ID must be .*invalid experiment id 'a b'"):
        Experiment("a b")

    @ex.result
    def bad_metric():
        ex.save_metric("", epoch=0, value=1.0)

    with pytest.raises(ValueError, match=r"^Metric name must be a non-empty str: invalid metric key ''"):
        bad_metric().compute()


@pytest.mark.parametrize(
    "uri", ["mongodb://localhost:27017", "mongodb://:27017/db", "redis://localhost:port/0", "redis://h/x"]
)
def test_bad_server_uri_is_a_value_error(uri: str) -> None:
    from daskperiment.core.errors import BackendError

    with pytest.raises(ValueError) as raised:
        Experiment("uri_check", backend=uri)
    assert isinstance(raised.value, BackendError)


def test_trial_id_inside_a_running_step_is_locked(ex: Experiment) -> None:
    from daskperiment.core.errors import LockedTrialError

    @ex.result
    def peek():
        return ex.trial_id

    with pytest.raises(LockedTrialError, match="cannot be referred during a trial execution.*current_trial_id"):
        peek().compute()
    assert ex.trial_id == 1  # the failed trial is recorded; outside a step it reads fine
    assert ex.get_history()["Description"].tolist()[0].startswith("LockedTrialError(")


def test_current_trial_id_outside_a_trial(ex: Experiment) -> None:
    from daskperiment.core.errors import TrialIDNotFoundError

    with pytest.raises(TrialIDNotFoundError, match="only available inside a step"):
        ex.current_trial_id  # noqa: B018



def test_parameter_repr_shows_value_and_type(ex: Experiment) -> None:
    a = ex.parameter("a")
    assert repr(a) == "Parameter(a: Undefined)"
    ex.set_parameters(a=1)
    assert repr(a) == "Parameter(a: 1<class 'int'>)"
    assert repr(ex.parameter("lr", default=0.5)) == "Parameter(lr: 0.5<class 'float'>)"


def test_a_parameter_no_step_uses_is_recorded_per_trial(ex: Experiment) -> None:
    a = ex.parameter("a")
    ex.parameter("user_name")
    ex.parameter("never_set")

    @ex.result
    def double(a):
        return 2 * a

    ex.set_parameters(a=1, user_name="my_name")
    assert double(a).compute() == 2
    assert ex.get_parameters(trial_id=1) == {"a": 1, "user_name": "my_name"}
    assert ex.run(double(a), a=5, user_name="other") == 10
    assert ex.get_parameters(trial_id=2) == {"a": 5, "user_name": "other"}
    ex.sweep(double(a), {"a": [7]})
    assert ex.get_parameters(trial_id=3) == {"a": 7, "user_name": "my_name"}
    assert ex.get_history()["user_name"].tolist() == ["my_name", "other", "my_name"]


def test_integer_metrics_load_as_int64(ex: Experiment) -> None:
    a = ex.parameter("a")

    @ex(cache=True)
    def prepare(a):
        ex.save_metric("size", epoch=0, value=a * 10)  # replayed when loaded from the step cache
        return a

    @ex.result
    def score(s):
        for i in range(3):
            ex.save_metric("count", epoch=i, value=np.int64(i * s))
            ex.save_metric("mixed", epoch=i, value=i if i else 0.5)
        return s

    for value in (1, 2, 1):
        ex.set_parameters(a=value)
        score(prepare(a)).compute()
    counts = ex.load_metric("count", trial_id=[1, 2])
    assert counts.dtypes.tolist() == [np.int64, np.int64]
    assert counts[2].tolist() == [0, 2, 4]
    assert ex.load_metric("mixed", trial_id=1)[1].dtype == np.float64
    assert ex.get_history().loc[3, "Cached"] == "prepare (trial 1)"
    sizes = ex.load_metric("size", trial_id=[1, 3])
    assert sizes.dtypes.tolist() == [np.int64, np.int64] and sizes.loc[0].tolist() == [10, 10]


def test_metric_keywords_of_05(ex: Experiment) -> None:
    a = ex.parameter("a")

    @ex.result
    def calculate_score(a):
        for i in range(100):
            ex.save_metric(metric_key="dummy_score", epoch=i, value=10 / a + i)
        ex.save_metric("other", epoch=0, value=1.5)
        return 10 / a

    for value in (3, 7):
        ex.set_parameters(a=value)
        calculate_score(a).compute()
    one = ex.load_metric("dummy_score", trial_id=1)
    assert one.index.name == "Epoch" and one.columns.name == "Trial ID" and list(one.columns) == [1]
    assert list(one.index) == list(range(100)) and one.loc[0, 1] == 10 / 3
    both = ex.load_metric(metric_key="dummy_score", trial_id=[1, 2])
    assert list(both.columns) == [1, 2] and both.loc[99, 2] == 10 / 7 + 99
    with pytest.raises(TypeError, match="got the metric key twice"):
        ex.load_metric("dummy_score", trial_id=1, metric_key="dummy_score")
    with pytest.raises(TypeError, match="needs a metric key and a trial id"):
        ex.load_metric(metric_key="dummy_score")


def test_load_metric_of_a_trial_without_that_metric(ex: Experiment) -> None:
    from daskperiment.core.errors import TrialIDNotFoundError

    @ex.result
    def saves(flag):
        if flag:
            ex.save_metric("loss", 0, 0.5)
        return flag

    saves(True).compute()
    saves(False).compute()
    with pytest.raises(TrialIDNotFoundError, match=r"^Unable to find trial id: 2\. "):
        ex.load_metric("loss", trial_id=2)
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        ex.load_metric("nope", trial_id=1)


def test_environment_text_of_05(ex: Experiment) -> None:
    @ex.result
    def one():
        return 1

    one().compute()
    summary = ex.get_environment()
    assert isinstance(summary, str)
    labels = [line.split(":", 1)[0] for line in summary.splitlines()]
    for label in ("Platform Information", "Device CPU Count", "Python Version", "Python venv"):
        assert label in labels, label
    assert any(label.startswith("Git ") for label in labels)
    for category in ("platform", "cpu", "python", "requirements", "git", "numpy", "scipy", "pandas", "conda"):
        text = ex.get_environment(trial_id=1, category=category)
        assert isinstance(text, str) and text, category
    packages = ex.get_python_packages()
    assert isinstance(packages, str) and "pandas==" in packages


def test_local_backend_attributes_of_05(tmp_path: Path) -> None:
    ex = Experiment("local_attrs", backend=Path("my_dir"))
    assert repr(ex.backend) == "LocalBackend('my_dir')"
    assert ex.backend.cache_dir == (tmp_path / "my_dir").absolute()
    assert ex.backend.code_dir == ex.backend.cache_dir / "code"


def test_redis_backend_attributes_of_05(redis_uri: str) -> None:
    import redis

    ex = Experiment("redis_uri_backend", backend=redis_uri)
    assert repr(ex) == f"Experiment(id: redis_uri_backend, trial_id: 0, backend: RedisBackend('{redis_uri}'))"
    assert ex.backend.uri == redis_uri
    assert isinstance(ex.backend.client, redis.Redis) and ex.backend.client.ping()
    assert ex.backend.pool is ex.backend.client.connection_pool
    pool = redis.ConnectionPool.from_url(redis_uri)
    pooled = Experiment("redis_pool_backend", backend=pool)
    assert pooled.backend.pool is pool and pooled.backend.uri == redis_uri
    pool.disconnect()
    from daskperiment.backend import open_backend

    with_password = open_backend("redis://alice:s3cret@127.0.0.1:6399/0", "x")  # connects when used
    assert with_password.uri == "redis://alice:***@127.0.0.1:6399/0"


def test_mongo_backend_attributes_of_05(mongo_uri: str) -> None:
    import pymongo

    ex = Experiment("mongo_uri_backend", backend=mongo_uri)
    assert repr(ex.backend) == f"MongoBackend('{mongo_uri}')"
    assert ex.backend.uri == mongo_uri
    assert ex.backend.dbname == mongo_uri.rsplit("/", 1)[1]
    assert isinstance(ex.backend.client, pymongo.MongoClient)
    assert ex.backend.client[ex.backend.dbname].name == ex.backend.dbname
