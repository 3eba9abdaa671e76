"""The per-trial path: a chain of steps as one task, the scheduler looked up per trial, generated seeds.

Every recorded row is checked against what its own parameters must give, on
each scheduler a trial can run on.
"""

from __future__ import annotations

import multiprocessing
import random
import weakref
from typing import Any, Callable

import distributed
import pandas as pd
import pytest

from daskperiment import Experiment
from daskperiment import seeding
from daskperiment.execution import execute_chain, execute_result
from daskperiment.graph import GraphSettings, TrialSpec, trial_graph

TRIALS = 30


def _chain(ex: Experiment) -> Any:
    """prepare -> scale -> score: each step takes the one before it (a chain)."""
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex
    def prepare(a, b):
        print(f"prepare {a} {b}")
        return a + b

    @ex
    def scale(s, b):
        ex.save_metric("scaled", epoch=0, value=s * b)
        return s * b + random.randrange(1000)

    @ex.result
    def score(v):
        for epoch in range(3):
            ex.save_metric("v", epoch=epoch, value=v + epoch)
        print(f"score {v}")
        return v * 2

    return score(scale(prepare(a, b), b))


def _expected(a: int, b: int, seed: int, scheduler: str = "sync") -> int:
    """The result of :func:`_chain`'s trial: its draw is the first after seeding with the trial's seed
    (in another process, with the seed of the step, see :func:`seeding.step_seed`)."""
    if scheduler in ("processes", "cluster"):
        seed = seeding.step_seed(seed, "scale")
    return ((a + b) * b + random.Random(seed).randrange(1000)) * 2


def _settings(**kwargs: Any) -> GraphSettings:
    return GraphSettings(experiment_id="x", origin="here:1", environment="e", session="s", **kwargs)


def test_a_chain_is_one_task_and_other_graphs_a_task_per_step(make_experiment: Callable[..., Experiment]) -> None:
    ex = make_experiment()
    result = _chain(ex)
    a = ex.parameter("a")

    @ex
    def left(a):
        return a

    @ex
    def right(a):
        return -a

    @ex.result
    def join(x, y):
        return x + y

    branching = join(left(a), right(a))
    spec = TrialSpec(7, {"a": 1, "b": 2}, 5)
    chain = trial_graph(result.call.plan(), [spec], _settings(), token="t", fuse=True)
    assert list(chain.graph) == [chain.trial_keys[7]] and chain.graph[chain.trial_keys[7]][0] is execute_chain
    on_cluster = trial_graph(result.call.plan(), [spec], _settings(records_apart=True), token="t", fuse=True)
    assert list(on_cluster.graph) == [on_cluster.trial_keys[7]]
    shared = trial_graph(result.call.plan(), [spec], _settings(share=True), token="t", fuse=True)
    assert len(shared.graph) == 3
    unfused = trial_graph(result.call.plan(), [spec], _settings(), token="t")  # as sweeps build them
    assert len(unfused.graph) == 3 and unfused.graph[unfused.trial_keys[7]][0] is execute_result
    apart = trial_graph(branching.call.plan(), [spec], _settings(), token="t", fuse=True)
    assert len(apart.graph) == 3 and apart.graph[apart.trial_keys[7]][0] is execute_result


def test_chained_trials_record_what_their_own_parameters_give(
    make_experiment: Callable[..., Experiment], scheduler: Any
) -> None:
    ex = make_experiment()
    result = _chain(ex)
    seeds = [1000 + n for n in range(TRIALS)]
    where = scheduler if isinstance(scheduler, str) else "cluster"
    for n, seed in enumerate(seeds):
        ex.set_parameters(a=n, b=n % 3 + 1)
        assert result.compute(seed=seed, scheduler=scheduler) == _expected(n, n % 3 + 1, seed, where)
    history = ex.get_history(verbose=True)
    assert len(history) == TRIALS and history["Success"].all()
    for trial_id, row in history.iterrows():
        a, b, seed = int(row["a"]), int(row["b"]), int(row["Seed"])
        assert (a, b, seed) == (trial_id - 1, a % 3 + 1, seeds[trial_id - 1])
        value = _expected(a, b, seed, where) // 2
        assert row["Result"] == value * 2
        assert ex.load_metric("v", trial_id).iloc[:, 0].tolist() == [value, value + 1, value + 2]
        assert ex.load_metric("scaled", trial_id).iloc[:, 0].tolist() == [(a + b) * b]
        assert ex.get_artifact("output", trial_id).read_text() == f"prepare {a} {b}\nscore {value}\n"


def test_a_seed_repeats_the_draws_and_a_generated_seed_is_recorded(make_experiment: Callable[..., Experiment]) -> None:
    ex = make_experiment()
    result = _chain(ex)
    ex.set_parameters(a=1, b=2)
    first = [result.compute(seed=42, scheduler="sync") for _ in range(5)]
    assert first == [_expected(1, 2, 42)] * 5
    generated = [result.compute(scheduler="sync") for _ in range(TRIALS)]
    seeds = ex.get_history(verbose=True)["Seed"].tolist()[5:]
    assert len(set(seeds)) == TRIALS and all(0 <= s < seeding.SEED_LIMIT for s in seeds)
    assert generated == [_expected(1, 2, s) for s in seeds]


