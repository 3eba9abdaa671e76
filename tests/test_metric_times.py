"""Metric points keep the time of their ``save_metric`` call, on every store and scheduler.

Each step notes the clock just before and just after each call and returns
those pairs as its result: every stored time must lie between them (exact
comparisons of the same clock, no durations assumed).
"""

from __future__ import annotations

import io
import struct
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from daskperiment import Experiment
from daskperiment.backend import open_backend
from daskperiment.records import MetricPoint
from daskperiment.transfer import export_experiment, import_experiment

GRID = {"a": list(range(1, 9)), "b": [0, 1, 2]}  # 24 trials


@pytest.fixture(params=["local", "redis", "mongo"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """What ``Experiment(backend=...)`` takes for a new store of each kind."""
    if request.param == "local":
        return tmp_path / "store"
    return request.getfixturevalue(f"{request.param}_uri")


def epochs_of(a: int) -> int:
    return 3 + a % 4


def loss(a: int, b: int, epoch: int) -> float:
    return a / (epoch + 1) + b / 7


def stamping(ex: Experiment) -> Any:
    """A result whose step saves ``loss`` (floats) and ``steps`` (ints) and returns the clock around each call."""
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex.result
    def train(a, b):
        stamps = []
        for epoch in range(epochs_of(a)):
            before = time.time()
            ex.save_metric("loss", epoch, loss(a, b, epoch))
            stamps.append([before, time.time()])
        before = time.time()
        ex.save_metric("steps", 0, a * 10 + b)
        stamps.append([before, time.time()])
        return stamps

    return train(a, b)


def check_points(ex: Experiment, trials: pd.DataFrame, since: float, until: float) -> None:
    """Every point of every trial of ``trials`` (a history with ``a``, ``b``, ``Result``), point by point."""
    ids = [int(t) for t in trials.index]
    finished = {t.trial_id: t.finished for t in ex.backend.load_trials(ids)}
    series = ex.backend.load_metrics("loss", ids)
    frame = ex.load_metric_points("loss", ids)
    assert list(frame.columns) == ["Trial ID", "Epoch", "Value", "Time"]
    assert str(frame["Time"].dtype) == "datetime64[ns, UTC]"
    steps = ex.load_metric_points("steps", ids)
    assert steps["Value"].dtype == np.int64
    for trial_id, row in trials.iterrows():
        a, b, stamps = int(row["a"]), int(row["b"]), row["Result"]
        mine = series.trial_ids == trial_id
        times = series.times[mine].tolist()
        assert series.epochs[mine].tolist() == list(range(epochs_of(a)))
        assert series.values[mine].tolist() == [loss(a, b, e) for e in range(epochs_of(a))]
        assert len(times) == len(stamps) - 1
        for when, (before, after) in zip(times, stamps):
            assert before <= when <= after, (trial_id, when, before, after)
        assert times == sorted(times) and since <= times[0] and times[-1] <= finished[trial_id] <= until
        rows = frame[frame["Trial ID"] == trial_id]
        assert rows["Epoch"].tolist() == list(range(epochs_of(a)))
        assert rows["Value"].tolist() == [loss(a, b, e) for e in range(epochs_of(a))]
        shown = (rows["Time"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
        assert np.abs(shown - np.array(times)).max() < 1e-6
        step = steps[steps["Trial ID"] == trial_id]
        assert step["Value"].tolist() == [a * 10 + b]
        seconds = (step["Time"].iloc[0] - pd.Timestamp(0, tz="UTC")).total_seconds()
        assert stamps[-1][0] - 1e-6 <= seconds <= stamps[-1][1] + 1e-6
    table = ex.load_metric("loss", ids)  # 0.5's table, unchanged: Epoch x Trial ID
    assert list(table.columns) == ids and table.index.name == "Epoch"
    for trial_id, row in trials.iterrows():
        a, b = int(row["a"]), int(row["b"])
        assert table[trial_id].dropna().tolist() == [loss(a, b, e) for e in range(epochs_of(a))]


def test_points_keep_the_time_of_their_call_on_every_store(store, make_experiment) -> None:
    ex = make_experiment(backend=store)
    result = stamping(ex)
    since = time.time()
    ex.sweep(result, grid=GRID, share=False)
    until = time.time()
    history = ex.get_history()
    assert len(history) == 24 and history["Success"].all()
    check_points(ex, history, since, until)


@pytest.mark.parametrize("scheduler", ["sync", "processes", "cluster"], indirect=True)
def test_workers_send_their_points_back_with_their_times(scheduler, make_experiment, tmp_path) -> None:
    ex = make_experiment(backend=tmp_path / "store")
    result = stamping(ex)
    since = time.time()
    ex.sweep(result, grid=GRID, share=False, scheduler=scheduler)
    until = time.time()
    history = ex.get_history()
    assert len(history) == 24 and history["Success"].all()
    check_points(ex, history, since, until)


def test_points_of_a_cached_step_carry_the_time_the_trial_took_them(make_experiment, tmp_path) -> None:
    ex = make_experiment(backend=tmp_path / "store")
    a = ex.parameter("a")

    @ex(cache=True)
    def prepare(a):
        for epoch in range(5):
            ex.save_metric("prepare", epoch, a + epoch)
        return a

    @ex.result
    def score(data):
        return time.time()

    result = score(prepare(a))
    first = {}
    for value in range(1, 13):
        first[value] = (time.time(), ex.run(result, a=value))
    taken = {}
    for value in range(1, 13):  # trials 13-24: prepare() from the cache
        taken[value] = (time.time(), ex.run(result, a=value))
    history = ex.get_history()
    assert history.loc[13:, "Cached"].tolist() == [f"prepare (trial {t})" for t in range(1, 13)]
    series = ex.backend.load_metrics("prepare", list(range(1, 25)))
    for trial_id in range(1, 25):
        value = (trial_id - 1) % 12 + 1
        mine = series.trial_ids == trial_id
        assert series.epochs[mine].tolist() == list(range(5))
        assert series.values[mine].tolist() == [value + e for e in range(5)]
        before, scored = (first if trial_id <= 12 else taken)[value]
        times = series.times[mine].tolist()
        assert before <= times[0] and times == sorted(times) and times[-1] <= scored
        if trial_id > 12:  # taken at once, when the trial loaded the step
            assert len(set(times)) == 1


def test_streamed_points_of_a_running_trial_have_their_times(store, make_experiment, monkeypatch) -> None:
    from daskperiment import metricstream

    monkeypatch.setattr(metricstream, "FLUSH_SECONDS", 0.02)
    monkeypatch.setattr(metricstream, "POLL_SECONDS", 0.005)
    ex = make_experiment(backend=store)
    go_on = threading.Event()
    saved: list[list[float]] = []

    @ex.result
    def long_training():
        for epoch in range(40):
            before = time.time()
            ex.save_metric("loss", epoch, 1 / (epoch + 1))
            saved.append([before, time.time()])
            if epoch == 19:
                go_on.wait(60)
        return len(saved)

    future = ex.submit(long_training())
    trial_id = 1

    def streamed() -> Any:
        starts = ex.backend.load_starts([trial_id])
        points = ex.backend.load_metrics("loss", [trial_id])
        return (starts, points) if len(points) == 20 and len(saved) == 20 else None

    try:
        deadline = time.monotonic() + 60
        while (found := streamed()) is None:
            assert time.monotonic() < deadline, "the first 20 points were never streamed"
            time.sleep(0.01)
        starts, points = found
        assert list(starts) == [trial_id]  # still running
        started = starts[trial_id].started
        assert [p.epoch for p in points] == list(range(20))
        for point, (before, after) in zip(points, saved, strict=True):
            assert started <= before <= point.time <= after
    finally:
        go_on.set()
    assert future.result(timeout=60) == 40
    points = ex.backend.load_metrics("loss", [trial_id])
    assert [p.epoch for p in points] == list(range(40))
    for point, (before, after) in zip(points, saved):
        assert before <= point.time <= after


def _old_chunk(epochs: list[int], values: list[float]) -> bytes:
    """Points packed as older daskperiment versions packed them: count, epochs, values (no times)."""
    return struct.pack(f"<I{len(epochs)}q{len(values)}d", len(epochs), *epochs, *values)


@pytest.mark.parametrize("kind", ["redis", "mongo"])
def test_points_a_server_store_held_before_times_read_without_time(kind, request) -> None:
    uri = request.getfixturevalue(f"{kind}_uri")
    backend = open_backend(uri, "old")
    backend.write_metrics([MetricPoint(30, "loss", e, e / 2, 1_700_000_000.0 + e) for e in range(3)])
    old = {t: ([e for e in range(6)], [t + e / 4 for e in range(6)]) for t in range(1, 30)}
    if kind == "redis":
        import redis

        client = redis.Redis.from_url(uri)
        for t, (epochs, values) in old.items():
            client.hset(f"daskperiment:old:metric:{t}:loss", "0000-old:00000000", _old_chunk(epochs, values))
        client.close()
    else:
        import pymongo

        client = pymongo.MongoClient(uri)
        client.get_default_database()["daskperiment_old"].insert_many([
            {"_id": f"metric:0000-old-{t}:00000000", "kind": "metric", "key": "loss", "trial_id": t,
             "chunk": f"0000-old-{t}:00000000", "points": _old_chunk(epochs, values)}
            for t, (epochs, values) in old.items()
        ])
        client.close()
    series = backend.load_metrics("loss", list(range(1, 31)))
    expected = [MetricPoint(t, "loss", e, v) for t, (epochs, values) in old.items() for e, v in zip(epochs, values)]
    expected += [MetricPoint(30, "loss", e, e / 2, 1_700_000_000.0 + e) for e in range(3)]
    assert list(series) == expected  # old points: time None
    assert np.isnan(series.times[:-3]).all()


def test_an_export_without_times_imports_its_points_without_time(make_experiment, tmp_path) -> None:
    ex = make_experiment("origin", backend=tmp_path / "store")
    result = stamping(ex)
    ex.sweep(result, grid=GRID, share=False)
    exported = tmp_path / "origin.zip"
    export_experiment("origin", exported, backend=tmp_path / "store")
    with zipfile.ZipFile(exported) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    untimed = tmp_path / "untimed.zip"
    with zipfile.ZipFile(untimed, "w") as archive:  # as older versions wrote points
        for name, content in members.items():
            if name.startswith("metrics/"):
                points = np.load(io.BytesIO(content), allow_pickle=False)
                assert points.dtype.names == ("trial_id", "epoch", "value", "time")
                old = np.empty(len(points), dtype=[("trial_id", "<i8"), ("epoch", "<i8"), ("value", "<f8")])
                for field in ("trial_id", "epoch", "value"):
                    old[field] = points[field]
                buffer = io.BytesIO()
                np.save(buffer, old, allow_pickle=False)
                content = buffer.getvalue()
            archive.writestr(name, content)
    for path, name in ((exported, "timed"), (untimed, "untimed")):
        import_experiment(path, backend=tmp_path / name, experiment_id=name)
    source = ex.backend.load_metrics("loss", list(range(1, 25)))
    timed = open_backend(tmp_path / "timed", "timed").load_metrics("loss", list(range(1, 25)))
    plain = open_backend(tmp_path / "untimed", "untimed").load_metrics("loss", list(range(1, 25)))
    assert list(timed) == list(source) and not np.isnan(source.times).any()
    assert list(plain) == [point._replace(time=None) for point in source]
    frame = Experiment("untimed", backend=tmp_path / "untimed").load_metric_points("loss", list(range(1, 25)))
    assert frame["Time"].isna().all() and frame["Value"].tolist() == source.values.tolist()


def test_load_metric_points_refuses_what_load_metric_refuses(make_experiment, tmp_path) -> None:
    from daskperiment.errors import MetricError, TrialIDNotFoundError

    ex = make_experiment(backend=tmp_path / "store")
    result = stamping(ex)
    ex.run(result, a=1, b=0)
    a = ex.parameter("c")

    @ex.result
    def quiet(c):
        return c

    ex.run(quiet(a), c=1)  # trial 2 saves no metric
    with pytest.raises(TypeError, match=r"load_metric_points\(\) needs a metric key and a trial id"):
        ex.load_metric_points("loss", None)
    with pytest.raises(MetricError, match="unknown metric 'acc'.*saved metrics are 'loss', 'steps'"):
        ex.load_metric_points("acc", 1)
    with pytest.raises(TrialIDNotFoundError, match="trial 2 of experiment .* saved no value of metric 'loss'"):
        ex.load_metric_points("loss", [1, 2])
    with pytest.raises(TrialIDNotFoundError):
        ex.load_metric_points("loss", 3)
    assert ex.load_metric_points("loss", 1)["Epoch"].tolist() == list(range(epochs_of(1)))
