"""numpy is seeded for every trial, yet never imported for that: a process that does not use it never pays its import.

Each test runs trials in a new Python process, as a script does: numpy is not
imported there unless the experiment imports it, and a step that imports it
(at any moment) draws what a seeding at the start of the trial gives.
"""

from __future__ import annotations

import json
from typing import Callable

import numpy as np
import pytest

from daskperiment.seeding import step_seed

SCHEDULERS = ["sync", "threads", "processes", "distributed"]

PREAMBLE = """
import json, os, sys
NUMPY_FIRST
import daskperiment

scheduler = sys.argv[1]
if scheduler == "distributed":
    import distributed
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    scheduler = None
ex = daskperiment.Experiment("seeds", script_mode=False)
n = ex.parameter("n")
"""

DRAWS = PREAMBLE + """

@ex.result
def draw(n):
    if n % 3 == 1:  # these trials do not use numpy
        return [os.getpid(), None]
    import numpy  # imported by the step, the first time in this process for n = 2
    return [os.getpid(), float(numpy.random.random())]


out = [[value, seed, *ex.run(draw(n), n=value, seed=seed, scheduler=scheduler)]
       for value, seed in [(1, 11), (2, 12), (3, 13), (4, 14), (5, 15), (6, 16), (7, 17)]]
generated = ex.run(draw(n), n=8, scheduler=scheduler)  # a generated seed, recorded
out.append([8, int(ex.get_history(verbose=True).loc[ex.trial_id, "Seed"]), *generated])
print(json.dumps({"draws": out, "pid": os.getpid()}))
"""

NO_NUMPY = PREAMBLE + """

@ex
def prepare(n):
    return n + 1


@ex.result
def score(s):
    ex.save_metric("loss", 0, s / 2)
    return s * 2


assert [ex.run(score(prepare(n)), n=value, scheduler=scheduler) for value in range(12)] == [
    (value + 1) * 2 for value in range(12)
]
imported = "numpy" in sys.modules
history = ex.get_history(verbose=True)  # pandas (hence numpy) makes the table
assert history["Result"].tolist()[-12:] == [(value + 1) * 2 for value in range(12)]
assert ex.load_metric("loss", list(history.index[-12:])).loc[0].tolist() == [(value + 1) / 2 for value in range(12)]
print(json.dumps({"numpy": imported}))
"""


def expected_draw(seed: int, in_worker: bool) -> float:
    """What ``numpy.random.random()`` gives right after the trial's seeding (a worker seeds per step)."""
    return float(np.random.RandomState(step_seed(seed, "draw") if in_worker else seed).random_sample())


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("numpy_first", [False, True], ids=["numpy imported by a step", "numpy imported first"])
def test_a_step_draws_the_seeded_numbers_whenever_numpy_is_imported(
    run_python: Callable, scheduler: str, numpy_first: bool
) -> None:
    child = run_python(DRAWS.replace("NUMPY_FIRST", "import numpy" if numpy_first else ""), scheduler, timeout=240)
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout.strip().splitlines()[-1])
    draws = report["draws"]
    assert [row[0] for row in draws] == list(range(1, 9))
    for value, seed, pid, drawn in draws:
        if value % 3 == 1:
            assert drawn is None
            continue
        assert drawn == expected_draw(seed, in_worker=pid != report["pid"]), (value, seed, pid)
    if scheduler in ("sync", "threads"):
        assert {pid for _, _, pid, _ in draws} == {report["pid"]}
    else:
        assert report["pid"] not in {pid for _, _, pid, _ in draws}


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_trials_of_an_experiment_without_numpy_never_import_it(run_python: Callable, scheduler: str) -> None:
    first = run_python(NO_NUMPY.replace("NUMPY_FIRST", ""), scheduler)  # fills the user cache (package reports)
    assert first.returncode == 0, first.stderr
    again = run_python(NO_NUMPY.replace("NUMPY_FIRST", ""), scheduler)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1]) == {"numpy": False}


ENVIRONMENT = """
import json, sys
if sys.argv[1] == "numpy first":
    import numpy
import daskperiment
ex = daskperiment.Experiment("blas", script_mode=False)


@ex.result
def one():
    return 1


one().compute()
print(json.dumps({"numpy": ex.get_environment(ex.trial_id, category="numpy")}))
"""


def test_blas_threads_are_recorded_where_numpy_was_imported_and_their_absence_is_no_change(
    run_python: Callable,
) -> None:
    for order in ["numpy first", "no numpy", "numpy first", "no numpy", "no numpy"]:
        child = run_python(ENVIRONMENT, order)
        assert child.returncode == 0, child.stderr
        numpy_report = json.loads(child.stdout.strip().splitlines()[-1])["numpy"]
        assert "numpy version:" in numpy_report
        assert ("BLAS threads" in numpy_report) == (order == "numpy first"), order
        assert "Environment has been changed" not in child.stderr, child.stderr
