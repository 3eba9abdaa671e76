"""What sweeps and cluster trials report to the user: progress, and warnings raised in workers."""

from __future__ import annotations

import itertools

import pytest
import scipy.stats as scipy_stats
from distributed import Client, LocalCluster

from daskperiment import Experiment


def test_progress_bar_counts_trials_and_failures(ex: Experiment, capsys: pytest.CaptureFixture) -> None:
    a = ex.parameter("a")

    @ex.result
    def inverse(a):
        return 1 / a

    frame = ex.sweep(inverse(a), grid={"a": [0, 1, 2, 4]}, progress=True, scheduler="sync")
    line = capsys.readouterr().err.splitlines()[-1]
    assert "4/4 trials, 1 failed" in line and "[" + "#" * 30 + "]" in line
    assert frame["Success"].tolist() == [False, True, True, True]
    assert frame["Result"].tolist()[1:] == [1.0, 0.5, 0.25]


def test_purity_warning_of_a_step_run_on_a_worker_reaches_the_client(
    ex: Experiment, warnings_of
) -> None:
    a = ex.parameter("a")

    @ex.result
    def stamped(a):
        import time

        return (a, time.perf_counter_ns())  # impure: another output for the same input

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster):
            for _ in range(3):
                ex.run(stamped(a), a=1)
    impure = [w for w in warnings_of() if "Experiment step result is changed with the same input" in w]
    assert len(impure) == 2 and all("step: stamped, args: (1,), kwargs: {}" in w for w in impure)
    history = ex.get_history()
    assert history["a"].tolist() == [1, 1, 1] and history["Success"].all()
    assert all(trial.worker_environment_digests == () for trial in ex.backend.load_trials())


def test_each_trial_of_a_random_sweep_records_its_own_draw(ex: Experiment) -> None:
    x, kind = ex.parameter("x"), ex.parameter("kind")

    @ex.result
    def label(x, kind):
        return f"{kind}:{x:.6f}"

    first = ex.sweep(label(x, kind), random={"x": scipy_stats.uniform(2, 3), "kind": ["u", "v"]}, n=12, sample_seed=5, name="r1")
    again = ex.sweep(label(x, kind), random={"x": scipy_stats.uniform(2, 3), "kind": ["u", "v"]}, n=12, sample_seed=5, name="r2")
    assert first["x"].tolist() == again["x"].tolist() and first["kind"].tolist() == again["kind"].tolist()
    assert all(2 <= value <= 5 for value in first["x"]) and set(first["kind"]) <= {"u", "v"}
    for frame, name in ((first, "r1"), (again, "r2")):
        for (_, row) in frame.iterrows():
            assert row["Result"] == f"{row['kind']}:{row['x']:.6f}" and row["Sweep"] == name
    assert len(set(itertools.chain(first.index, again.index))) == 24
