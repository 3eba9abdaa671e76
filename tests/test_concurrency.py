"""Concurrent, distributed and interrupted trials never mix or lose records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from daskperiment import Experiment


def test_two_threads_get_distinct_trials_and_never_mix(ex: Experiment) -> None:
    barrier = threading.Barrier(2, timeout=30)

    @ex.persist
    def make(i):
        barrier.wait()  # both trials are inside a step at the same time
        ex.save_metric("who", 0, float(i))
        return {"i": i, "trial": ex.current_trial_id}

    @ex.result
    def finish(made):
        barrier.wait()
        ex.save_metric("who", 1, float(made["i"]))
        assert ex.current_trial_id == made["trial"]
        return made

    results: dict[int, dict] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = finish(make(i)).compute()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in (10, 20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(r["trial"] for r in results.values()) == [1, 2]
    for i, made in results.items():
        trial = made["trial"]
        assert ex.get_persisted("make", trial) == made
        assert ex.load_metric("who", trial)[trial].tolist() == [float(i), float(i)]
    assert ex.get_history()["Success"].tolist() == [True, True]


SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np
    import daskperiment

    ex = daskperiment.Experiment("dist", backend=Path(sys.argv[1]))
    a = ex.parameter("a")

    @ex.persist
    def prepare(a):
        import os

        ex.save_metric("pid", epoch=0, value=float(os.getpid()))
        ex.save_metric("size", epoch=0, value=float(a))
        return np.arange(a) * 2

    @ex.result
    def score(values):
        for epoch in range(3):
            ex.save_metric("loss", epoch=epoch, value=float(values.sum()) / (epoch + 1))
        return int(values.sum())
    """
)


def _records(ex: Experiment, trial_id: int) -> dict:
    history = ex.get_history(verbose=True).loc[trial_id]
    return {
        "parameters": ex.get_parameters(trial_id),
        "result": history["Result"],
        "result_type": history["Result Type"],
        "success": bool(history["Success"]),
        "seed": history["Seed"],
        "loss": ex.load_metric("loss", trial_id)[trial_id].tolist(),
        "size": ex.load_metric("size", trial_id)[trial_id].tolist(),
        "persisted": ex.get_persisted("prepare", trial_id).tolist(),
        "code": ex.get_code(trial_id),
    }


def test_distributed_local_cluster_records_what_threads_record(tmp_path: Path, monkeypatch) -> None:
    distributed = pytest.importorskip("distributed")
    module = tmp_path / "dist_experiment.py"
    module.write_text(SCRIPT)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["x", str(tmp_path / "store")])
    import cloudpickle

    import dist_experiment as script  # noqa: E402 - a module written by the test

    cloudpickle.register_pickle_by_value(script)
    try:
        script.ex.set_parameters(a=4)
        threaded = script.score(script.prepare(script.a)).compute(seed=5, scheduler="threads")
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster, distributed.Client(cluster):
            on_cluster = script.score(script.prepare(script.a)).compute(seed=5)
    finally:
        cloudpickle.unregister_pickle_by_value(script)
        sys.modules.pop("dist_experiment", None)
    assert threaded == on_cluster == 12
    first, second = _records(script.ex, 1), _records(script.ex, 2)
    assert first == second
    assert first["loss"] == [12.0, 6.0, 4.0] and first["size"] == [4.0]
    pids = script.ex.load_metric("pid", [1, 2])
    assert pids[1].iloc[0] == os.getpid() and pids[2].iloc[0] != os.getpid()  # ran on a worker


def test_process_scheduler_records_steps_from_worker_processes(ex: Experiment) -> None:
    # Functions defined here pickle by value (they are local), the experiment by id.
    @ex.persist
    def prepare():
        import os

        ex.save_metric("pid", 0, float(os.getpid()))
        return "made"

    @ex.result
    def finish(x):
        return x + "!"

    assert finish(prepare()).compute(scheduler="processes") == "made!"
    import os

    assert ex.get_persisted("prepare", 1) == "made"
    assert ex.load_metric("pid", 1)[1].iloc[0] != float(os.getpid())


