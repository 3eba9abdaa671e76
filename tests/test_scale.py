"""Trials at scale (issue #9): many trials on a cluster, local schedulers and sweeps; every row checked.

Each test runs trials the way users do (``result.compute()``, ``ex.run``,
``ex.submit``, ``ex.sweep``, from several threads at once) and then checks
every recorded row against what its own parameter values must give: result,
persisted value, each metric point, seed, success, and exactly the trial ids
that ran. Steps are defined inside functions so that they pickle by value to
dask worker processes (the test module is not imported there).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import distributed
import pandas as pd
import pytest
import scipy.stats

from daskperiment import Experiment
from daskperiment.collector import python_packages
from daskperiment.envblob import load_environment
from daskperiment.errors import ParameterNotDefinedError, SweepError, UntrackedComputeError
from daskperiment.seeding import SEED_LIMIT
from daskperiment.trial import TrialResult

WAIT = 180  # seconds any single trial may take before the test fails instead of hanging
OTHER_ENVIRONMENT = "dask workers run in another environment than this process"


# -- clusters ----------------------------------------------------------------------------------
def local_cluster(n_workers: int = 2, threads_per_worker: int = 2) -> distributed.LocalCluster:
    """A cluster of worker processes on this machine (each restarted by its nanny if it dies)."""
    return distributed.LocalCluster(
        n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True, dashboard_address=None
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    """Two worker processes of two threads, shared by the tests of this module."""
    with local_cluster() as cluster:
        yield cluster


@pytest.fixture
def client(cluster: distributed.LocalCluster) -> Iterator[distributed.Client]:
    """A client of the shared cluster, active (the default scheduler) during the test."""
    with distributed.Client(cluster) as client:
        yield client


@pytest.fixture(params=["local", "redis", "mongo"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Keyword arguments of ``make_experiment`` for each kind of store."""
    if request.param == "local":
        return {}
    return {"backend": request.getfixturevalue(f"{request.param}_uri")}


# -- the experiment of most tests, and what each of its rows must hold --------------------------
def doubling(ex: Experiment) -> TrialResult:
    """``score(double(a))``: a persisted step saving two metric points, a result naming its trial."""
    a = ex.parameter("a")

    @ex.persist
    def double(a):
        ex.save_metric("a", 0, a)
        ex.save_metric("a", 1, a + 0.5)
        return 2 * a

    @ex.result
    def score(d):
        return (d, ex.current_trial_id)

    return score(double(a))


@dataclass(frozen=True)
class Expected:
    """What a trial ran with: its parameter ``a`` and the seed it was given (None: generated)."""

    a: int
    seed: int | None


def metric_points(ex: Experiment, key: str, trial_ids: list[int]) -> dict[int, list[tuple[int, float]]]:
    """Every stored point of metric ``key`` per trial, duplicates included, as (epoch, value)."""
    points: dict[int, list[tuple[int, float]]] = {trial_id: [] for trial_id in trial_ids}
    for point in ex.backend.load_metrics(key, trial_ids):
        points[point.trial_id].append((point.epoch, point.value))
    return points


def check_seed(recorded: Any, given: int | None) -> None:
    assert isinstance(recorded, int) and 0 <= recorded < SEED_LIMIT
    if given is not None:
        assert recorded == given


def check_doubling_rows(ex: Experiment, expected: Mapping[int, Expected]) -> None:
    """The store holds exactly the trials ``expected`` (ids 1..n), each as its own ``a`` gives."""
    history = ex.get_history(verbose=True)
    assert sorted(history.index) == sorted(expected) == list(range(1, len(expected) + 1))
    points = metric_points(ex, "a", list(expected))
    for trial_id, row in history.iterrows():
        a = expected[trial_id].a
        assert ex.get_parameters(trial_id) == {"a": a}
        assert row["Success"] and pd.isna(row["Description"]), (trial_id, row["Description"])
        assert tuple(row["Result"]) == (2 * a, trial_id)
        assert ex.get_persisted("double", trial_id) == 2 * a
        assert points[trial_id] == [(0, float(a)), (1, a + 0.5)], trial_id
        check_seed(row["Seed"], expected[trial_id].seed)


