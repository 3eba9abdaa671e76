"""Metrics: saved inside steps, loaded as Epoch × Trial ID tables."""

from __future__ import annotations

import numpy as np
import pytest

from daskperiment import Experiment
from daskperiment.errors import MetricError, TrialIDNotFoundError


def train(ex: Experiment):
    lr = ex.parameter("lr")

    @ex.result
    def fit(lr):
        for epoch in range(5):
            ex.save_metric("loss", epoch=epoch, value=1.0 / (1 + lr * epoch))
        ex.save_metric("acc", epoch=0, value=np.float32(0.5))
        return lr

    return fit(lr)


def test_load_metric_of_one_and_several_trials(ex: Experiment) -> None:
    s = train(ex)
    for lr in (1.0, 2.0):
        ex.set_parameters(lr=lr)
        s.compute()
    one = ex.load_metric("loss", trial_id=1)
    assert one.index.name == "Epoch" and one.columns.name == "Trial ID"
    assert list(one.columns) == [1] and list(one.index) == [0, 1, 2, 3, 4]
    assert one[1].tolist() == pytest.approx([1 / (1 + e) for e in range(5)])
    both = ex.load_metric("loss", trial_id=[2, 1])
    assert list(both.columns) == [2, 1]
    assert both[2].tolist() == pytest.approx([1 / (1 + 2 * e) for e in range(5)])
    assert ex.load_metric("acc", trial_id=[1])[1].tolist() == [0.5]


def test_unknown_metric_key(ex: Experiment) -> None:
    s = train(ex)
    ex.set_parameters(lr=1.0)
    s.compute()
    with pytest.raises(MetricError, match="unknown metric 'los' .* saved metrics are 'acc', 'loss'"):
        ex.load_metric("los", trial_id=1)


def test_metric_of_a_trial_without_it_raises(ex: Experiment) -> None:
    s = train(ex)
    ex.set_parameters(lr=1.0)
    s.compute()

    @ex.result
    def other():
        return 0

    other().compute()
    with pytest.raises(TrialIDNotFoundError, match=r"^Unable to find trial id: 2\. .* saved no value of metric 'loss'"):
        ex.load_metric("loss", trial_id=[1, 2])
    assert ex.load_metric("loss", trial_id=[1])[1].notna().all()


def test_save_metric_outside_a_trial(ex: Experiment) -> None:
    with pytest.raises(TrialIDNotFoundError, match="save_metric is only available inside a step"):
        ex.save_metric("loss", 0, 1.0)


@pytest.mark.parametrize(
    ("key", "epoch", "value", "message"),
    [
        ("", 0, 1.0, "invalid metric key ''"),
        (3, 0, 1.0, "invalid metric key 3"),
        ("loss", 1.5, 1.0, "invalid epoch 1.5"),
        ("loss", 0, "high", "invalid value 'high'"),
        ("loss", 0, None, "invalid value None"),
    ],
)
def test_bad_metric_fails_the_step_clearly(ex: Experiment, key, epoch, value, message) -> None:
    @ex.result
    def step():
        ex.save_metric("ok", 0, 1.0)
        ex.save_metric(key, epoch, value)

    with pytest.raises(MetricError, match=message):
        step().compute()
    assert ex.get_history().loc[1, "Success"] == False  # noqa: E712
    assert ex.load_metric("ok", 1)[1].tolist() == [1.0]


def test_numpy_and_int_values_are_stored_as_floats(ex: Experiment) -> None:
    @ex.result
    def step():
        ex.save_metric("m", np.int64(0), 1)
        ex.save_metric("m", 1, np.float64(2.5))
        ex.save_metric("m", 2, float("nan"))
        ex.save_metric("m", 1, 3.0)  # saved again: the last value wins

    step().compute()
    values = ex.load_metric("m", 1)[1]
    assert values.iloc[:2].tolist() == [1.0, 3.0] and np.isnan(values.iloc[2])


def test_many_metrics_in_one_trial(ex: Experiment) -> None:
    @ex.result
    def step():
        for i in range(20_000):
            ex.save_metric("x", i, i / 2)
        return 1

    step().compute()
    frame = ex.load_metric("x", 1)
    assert len(frame) == 20_000 and frame[1].iloc[-1] == 19_999 / 2


COUNTS = """
import sys, pathlib, daskperiment
ex = daskperiment.Experiment(sys.argv[1], backend=pathlib.Path(sys.argv[2]), script_mode=False)
value = ex.parameter("value")


@ex.result
def count(value):
    ex.save_metric("count", 0, value)
    return value


for v in sys.argv[3:]:
    ex.run(count(value), value=float(v) if "." in v else int(v))
"""


def _counting(ex: Experiment):
    value = ex.parameter("value")

    @ex.result
    def count(value):
        ex.save_metric("count", 0, value)
        return value

    return count(value)


def test_a_metric_stays_int_until_any_process_saves_another_value(
    make_experiment, run_python, tmp_path
) -> None:
    ex = make_experiment("kinds")
    result = _counting(ex)
    for n in range(1, 13):
        assert ex.run(result, value=n) == n
    table = ex.load_metric("count", list(range(1, 13)))
    assert table.dtypes.tolist() == [np.dtype("int64")] * 12 and table.loc[0].tolist() == list(range(1, 13))
    other = run_python(COUNTS, "kinds", str(tmp_path / "store" / "kinds"), "13", "14.5", "15")
    assert other.returncode == 0, other.stderr
    for n in range(16, 28):  # ints again, from the process that knew the key as int
        assert ex.run(result, value=n) == n
    table = ex.load_metric("count", list(range(1, 28)))
    assert table.dtypes.tolist() == [np.dtype("float64")] * 27
    assert table.loc[0].tolist() == [*range(1, 14), 14.5, *range(15, 28)]
    fresh = make_experiment("kinds_here")  # one process: ints, then a float, then ints
    result = _counting(fresh)
    for value in [1, 2, 3.5, 4, 5]:
        fresh.run(result, value=value)
    assert fresh.load_metric("count", [1, 2, 3, 4, 5]).dtypes.tolist() == [np.dtype("float64")] * 5


def test_a_store_created_again_records_its_metric_kinds_again(make_experiment, tmp_path) -> None:
    import shutil

    ex = make_experiment("again")
    result = _counting(ex)
    for n in range(1, 11):
        ex.run(result, value=n)
    shutil.rmtree(tmp_path / "store" / "again")  # removed while open: created again at the next write
    for n in range(11, 21):
        ex.run(result, value=n)
    table = ex.load_metric("count", list(range(11, 21)))
    assert table.dtypes.tolist() == [np.dtype("int64")] * 10 and table.loc[0].tolist() == list(range(11, 21))