KILLED = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import daskperiment

    daskperiment.status.HEARTBEAT_SECONDS = 0.05  # readers show a trial killed 0.15 s after its last beat
    ex = daskperiment.Experiment("killed", backend=Path(sys.argv[1]))
    n = ex.parameter("n")

    @ex.result
    def step(n):
        for epoch in range(50):
            ex.save_metric("m", epoch, float(n))
        if n == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
        return n

    for value in range(1, int(sys.argv[3]) + 1):
        ex.set_parameters(n=value)
        step(n).compute(seed=value)
    """
)


def test_process_killed_mid_trial_keeps_earlier_trials(run_python, tmp_path: Path, make_experiment) -> None:
    out = run_python(KILLED, str(tmp_path / "k"), "4", "10")
    assert out.returncode == -signal.SIGKILL
    ex = make_experiment("killed", backend=tmp_path / "k")
    history = settled_history(ex)
    assert list(history.index) == [1, 2, 3, 4]  # the killed trial keeps its id and parameters
    assert history["Status"].tolist() == ["finished"] * 3 + ["killed"]
    assert history["Result"].tolist()[:3] == [1, 2, 3] and history["n"].tolist() == [1, 2, 3, 4]
    assert history.loc[4, "Description"].startswith("killed: process ")
    assert ex.load_metric("m", [1, 2, 3]).shape == (50, 3)

    @ex.result
    def later():
        return "after"

    later().compute()
    assert list(ex.get_history().index) == [1, 2, 3, 4, 5]


def settled_history(ex: Experiment) -> pd.DataFrame:
    """The history once no trial shows as running (killed ones are shown so once their heartbeat is stale)."""
    deadline = time.monotonic() + 60
    while True:
        history = ex.get_history()
        if not (history["Status"] == "running").any() or time.monotonic() > deadline:
            return history
        time.sleep(0.05)


def test_process_killed_at_random_moments_never_corrupts(tmp_path: Path, child_env, make_experiment) -> None:
    code = KILLED.replace("step(n).compute(seed=value)", "step(n).compute(seed=value); print(value, flush=True)")
    for delay in (0.0, 0.003, 0.011, 0.027):
        process = subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "r"), "-1", "100000"],
            cwd=tmp_path,
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(5):  # let it record a few trials, then kill it mid-way through others
            assert process.stdout.readline()
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        process.stdout.close()
    ex = make_experiment("killed", backend=tmp_path / "r")
    import sqlite3

    with sqlite3.connect(ex.backend.database_path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    history = settled_history(ex)
    assert list(history.index) == list(range(1, len(history) + 1))  # no id lost
    finished = history[history["Status"] == "finished"]
    assert len(finished) >= 20 and finished["Success"].all()
    assert set(history["Status"]) <= {"finished", "killed"}
    metrics = ex.load_metric("m", list(finished.index))
    assert metrics.shape == (50, len(finished))  # every recorded trial has all its metrics
    assert metrics.notna().all().all()


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import daskperiment

    ex = daskperiment.Experiment("shared", backend=Path(sys.argv[1]))
    worker = ex.parameter("worker")

    @ex.result
    def step(worker):
        ex.save_metric("trial", 0, float(ex.current_trial_id))
        return (worker, ex.current_trial_id)

    for i in range(int(sys.argv[3])):
        ex.set_parameters(worker=sys.argv[2])
        step(worker).compute()
    """
)


def test_concurrent_processes_get_unique_ids_and_lose_nothing(tmp_path: Path, child_env, make_experiment) -> None:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path / "p"), f"w{i}", "25"],
            cwd=tmp_path,
            env=child_env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    for process in processes:
        _, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
    ex = make_experiment("shared", backend=tmp_path / "p")
    history = ex.get_history()
    assert list(history.index) == list(range(1, 101))
    assert all(result[1] == trial for trial, result in history["Result"].items())
    assert history["worker"].value_counts().to_dict() == {f"w{i}": 25 for i in range(4)}
    metrics = ex.load_metric("trial", list(range(1, 101)))
    assert metrics.loc[0].tolist() == [float(t) for t in range(1, 101)]
    assert isinstance(history, pd.DataFrame)