class DoublingTrials:
    """Runs trials of :func:`doubling` in every way a user can, noting what each ran with.

    Every trial gets its own value of ``a``, so a row holding another trial's
    records cannot pass the check.
    """

    def __init__(self, ex: Experiment, scheduler: Any = None) -> None:
        self.ex = ex
        self.result = doubling(ex)
        self.scheduler = scheduler
        self.expected: dict[int, Expected] = {}
        self._values = itertools.count(1)

    def _note(self, value: Any, a: int, seed: int | None, trial_id: int | None = None) -> None:
        doubled, trial = value
        assert doubled == 2 * a and trial not in self.expected
        assert trial_id in (None, trial)
        self.expected[trial] = Expected(a, seed)

    def sequential(self, count: int) -> None:
        """``count`` trials one after the other: ``set_parameters`` + ``compute()``, or ``ex.run``."""
        for a in itertools.islice(self._values, count):
            if a % 2:
                self.ex.set_parameters(a=a)
                self._note(self.result.compute(scheduler=self.scheduler), a, None)
            else:
                self._note(self.ex.run(self.result, a=a, seed=a, scheduler=self.scheduler), a, a)

    def threaded(self, count: int, threads: int = 8) -> None:
        """``count`` trials with ``ex.run`` from a pool of ``threads`` threads."""
        values = list(itertools.islice(self._values, count))

        def run(a: int) -> Any:
            return self.ex.run(self.result, a=a, seed=a, scheduler=self.scheduler)

        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(run, values))
        for a, value in zip(values, results):
            self._note(value, a, a)

    def submitted(self, count: int) -> None:
        """``count`` trials with ``ex.submit``, all in flight at once."""
        futures = {
            a: self.ex.submit(self.result, a=a, seed=a, scheduler=self.scheduler)
            for a in itertools.islice(self._values, count)
        }
        for a, future in futures.items():
            self._note(future.result(timeout=WAIT), a, a, future.trial_id)

    def every_way(self, sequential: int, threaded: int, submitted: int) -> None:
        """Run that many trials of each kind, one kind after the other, then check every row."""
        self.sequential(sequential)
        self.threaded(threaded)
        self.submitted(submitted)
        self.check()

    def check(self) -> None:
        check_doubling_rows(self.ex, self.expected)


# -- 1, 2: many trials on a cluster and on the local schedulers ---------------------------------
def test_cluster_trials_on_every_store(client, store, make_experiment, warnings_of) -> None:
    trials = DoublingTrials(make_experiment(**store))
    trials.every_way(sequential=100, threaded=50, submitted=50)
    # the workers share this process's environment: nothing to warn about or record
    assert not [w for w in warnings_of() if OTHER_ENVIRONMENT in w]
    assert not any(t.worker_environment_digests for t in trials.ex.backend.load_trials())


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_local_scheduler_trials(scheduler, make_experiment) -> None:
    DoublingTrials(make_experiment(), scheduler).every_way(sequential=30, threaded=30, submitted=30)


def test_server_store_trials_on_threads(server_uri, make_experiment) -> None:
    DoublingTrials(make_experiment(backend=server_uri), "threads").every_way(30, 30, 30)


# -- 3: a worker killed while it runs a step ----------------------------------------------------
def blocking(ex: Experiment, folder: Path) -> TrialResult:
    """``score(slow(a))``: ``slow`` saves 3 metric points, notes its pid, then waits for ``folder/go``."""
    a = ex.parameter("a")
    pids, go = folder / "pids", folder / "go"

    @ex.persist
    def slow(a):
        for epoch in range(3):
            ex.save_metric("m", epoch, 10 * a + epoch)
        with open(pids, "a") as file:
            file.write(f"{os.getpid()}\n")
        while not go.exists():
            time.sleep(0.02)
        return 2 * a

    @ex.result
    def score(d):
        return (d, ex.current_trial_id)

    return score(slow(a))


