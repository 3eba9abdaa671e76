"""Running trials (issue 12): recorded when they start, metrics written while they run,
killed and interrupted trials shown as such, no trial id and no written point ever lost."""

from __future__ import annotations

import json
import math
import random
import re
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from daskperiment import Experiment, metricstream, status
from daskperiment.backend.base import Backend
from daskperiment.errors import BackendError, BatchSpooledError
from daskperiment.history import history_frame
from daskperiment.records import TrialRecord, TrialStart

from conftest import WAIT_SECONDS, wait_until

@pytest.fixture(params=["local", "redis", "mongo"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """What ``Experiment(backend=...)`` takes for a new store of each kind."""
    if request.param == "local":
        return tmp_path / "store"
    return request.getfixturevalue(f"{request.param}_uri")


def points_of(backend: Backend, key: str, trial_ids: list[int]) -> dict[int, list[tuple[int, float]]]:
    """Every stored point of ``key`` of each trial, in order, duplicates kept."""
    series = backend.load_metrics(key, trial_ids)
    points: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for trial_id, epoch, value in zip(series.trial_ids.tolist(), series.epochs.tolist(), series.values.tolist()):
        points[trial_id].append((epoch, value))
    return points


def settled_history(ex: Experiment) -> pd.DataFrame:
    """The history once no trial shows as running (killed ones show so once their heartbeat is stale)."""
    settled: list[pd.DataFrame] = []

    def settle() -> bool:
        history = ex.get_history()
        settled[:] = [history]
        return not (history["Status"] == "running").any()

    wait_until(settle, "every trial finished or shown killed")
    return settled[0]


# -- statuses ---------------------------------------------------------------------------------
def test_a_trial_record_has_a_status_consistent_with_its_success() -> None:
    fields: dict[str, Any] = dict(
        trial_id=1, parameters={}, result=None, result_type="", finished=0.0, process_time=0.0,
        description=None, seed=1, code_digest="c", environment_digest=None,
    )
    assert TrialRecord(**fields, success=True).status == "finished"
    assert TrialRecord(**fields, success=False).status == "failed"
    assert TrialRecord(**fields, success=False, status="interrupted").status == "interrupted"
    for success, wrong in ((True, "failed"), (False, "finished"), (True, "interrupted"), (False, "running")):
        with pytest.raises(ValueError, match=f"cannot end with status '{wrong}'"):
            TrialRecord(**fields, success=success, status=wrong)


def test_a_start_reads_killed_once_its_heartbeat_missed_three_beats() -> None:
    start = TrialStart({"a": 1}, 5, started=100.0, heartbeat=110.0, interval=10.0, process="h:1")
    assert [start.status(now) for now in (110.0, 139.9, 140.0, 140.1, 1e9)] == [
        "running", "running", "running", "killed", "killed"
    ]


def test_history_rows_of_running_and_killed_trials() -> None:
    recorded = TrialRecord(
        trial_id=2, parameters={"a": 2}, result=0.5, result_type="float", success=True, finished=1e9,
        process_time=1.5, description=None, seed=9, code_digest="c", environment_digest=None,
    )
    starts = {
        1: TrialStart({"a": 1, "b": "x"}, 7, 1e9, 1e9 + 100, 10.0, "host:42", "sweep-1"),
        2: TrialStart({"a": 2}, 9, 1e9, 1e9, 10.0, "host:42"),  # recorded since: left out
        3: TrialStart({"a": 3}, 8, 1e9, 1e9 + 125, 10.0, "host:43"),
    }
    frame = history_frame([recorded], verbose=True, starts=starts, now=1e9 + 140)
    assert list(frame.index) == [1, 2, 3]
    assert list(frame.columns) == [
        "a", "b", "Seed", "Result", "Result Type", "Success", "Finished", "Process Time", "Description",
        "Sweep", "Status",
    ]
    assert frame["Status"].tolist() == ["killed", "finished", "running"]
    assert frame["Success"].tolist() == [False, True, False] and frame["Seed"].tolist() == [7, 9, 8]
    assert frame["Result"].isna().tolist() == [True, False, True]
    assert frame["Finished"].isna().tolist() == [True, False, True]
    assert frame["Process Time"].isna().tolist() == [True, False, True]
    assert frame.loc[1, "Description"].startswith("killed: process host:42 stopped marking it alive at ")
    assert pd.isna(frame.loc[3, "Description"]) and pd.isna(frame.loc[2, "Description"])
    assert frame.loc[1, "Sweep"] == "sweep-1" and frame["Sweep"].isna().tolist() == [False, True, True]


# -- a running trial, on every store --------------------------------------------------------------
def test_a_running_trial_shows_its_status_and_points_so_far(store: Any, make_experiment, fast) -> None:
    ex = make_experiment(backend=store)
    n = ex.parameter("n")
    gates = [threading.Event() for _ in range(3)]

    @ex.result
    def train(n):
        for part, gate in enumerate(gates):
            for i in range(part * n, (part + 1) * n):
                ex.save_metric("loss", i, 1.0 / (i + 1))
            assert gate.wait(WAIT_SECONDS)
        return 3 * n

    ex.set_parameters(n=5)
    future = ex.submit(train(n), scheduler="sync")
    trial = future.trial_id
    expected = [(i, 1.0 / (i + 1)) for i in range(15)]
    for part, gate in enumerate(gates):
        seen = (part + 1) * 5
        wait_until(lambda: len(points_of(ex.backend, "loss", [trial])[trial]) >= seen, f"{seen} points")
        assert points_of(ex.backend, "loss", [trial])[trial] == expected[:seen]  # each point once
        history = ex.get_history(verbose=True)
        row = history.loc[trial]
        assert (row["Status"], row["Success"], row["n"], row["Seed"]) == ("running", False, 5, future_seed(ex, trial))
        assert math.isnan(row["Result"]) and pd.isna(row["Finished"])
        assert ex.load_metric("loss", trial)[trial].tolist() == [v for _, v in expected[:seen]]
        assert ex.get_parameters(trial) == {"n": 5}
        if part == 0:  # the heartbeat goes on while it runs
            first = ex.backend.load_starts([trial])[trial].heartbeat
            wait_until(lambda: ex.backend.load_starts([trial])[trial].heartbeat > first, "a newer heartbeat")
        gate.set()
    assert future.result(WAIT_SECONDS) == 15
    row = ex.get_history().loc[trial]
    assert (row["Status"], row["Success"], row["Result"]) == ("finished", True, 15)
    assert points_of(ex.backend, "loss", [trial])[trial] == expected
    assert ex.backend.load_starts() == {}


def test_heartbeats_that_cannot_be_written_go_on_and_say_so(make_experiment, fast, monkeypatch, warnings_of) -> None:
    ex = make_experiment()
    beats: list[list[int]] = []
    beat = ex.backend.beat_trials

    def failing(trial_ids, when):
        beats.append(list(trial_ids))
        if len(beats) <= 2:
            raise BackendError("the store is unreachable")
        beat(trial_ids, when)

    monkeypatch.setattr(ex.backend, "beat_trials", failing)
    gate = threading.Event()

    @ex.result
    def wait():
        assert gate.wait(WAIT_SECONDS)
        return "done"

    future = ex.submit(wait())
    first = ex.backend.load_starts()[future.trial_id].heartbeat
    wait_until(lambda: ex.backend.load_starts()[future.trial_id].heartbeat > first, "a beat after two failures")
    gate.set()
    assert future.result(WAIT_SECONDS) == "done" and beats[:3] == [[future.trial_id]] * 3
    messages = warnings_of()
    assert any(f"heartbeat of running trials {future.trial_id} could not be written (BackendError: the store is "
               "unreachable)" in m for m in messages)
    assert any(f"heartbeat of running trials {future.trial_id} is written again" in m for m in messages)


def future_seed(ex: Experiment, trial_id: int) -> int:
    return ex.backend.load_starts([trial_id])[trial_id].seed


# -- every trial and point once, on every scheduler and store ----------------------------------------
GRID = {"a": [1, 2, 3], "m": [0, 1, 6, 13, 31]}  # m == 13 fails after saving its points


def run_trials(ex: Experiment, scheduler: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    """A sweep of 15 trials (steps shared by trials of one ``a``), then 12 trials submitted and run.

    Returns how many points were written while their trials ran.
    """
    streamed = []
    write = ex.backend.write_metrics
    monkeypatch.setattr(ex.backend, "write_metrics", lambda points: (write(points), streamed.append(len(points))))
    a, m = ex.parameter("a"), ex.parameter("m")

    @ex
    def prepare(a):
        for i in range(3):
            ex.save_metric("prep", i, a * 10 + i)
        return a * 2

    @ex.result
    def train(x, m):
        import time

        for i in range(m):
            ex.save_metric("loss", i, x / (i + 1))
            if i % 5 == 4:
                time.sleep(0.003)  # writes of points land while the step runs
        if m == 13:
            raise ValueError(f"m={m} fails")
        return x * m

    result = train(prepare(a), m)
    ex.sweep(result, grid=GRID, seed=3, scheduler=scheduler, max_in_flight=7)
    futures = [ex.submit(result, a=value, m=steps, scheduler=scheduler) for value in (4, 5) for steps in (6, 13, 31)]
    for value in (6, 7):
        for steps in (1, 13, 31):
            try:
                ex.run(result, a=value, m=steps, scheduler=scheduler)
            except ValueError:
                assert steps == 13
    for future in futures:
        try:
            future.result(WAIT_SECONDS)
        except ValueError:
            assert future.trial_id in ex.get_history().query("m == 13").index
    return sum(streamed)


def check_trials(ex: Experiment, count: int) -> None:
    """Every trial recorded once, with the status, result and every metric point its parameters give."""
    history = ex.get_history()
    ids = list(history.index)
    assert ids == list(range(1, count + 1))
    assert ex.backend.load_starts() == {}
    losses, preps = points_of(ex.backend, "loss", ids), points_of(ex.backend, "prep", ids)
    for trial_id, row in history.iterrows():
        a, m = int(row["a"]), int(row["m"])
        x = a * 2
        assert row["Status"] == ("failed" if m == 13 else "finished"), (trial_id, row)
        assert bool(row["Success"]) is (m != 13)
        if m == 13:
            assert math.isnan(row["Result"]) and row["Description"] == "ValueError(m=13 fails)"
        else:
            assert row["Result"] == x * m
        assert losses.get(trial_id, []) == [(i, x / (i + 1)) for i in range(m)], trial_id
        assert preps[trial_id] == [(i, float(a * 10 + i)) for i in range(3)], trial_id


def test_every_trial_and_point_is_recorded_once_on_every_scheduler(scheduler, make_experiment, fast, monkeypatch) -> None:
    ex = make_experiment()
    streamed = run_trials(ex, scheduler, monkeypatch)
    check_trials(ex, 15 + 12)
    if scheduler in ("sync", "threads"):  # steps in this process: points written while they run
        assert streamed > 0
    else:  # steps on workers: their points come with the trial's record
        assert streamed == 0


def test_every_trial_and_point_is_recorded_once_on_every_store(store, make_experiment, fast, monkeypatch) -> None:
    ex = make_experiment(backend=store)
    assert run_trials(ex, "threads", monkeypatch) > 0
    check_trials(ex, 15 + 12)


def test_points_a_failed_write_kept_are_written_with_the_trial(make_experiment, fast, monkeypatch) -> None:
    ex = make_experiment()
    calls = {"failed": 0, "spooled": 0}
    write = ex.backend.write_metrics

    def failing(points):
        if calls["failed"] < 3:  # nothing written: the points wait for the next write or the record
            calls["failed"] += 1
            raise BackendError("the disk is full")
        if calls["spooled"] < 3:  # written to a spool that re-sends them: they count as written
            write(points)
            calls["spooled"] += 1
            raise BatchSpooledError("the server is down; kept in the spool")
        write(points)

    monkeypatch.setattr(ex.backend, "write_metrics", failing)
    n = ex.parameter("n")

    @ex.result
    def train(n):
        saved = 0
        while calls["spooled"] < 3 or saved < n:  # until the stream met both failures
            ex.save_metric("loss", saved, float(saved))
            saved += 1
            time.sleep(0.001)
        return saved

    ex.set_parameters(n=5)
    first = ex.run(train(n), scheduler="threads")
    ex.set_parameters(n=60)
    second = ex.run(train(n), scheduler="sync")
    assert calls == {"failed": 3, "spooled": 3} and second >= 60
    points = points_of(ex.backend, "loss", [1, 2])
    assert [points[1], points[2]] == [[(i, float(i)) for i in range(v)] for v in (first, second)]


def test_a_trial_that_cannot_run_after_its_start_is_recorded_failed(make_experiment, monkeypatch) -> None:
    ex = make_experiment()

    @ex.result
    def one():
        return 1

    def broken(*args, **kwargs):
        raise RuntimeError("no graph")

    monkeypatch.setattr("daskperiment.tracker.trial_graph", broken)
    with pytest.raises(RuntimeError, match="no graph"):
        one().compute()
    with pytest.raises(RuntimeError, match="no graph"):
        ex.submit(one())
    history = ex.get_history()
    assert history["Status"].tolist() == ["failed", "failed"]
    assert history["Description"].tolist() == ["RuntimeError(no graph)"] * 2
    assert ex.backend.load_starts() == {}


# -- Ctrl+C ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_ctrl_c_in_a_step_records_the_trial_interrupted_and_is_raised(scheduler, make_experiment, fast) -> None:
    ex = make_experiment()
    n = ex.parameter("n")

    @ex.result
    def train(n):
        for i in range(n):
            ex.save_metric("loss", i, float(i))
            if i % 10 == 9:
                time.sleep(0.005)
        raise KeyboardInterrupt  # Ctrl+C while the step runs

    for value in (3, 57):
        ex.set_parameters(n=value)
        with pytest.raises(KeyboardInterrupt):
            ex.run(train(n), scheduler=scheduler)
    history = ex.get_history()
    assert history["Status"].tolist() == ["interrupted", "interrupted"]
    assert history["Success"].tolist() == [False, False]
    assert history["Description"].tolist() == ["KeyboardInterrupt()"] * 2
    points = points_of(ex.backend, "loss", [1, 2])  # each point saved before Ctrl+C, once
    assert [points[1], points[2]] == [[(i, float(i)) for i in range(v)] for v in (3, 57)]
    assert ex.backend.load_starts() == {}


def test_ctrl_c_in_a_sweep_records_every_trial(make_experiment, fast) -> None:
    ex = make_experiment()
    n = ex.parameter("n")

    @ex.result
    def train(n):
        ex.save_metric("loss", 0, float(n))
        if n == 4:
            raise KeyboardInterrupt
        return n

    with pytest.raises(KeyboardInterrupt):
        ex.sweep(train(n), grid={"n": list(range(1, 10))}, scheduler="sync", max_in_flight=1)
    history = ex.get_history()
    assert list(history.index) == list(range(1, 10)) and ex.backend.load_starts() == {}
    assert history["Status"].tolist() == ["finished"] * 3 + ["interrupted"] * 6
    assert history["Result"].tolist()[:3] == [1, 2, 3]
    assert points_of(ex.backend, "loss", list(range(1, 10))) == {t: [(0, float(t))] for t in range(1, 5)}


INTERRUPTED = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import daskperiment

    ex = daskperiment.Experiment("interrupted", backend=Path(sys.argv[1]))
    n = ex.parameter("n")

    @ex.result
    def train(n):
        for i in range(n):
            ex.save_metric("loss", i, float(i))
            time.sleep(0.002)
        return n

    ex.set_parameters(n=3_000)  # a step running in a thread goes on after Ctrl+C: not for long
    ex.run(train(n), scheduler=sys.argv[2])
    """
)


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_sigint_to_a_process_records_its_trial_interrupted(scheduler, tmp_path, child_env, make_experiment) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED, str(tmp_path / "store"), scheduler],
        cwd=tmp_path, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    ex = make_experiment("interrupted", backend=tmp_path / "store")
    seen = wait_until(
        lambda: (tmp_path / "store").exists() and len(points_of(ex.backend, "loss", [1])[1]) >= 50,
        "the first points written",
    )
    assert seen
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=WAIT_SECONDS)
    assert process.returncode == -signal.SIGINT and "KeyboardInterrupt" in err
    row = ex.get_history().loc[1]
    assert (row["Status"], row["Success"], row["n"]) == ("interrupted", False, 3_000)
    points = points_of(ex.backend, "loss", [1])[1]
    assert len(points) >= 50 and points == [(i, float(i)) for i in range(len(points))]


# -- processes killed at random moments -------------------------------------------------------------
KILL_WORKER = textwrap.dedent(
    """
    import random, sys, time
    from pathlib import Path
    import daskperiment
    from daskperiment import metricstream, status

    status.HEARTBEAT_SECONDS = 0.1
    metricstream.FLUSH_SECONDS = 0.02
    metricstream.FLUSH_POINTS = 5
    metricstream.POLL_SECONDS = 0.005
    store = sys.argv[1]
    ex = daskperiment.Experiment("kills", backend=store if "://" in store else Path(store))
    n = ex.parameter("n")
    rng = random.Random(int(sys.argv[2]))

    @ex.result
    def train(n):
        for i in range(n):
            ex.save_metric("loss", i, n * 1000 + i)
            if i % 4 == 3:
                time.sleep(0.002)
        return n

    print("ready", flush=True)
    while True:
        if rng.random() < 0.25:  # three trials started in one batch
            grid = {"n": [rng.randint(1, 60) for _ in range(3)]}
            ex.sweep(train(n), grid=grid, scheduler="threads", share=False)
        else:
            ex.set_parameters(n=rng.randint(1, 120))
            ex.run(train(n), scheduler=rng.choice(["sync", "threads"]))
    """
)
WORKERS = 3
KILLS_PER_STORE = 12  # then the WORKERS left are killed too: 15 kills per store, 45 in all


def spawn(store: str, seed: int, tmp_path: Path, env: dict[str, str]) -> subprocess.Popen:
    with (tmp_path / f"worker-{seed}.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-c", KILL_WORKER, store, str(seed)],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
        )


def kill_when_running(process: subprocess.Popen, delay: float) -> None:
    """Wait for ``process`` to open the experiment, let it run trials ``delay`` s, SIGKILL it."""
    ready, _, _ = select.select([process.stdout], [], [], WAIT_SECONDS)
    assert ready and process.stdout.readline() == "ready\n", f"worker exited: {process.poll()}"
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    assert process.wait(WAIT_SECONDS) == -signal.SIGKILL
    process.stdout.close()


def allocated_ids(ex: Experiment) -> int:
    """The trial id counter of the store (every id up to it was allocated)."""
    backend = ex.backend
    if backend.is_local:
        with sqlite3.connect(backend.database_path) as connection:
            (value,) = connection.execute("SELECT value FROM counters WHERE name = 'trial_id'").fetchone()
        connection.close()
        return value
    if hasattr(backend, "pool"):
        return int(backend.client.get("daskperiment:kills:next_trial_id"))
    return backend.client[backend.database_name][backend.collection_name].find_one({"_id": "counter"})["value"]


def check_store_is_sound(ex: Experiment, ids: list[int]) -> None:
    """SQLite's integrity check; on servers, each id once among trials and starts (raw counts)."""
    backend = ex.backend
    if backend.is_local:
        with sqlite3.connect(backend.database_path) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            (recorded,) = connection.execute("SELECT COUNT(*) FROM trials").fetchone()
            (started,) = connection.execute("SELECT COUNT(*) FROM trial_starts").fetchone()
        connection.close()
    elif hasattr(backend, "pool"):
        client = backend.client
        trials = {int(t) for t in client.hkeys("daskperiment:kills:trials")}
        starts = {int(t) for t in client.hkeys("daskperiment:kills:starts")}
        beats = {int(t) for t in client.hkeys("daskperiment:kills:heartbeats")}
        assert not trials & starts and beats == starts
        assert trials | starts == set(ids) and client.zcard("daskperiment:kills:trial_ids") == len(trials)
        recorded, started = len(trials), len(starts)
    else:
        collection = backend.client[backend.database_name][backend.collection_name]
        recorded = collection.count_documents({"kind": "trial"})
        started = collection.count_documents({"kind": "start"})
        both = {d["trial_id"] for d in collection.find({"kind": {"$in": ["trial", "start"]}}, {"trial_id": 1})}
        assert both == set(ids)
    assert recorded + started == len(ids)


def test_processes_killed_at_random_moments_lose_no_trial_and_no_written_point(
    store: Any, tmp_path: Path, child_env: dict[str, str], make_experiment,
) -> None:
    rng = random.Random(2024)
    spec = str(store)
    seeds = iter(range(1000))
    workers = [spawn(spec, next(seeds), tmp_path, child_env) for _ in range(WORKERS)]
    kills = 0
    for _ in range(KILLS_PER_STORE):
        index = rng.randrange(WORKERS)
        kill_when_running(workers[index], rng.uniform(0.0, 1.5))
        kills += 1
        workers[index] = spawn(spec, next(seeds), tmp_path, child_env)
    for worker in workers:
        kill_when_running(worker, rng.uniform(0.0, 1.5))
        kills += 1
    assert kills == KILLS_PER_STORE + WORKERS

    ex = make_experiment("kills", backend=store)
    history = settled_history(ex)
    ids = list(range(1, allocated_ids(ex) + 1))
    assert list(history.index) == ids  # every allocated id, once
    check_store_is_sound(ex, ids)
    statuses = history["Status"].value_counts().to_dict()
    assert set(statuses) <= {"finished", "killed"}, statuses
    assert 1 <= statuses.get("killed", 0) <= 3 * kills  # a kill ends at most a sweep's 3 trials
    assert statuses.get("finished", 0) >= kills
    print(f"{kills} kills: {len(ids)} trial ids, {statuses}")  # for the closing note (pytest -s)
    points = points_of(ex.backend, "loss", ids)
    for trial_id, row in history.iterrows():
        n = int(row["n"])
        expected = [(i, float(n * 1000 + i)) for i in range(n)]
        if row["Status"] == "finished":
            assert row["Result"] == n and points[trial_id] == expected, trial_id
        else:  # what was written before the kill: the first points, each once
            assert points.get(trial_id, []) == expected[: len(points.get(trial_id, []))], trial_id
    for log in tmp_path.glob("worker-*.log"):  # no worker failed before its kill
        assert "Traceback" not in log.read_text(), log.read_text()


# -- the command line: show, --follow, history ------------------------------------------------------
FOLLOWED = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import daskperiment
    from daskperiment import metricstream, status

    status.HEARTBEAT_SECONDS = 0.3  # shown killed 0.9 s after its last beat
    metricstream.FLUSH_SECONDS = 0.05
    ex = daskperiment.Experiment("followed", backend=Path(sys.argv[1]))
    n = ex.parameter("n")

    gate = Path(sys.argv[3]) if len(sys.argv) > 3 else None

    @ex.result
    def train(n):
        for i in range(n):
            ex.save_metric("loss", i, i * 0.5)
            ex.save_metric("steps", i, i)
            time.sleep(0.01)
            while i == n // 2 and gate is not None and not gate.exists():  # half-way: wait for the test
                time.sleep(0.01)
        if n == 13:
            raise ValueError("thirteen")
        return n

    ex.set_parameters(n=int(sys.argv[2]))
    ex.run(train(n), scheduler="sync")
    """
)


def start_followed(tmp_path: Path, env: dict[str, str], n: int, *gate: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", FOLLOWED, str(tmp_path / "store"), str(n), *gate],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def followed_points(lines: list[str]) -> dict[str, list[tuple[str, str]]]:
    points: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for line in lines:
        if not line.startswith("status: "):
            key, epoch, value = line.split("\t")
            points[key].append((epoch, value))
    return points


def test_show_follow_prints_each_point_once_and_the_status_until_the_end(tmp_path, child_env, make_experiment) -> None:
    from test_cli import cli

    store, gate = str(tmp_path / "store"), tmp_path / "gate"
    process = start_followed(tmp_path, child_env, 250, str(gate))  # waits half-way until the gate exists
    ex = make_experiment("followed", backend=tmp_path / "store")
    wait_until(lambda: len(points_of(ex.backend, "loss", [1]).get(1, [])) > 125, "the first half written")
    shown = cli("show", "followed", "1", "--backend", store, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^Status: +running$", shown.stdout, re.M) and re.search(r"^loss +126 ", shown.stdout, re.M)
    assert "[code]" not in shown.stdout  # it comes with the trial's record
    follow = subprocess.Popen(
        [sys.executable, "-m", "daskperiment", "show", "followed", "1", "--follow", "--interval", "0.05",
         "--backend", store],
        cwd=tmp_path, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    first = follow.stdout.readline()
    gate.touch()
    rest = follow.stdout.read()  # the same buffer as readline's: nothing read ahead is lost
    assert follow.wait(WAIT_SECONDS) == 0, follow.stderr.read()
    assert process.wait(WAIT_SECONDS) == 0
    lines = rest.splitlines()
    assert first == "status: running\n" and lines[-1] == "status: finished, result 250"
    assert followed_points(lines[:-1]) == {
        "loss": [(str(i), repr(i * 0.5)) for i in range(250)],
        "steps": [(str(i), str(i)) for i in range(250)],  # integer metrics print as integers
    }
    history = cli("history", "followed", "--backend", store, "--format", "json", cwd=tmp_path)
    assert json.loads(history.stdout)[0]["Status"] == "finished"


def test_show_follow_of_a_failed_killed_or_unknown_trial(tmp_path, child_env, make_experiment) -> None:
    from test_cli import cli

    store = str(tmp_path / "store")
    assert start_followed(tmp_path, child_env, 13).wait(WAIT_SECONDS) == 1
    failed = cli("show", "followed", "1", "--follow", "--backend", store, cwd=tmp_path)
    assert failed.returncode == 1
    lines = failed.stdout.splitlines()
    assert lines[-1] == "status: failed, ValueError(thirteen)" and "status: running" not in lines
    assert followed_points(lines[:-1])["loss"] == [(str(i), repr(i * 0.5)) for i in range(13)]

    process = start_followed(tmp_path, child_env, 100_000)
    ex = make_experiment("followed", backend=tmp_path / "store")
    wait_until(lambda: len(points_of(ex.backend, "loss", [2]).get(2, [])) >= 20, "points of trial 2")
    for fmt, finished in (("csv", ""), ("json", None)):  # a running trial has no finish time
        listed = cli("history", "followed", "--backend", store, "--format", fmt, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        row = json.loads(listed.stdout)[1] if fmt == "json" else listed.stdout.splitlines()[2].split(",")
        assert (row["Status"], row["Finished"]) == ("running", None) if fmt == "json" else (
            row[-1] == "running" and row[5] == finished
        )
    process.send_signal(signal.SIGKILL)
    process.wait(WAIT_SECONDS)
    killed = cli("show", "followed", "2", "--follow", "--interval", "0.05", "--backend", store, cwd=tmp_path)
    assert killed.returncode == 1
    lines = killed.stdout.splitlines()
    assert lines[-1] == "status: killed"
    loss = followed_points(lines)["loss"]
    assert len(loss) >= 20 and loss == [(str(i), repr(i * 0.5)) for i in range(len(loss))]

    unknown = cli("show", "followed", "9", "--follow", "--backend", store, cwd=tmp_path)
    assert unknown.returncode == 1
    assert "trial 9 of experiment 'followed' does not exist: its trial ids go up to 1" in unknown.stderr
    for interval in ("0", "-1", "nan", "inf"):
        refused = cli("show", "followed", "1", "--follow", "--interval", interval, "--backend", store, cwd=tmp_path)
        assert refused.returncode == 2 and "--interval must be a positive number of seconds" in refused.stderr