def test_seeding_random_does_not_repeat_the_generated_seeds() -> None:
    random.seed(3)
    first = [seeding.choose_seed(None, None) for _ in range(5)]
    random.seed(3)
    assert not set(first) & {seeding.choose_seed(None, None) for _ in range(5)}


def _seeds_of_a_child(queue: Any) -> None:
    queue.put([seeding.choose_seed(None, None) for _ in range(20)])


def test_a_forked_process_draws_other_seeds_than_its_parent() -> None:
    seeding.choose_seed(None, None)  # the parent's generator exists before the fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_seeds_of_a_child, args=(queue,))
    child.start()
    theirs = queue.get(timeout=60)
    child.join(60)
    ours = [seeding.choose_seed(None, None) for _ in range(20)]
    assert len(set(theirs)) == 20 and not set(theirs) & set(ours)


class Data:
    """A step output a weak reference can follow (a stand-in for a large data set)."""

    def __init__(self, value: int) -> None:
        self.value = value


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_a_chain_lets_go_of_a_step_output_once_no_later_step_takes_it(
    make_experiment: Callable[..., Experiment], scheduler: str
) -> None:
    ex = make_experiment()
    a = ex.parameter("a")
    loaded: list[weakref.ref] = []
    alive_at_train: list[bool] = []

    @ex
    def load(a):
        data = Data(a)
        loaded.append(weakref.ref(data))
        return data

    @ex
    def features(data):
        return data.value * 3

    @ex.result
    def train(f):
        alive_at_train.append(loaded[-1]() is not None)
        return f + 1

    result = train(features(load(a)))
    for n in range(20):
        ex.set_parameters(a=n)
        assert result.compute(scheduler=scheduler) == n * 3 + 1
    assert alive_at_train == [False] * 20
    history = ex.get_history()
    assert history["Result"].tolist() == [n * 3 + 1 for n in range(20)]


def test_a_failing_step_of_a_chain_skips_the_rest_and_keeps_what_ran(
    make_experiment: Callable[..., Experiment],
) -> None:
    ex = make_experiment()
    a = ex.parameter("a")
    ran: list[int] = []

    @ex
    def prepare(a):
        ex.save_metric("seen", epoch=0, value=a)
        print(f"prepare {a}")
        if a % 3 == 0:
            raise ValueError(f"bad {a}")
        return a

    @ex.result
    def score(s):
        ran.append(s)
        return s + 1

    result = score(prepare(a))
    for n in range(TRIALS):
        ex.set_parameters(a=n)
        if n % 3 == 0:
            with pytest.raises(ValueError, match=f"bad {n}"):
                result.compute(scheduler="sync")
        else:
            assert result.compute(scheduler="threads") == n + 1
    assert ran == [n for n in range(TRIALS) if n % 3]
    history = ex.get_history()
    for trial_id, row in history.iterrows():
        n = trial_id - 1
        assert row["Success"] == bool(n % 3)
        assert row["Result"] == n + 1 if n % 3 else pd.isna(row["Result"])
        assert (row["Description"] == f"ValueError(bad {n})") == (n % 3 == 0)
        assert ex.load_metric("seen", trial_id).iloc[:, 0].tolist() == [n]
        assert ex.get_artifact("output", trial_id).read_text() == f"prepare {n}\n"


def test_an_impure_step_of_a_chain_is_warned_about_with_its_arguments(
    make_experiment: Callable[..., Experiment], warnings_of: Callable[[], list[str]]
) -> None:
    ex = make_experiment()
    x = ex.parameter("x")
    calls = iter(range(1000))

    @ex
    def impure(x, label="k"):
        return x + (next(calls) if x % 2 else 0)

    @ex.result
    def out(v):
        return v

    result = out(impure(x, label="k"))
    for _ in range(2):
        for n in range(TRIALS):
            ex.set_parameters(x=n)
            result.compute(scheduler="sync")
    warnings = [w for w in warnings_of() if "not pure" in w]
    assert sorted(warnings) == sorted(
        f"Experiment step result is changed with the same input: (step: impure, args: ({n},), "
        "kwargs: {'label': 'k'}) — the step is not pure: it returned a different output for the "
        "same code and inputs (and seed, when one was given: unseeded randomness, global state or I/O?)"
        for n in range(1, TRIALS, 2)
    )


def test_a_client_started_between_trials_runs_the_next_ones(
    make_experiment: Callable[..., Experiment], cluster: Any
) -> None:
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def where(a):
        try:
            distributed.get_worker()
        except ValueError:
            return (a, "here")
        return (a, "worker")

    result = where(a)

    def run(first: int) -> list[Any]:
        return [tuple(ex.run(result, {"a": n})) for n in range(first, first + 10)]

    assert run(0) == [(n, "here") for n in range(10)]
    with distributed.Client(cluster):
        assert run(10) == [(n, "worker") for n in range(10, 20)]
    assert run(20) == [(n, "here") for n in range(20, 30)]
    history = ex.get_history()
    assert [tuple(r) for r in history["Result"]] == (
        [(n, "here") for n in range(10)] + [(n, "worker") for n in range(10, 20)]
        + [(n, "here") for n in range(20, 30)]
    )