def lines_of(path: Path, count: int) -> list[str]:
    """The lines of ``path`` once it has at least ``count`` of them."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.02)
    raise AssertionError(f"{path} never had {count} lines")


def trial_records(ex: Experiment, trial_id: int, step: str, metric: str) -> dict[str, Any]:
    """What a trial recorded, without its id: result, success, persisted value, metric points."""
    (record,) = ex.backend.load_trials([trial_id])
    result, trial = record.result
    assert trial == trial_id
    return {
        "result": result,
        "success": record.success,
        "seed": record.seed,
        "persisted": ex.get_persisted(step, trial_id),
        "points": metric_points(ex, metric, [trial_id])[trial_id],
    }


def test_worker_killed_mid_step_records_what_an_undisturbed_run_records(make_experiment, tmp_path) -> None:
    ex = make_experiment()
    folder = tmp_path / "signals"
    folder.mkdir()
    result = blocking(ex, folder)
    with local_cluster(threads_per_worker=1) as cluster, distributed.Client(cluster):
        (folder / "go").touch()
        undisturbed = ex.run(result, a=4, seed=9)[1]
        (folder / "go").unlink()
        (folder / "pids").unlink()
        future = ex.submit(result, a=4, seed=9)
        first = int(lines_of(folder / "pids", 1)[0])
        assert first != os.getpid()
        os.kill(first, signal.SIGKILL)
        second = int(lines_of(folder / "pids", 2)[1])  # dask ran the step again, elsewhere
        assert second != first
        (folder / "go").touch()
        assert future.result(timeout=WAIT) == (8, future.trial_id)
    expected = {
        "result": 8, "success": True, "seed": 9, "persisted": 8,
        "points": [(0, 40.0), (1, 41.0), (2, 42.0)],
    }
    assert trial_records(ex, undisturbed, "slow", "m") == expected
    assert trial_records(ex, future.trial_id, "slow", "m") == expected
    assert sorted(ex.get_history().index) == [undisturbed, future.trial_id]


# -- 4: workers in another environment than the client ------------------------------------------
def fake_distribution(folder: Path) -> Path:
    """A folder holding the metadata of distribution ``fakepkg`` 1.2.3 (nothing to import)."""
    info = folder / "fakepkg-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.2.3\n")
    return folder


@pytest.fixture
def foreign_worker_cluster(tmp_path, child_env) -> Iterator[distributed.Client]:
    """A client of a cluster whose one worker (a ``dask worker`` process) also sees ``fakepkg``."""
    fake = fake_distribution(tmp_path / "fake")
    env = {**child_env, "PYTHONPATH": os.pathsep.join([str(fake), child_env["PYTHONPATH"]])}
    log = (tmp_path / "worker.log").open("wb")
    with local_cluster(n_workers=0) as cluster:
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
             "--nthreads", "2", "--no-dashboard"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        try:
            with distributed.Client(cluster) as client:
                client.wait_for_workers(1, timeout=WAIT)
                yield client
        finally:
            worker.terminate()
            worker.wait(60)
            log.close()


def test_workers_in_another_environment_are_recorded_and_warned_about(
    foreign_worker_cluster, make_experiment, warnings_of
) -> None:
    trials = DoublingTrials(make_experiment())
    trials.every_way(sequential=4, threaded=4, submitted=4)
    records = trials.ex.backend.load_trials()
    (digest,) = {d for record in records for d in record.worker_environment_digests}
    assert all(record.worker_environment_digests == (digest,) for record in records)
    assert digest != records[0].environment_digest
    assert "fakepkg==1.2.3" in python_packages(load_environment(trials.ex.backend.load_blob(digest)))
    assert "fakepkg==1.2.3" not in trials.ex.get_python_packages().splitlines()
    (warning,) = [w for w in warnings_of() if OTHER_ENVIRONMENT in w]  # once, not per trial
    assert "fakepkg" in warning


# -- 5: sweeps ----------------------------------------------------------------------------------
GRID = {"a": [1, 2, 3, 4], "b": [0, 1, 2, 3, 4]}


class SweepLab:
    """An experiment for sweeps: ``combine(prepare(a), b)``; ``prepare`` notes each of its calls.

    Parameters
    ----------
    ex : Experiment
        A fresh experiment.
    folder : Path
        Where the calls of ``prepare`` are noted (a line ``pid a`` per call).
    fail_b : int, optional
        ``combine`` raises ``ValueError`` for this value of ``b``.
    """

    def __init__(self, ex: Experiment, folder: Path, fail_b: int | None = None) -> None:
        self.ex = ex
        self.fail_b = fail_b
        self.calls = calls = folder / f"{ex.id}-prepare-calls"
        a, b = ex.parameter("a"), ex.parameter("b")

        @ex.persist
        def prepare(a):
            with open(calls, "a") as file:
                file.write(f"{os.getpid()} {a!r}\n")
            ex.save_metric("prepared", 0, a)
            return 10 * a

        @ex.result
        def combine(p, b):
            if b == fail_b:
                raise ValueError(f"b is {b}")
            ex.save_metric("combined", 0, p + b)
            return (p + b, ex.current_trial_id)

        self.result = combine(prepare(a), b)

    def sweep(self, scheduler: Any, **options: Any) -> Any:
        return self.ex.sweep(self.result, scheduler=scheduler, **options)

    def prepared(self) -> list[float]:
        """The values of ``a`` ``prepare`` ran with since the last call, sorted."""
        if not self.calls.exists():
            return []
        lines = self.calls.read_text().splitlines()
        self.calls.unlink()
        return sorted(float(line.split()[1]) for line in lines)

    def check(self, frame: Any, name: str, seed: int | None = None) -> list[tuple[Any, Any]]:
        """Every row of the sweep ``frame`` holds what its own ``a`` and ``b`` give; returns them."""
        ids = list(frame.index)
        history = self.ex.get_history(verbose=True).loc[ids]
        assert list(frame["Result"]) == list(history["Result"])
        assert set(frame["Sweep"]) == {name} and set(history["Sweep"]) == {name}
        prepared = metric_points(self.ex, "prepared", ids)
        combined = metric_points(self.ex, "combined", ids)
        for trial_id, row in history.iterrows():
            a, b = row["a"], row["b"]
            assert self.ex.get_parameters(trial_id) == {"a": a, "b": b}
            assert self.ex.get_persisted("prepare", trial_id) == 10 * a
            assert prepared[trial_id] == [(0, float(a))]
            check_seed(row["Seed"], seed)
            if b == self.fail_b:
                assert not row["Success"] and pd.isna(row["Result"])
                assert row["Description"] == f"ValueError(b is {b})"
                assert combined[trial_id] == []
            else:
                assert row["Success"] and pd.isna(row["Description"]), (trial_id, row["Description"])
                assert tuple(row["Result"]) == (10 * a + b, trial_id)
                assert combined[trial_id] == [(0, float(10 * a + b))]
        return list(zip(history["a"], history["b"]))


@pytest.fixture(params=["threads", "processes", "cluster"])
def sweep_scheduler(request: pytest.FixtureRequest) -> str | None:
    """The scheduler of a sweep; on the cluster none is given: the active client is the default."""
    if request.param == "cluster":
        request.getfixturevalue("client")
        return None
    return request.param


def test_grid_and_list_sweeps_share_steps(sweep_scheduler, make_experiment, tmp_path) -> None:
    lab = SweepLab(make_experiment(), tmp_path)
    frame = lab.sweep(sweep_scheduler, grid=GRID, seed=7, name="grid-1")
    assert lab.check(frame, "grid-1", seed=7) == list(itertools.product(GRID["a"], GRID["b"]))
    assert lab.prepared() == GRID["a"]  # once per value of a, not per trial

    chunked = lab.sweep(sweep_scheduler, grid=GRID, seed=7, name="chunked", max_in_flight=3)
    assert lab.check(chunked, "chunked", seed=7) == list(itertools.product(GRID["a"], GRID["b"]))
    assert lab.prepared() == GRID["a"]  # outputs still needed are carried to the next graphs

    listed = [{"a": 5, "b": 1}, {"a": 6, "b": 2}, {"a": 5, "b": 4}]
    frame = lab.sweep(sweep_scheduler, trials=listed, name="listed")
    assert lab.check(frame, "listed") == [(t["a"], t["b"]) for t in listed]
    assert lab.prepared() == [5, 6]

    unshared = lab.sweep(sweep_scheduler, grid=GRID, name="unshared", share=False)
    assert lab.check(unshared, "unshared") == list(itertools.product(GRID["a"], GRID["b"]))
    assert lab.prepared() == sorted(GRID["a"] * len(GRID["b"]))  # once per trial
    assert len(lab.ex.get_history()) == 20 + 20 + 3 + 20


def test_random_sweeps_and_seeds_are_reproducible(sweep_scheduler, make_experiment, tmp_path) -> None:
    lab = SweepLab(make_experiment(), tmp_path)
    space = {"a": scipy.stats.uniform(0, 1), "b": [0, 1, 2, 4]}
    first = lab.check(lab.sweep(sweep_scheduler, random=space, n=20, sample_seed=3, name="r1"), "r1")
    again = lab.check(lab.sweep(sweep_scheduler, random=space, n=20, sample_seed=3, name="r2"), "r2")
    other = lab.check(lab.sweep(sweep_scheduler, random=space, n=20, sample_seed=4, name="r3"), "r3")
    assert first == again and first != other
    assert len({a for a, _ in first}) == 20 and all(0 <= a < 1 for a, _ in first)
    assert {b for _, b in first + other} <= {0, 1, 2, 4}
    lab.prepared()

    seeds = []
    for name in ("s1", "s2"):
        frame = lab.sweep(sweep_scheduler, grid=GRID, seed=11, per_trial_seeds=True, name=name)
        assert lab.check(frame, name) == list(itertools.product(GRID["a"], GRID["b"]))
        seeds.append(list(lab.ex.get_history(verbose=True).loc[frame.index, "Seed"]))
    assert seeds[0] == seeds[1] and len(set(seeds[0])) == 20


def test_a_failing_trial_of_a_sweep_stops_no_other(sweep_scheduler, make_experiment, tmp_path) -> None:
    lab = SweepLab(make_experiment(), tmp_path, fail_b=3)
    frame = lab.sweep(sweep_scheduler, grid=GRID, name="failing")
    assert lab.check(frame, "failing") == list(itertools.product(GRID["a"], GRID["b"]))
    assert (~frame["Success"]).sum() == len(GRID["a"])
    assert lab.prepared() == GRID["a"]


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"grid": {"a": 1, "b": [0]}}, SweepError, "must be a list of values"),
        ({"grid": {"a": [], "b": [0]}}, SweepError, "'a' are empty"),
        ({"grid": {"a": [1]}, "trials": [{"a": 1}]}, SweepError, "exactly one of"),
        ({"grid": {"a": [1]}, "n": 3}, SweepError, "use it with random"),
        ({"random": {"a": [1, 2]}}, SweepError, "needs n"),
        ({"trials": []}, SweepError, "trials is empty"),
        ({"grid": {"a": [1], "c": [1]}}, ParameterNotDefinedError, "'c' is not defined"),
        ({"grid": {"a": [1]}, "max_in_flight": 0}, SweepError, "max_in_flight must be a positive"),
        ({"grid": {"a": [1]}, "name": "bad name"}, SweepError, "invalid sweep name"),
    ],
    ids=["value-not-list", "empty-list", "grid-and-trials", "n-without-random", "random-without-n",
         "no-trials", "unknown-parameter", "max-in-flight-0", "bad-name"],
)
def test_malformed_sweeps_raise_and_record_nothing(
    options, error, message, make_experiment, tmp_path
) -> None:
    lab = SweepLab(make_experiment(), tmp_path)
    lab.sweep("threads", grid={"a": [1], "b": [0]}, name="good")
    with pytest.raises(error, match=message):
        lab.sweep("threads", **{"name": "bad", **options})
    assert lab.ex.trial_id == 1 and list(lab.ex.get_history().index) == [1]
    assert lab.prepared() == [1]


# -- 6: non-blocking trials, and computations that would record nothing -------------------------
def assert_untracked(ex: Experiment, *computations: Callable[[], Any]) -> None:
    """Each computation raises UntrackedComputeError (naming the right calls); none records a trial."""
    for compute in computations:
        with pytest.raises(UntrackedComputeError, match="ex.submit"):
            compute()
    assert ex.trial_id == 0 and ex.get_history().empty


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_untracked_computations_raise_and_record_nothing(scheduler, make_experiment) -> None:
    ex = make_experiment()
    result = doubling(ex)
    ex.set_parameters(a=1)
    with pytest.raises(TypeError, match="ex.submit"):
        result.compute(sync=False)
    with dask.config.set(scheduler=scheduler):
        assert_untracked(ex, lambda: dask.compute(result), lambda: result.persist())
    assert ex.run(result, a=2) == (4, 1)  # the first recorded trial gets the first id


def test_untracked_computations_on_the_cluster(client, make_experiment) -> None:
    ex = make_experiment()
    result = doubling(ex)
    ex.set_parameters(a=1)
    assert_untracked(
        ex, lambda: client.compute(result).result(timeout=WAIT), lambda: dask.compute(result),
        lambda: client.persist(result).compute(),
    )
    assert ex.run(result, a=2) == (4, 1)


@pytest.mark.parametrize("on_cluster", [False, True], ids=["threads", "cluster"])
def test_submitted_failing_trial(on_cluster, make_experiment, request) -> None:
    if on_cluster:
        request.getfixturevalue("client")
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def invert(a):
        return 1 / a

    futures = {value: ex.submit(invert(a), a=value) for value in (1, 0, 2)}
    error = futures[0].exception(timeout=WAIT)
    assert type(error) is ZeroDivisionError and str(error) == "division by zero"
    with pytest.raises(ZeroDivisionError):
        futures[0].result()
    assert futures[1].result(timeout=WAIT) == 1.0 and futures[2].result(timeout=WAIT) == 0.5
    history = ex.get_history()
    failed = history.loc[futures[0].trial_id]
    assert not failed["Success"] and failed["Description"] == "ZeroDivisionError(division by zero)"
    assert history.loc[[futures[1].trial_id, futures[2].trial_id], "Success"].all()
    assert sorted(history.index) == [1, 2, 3]


def test_two_hundred_trials_submitted_at_once_on_threads(make_experiment) -> None:
    trials = DoublingTrials(make_experiment(), "threads")
    trials.submitted(200)
    trials.check()
