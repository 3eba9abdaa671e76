"""dask hashes a trial graph on a cluster (``Client.get``): its nodes hash by what names them, not field by field."""

from __future__ import annotations

import threading
from typing import Callable

import distributed
from dask.base import tokenize

from daskperiment import Experiment
from daskperiment.graph import GraphSettings, TrialSpec, trial_graph

SETTINGS = GraphSettings(experiment_id="x", origin="here:1", environment="e", session="s1")


def _graph(result, trial_id: int, a: int, settings: GraphSettings = SETTINGS) -> dict:
    spec = TrialSpec(trial_id, {"a": a}, 7, True)
    return trial_graph(result.call.plan(), [spec], settings, token="t").graph


def _locked_result(ex: Experiment):
    """The result of a 2-step chain whose first step closes over what no pickler takes (a lock)."""
    a = ex.parameter("a")
    lock = threading.Lock()

    @ex
    def prepare(a):
        with lock:
            return a + 1

    @ex.result
    def score(s):
        return s * 2

    return score(prepare(a))


def test_nodes_hash_by_trial_step_and_session_and_never_pickle_the_step(make_experiment: Callable[..., Experiment]) -> None:
    result = _locked_result(make_experiment())
    one = _graph(result, 1, 5)
    assert tokenize(one, ensure_deterministic=True) == tokenize(_graph(result, 1, 5), ensure_deterministic=True)
    tokens = {tokenize(_graph(result, trial_id, 5), ensure_deterministic=True) for trial_id in range(1, 30)}
    other_session = GraphSettings(experiment_id="x", origin="here:1", environment="e", session="s2")
    tokens.add(tokenize(_graph(result, 1, 5, other_session), ensure_deterministic=True))
    assert len(tokens) == 30
    nodes = [value[1] for key, value in sorted(one.items()) if isinstance(value, tuple) and len(value) > 2]
    assert len({tokenize(node, ensure_deterministic=True) for node in nodes}) == len(nodes) == 2


def test_a_chained_trial_hashes_by_trial_steps_and_session_and_never_pickles_a_step(
    make_experiment: Callable[..., Experiment],
) -> None:
    plan = _locked_result(make_experiment()).call.plan()

    def token(trial_id: int, session: str = "s") -> str:
        settings = GraphSettings(
            experiment_id="x", origin="here:1", environment="e", session=session, records_apart=True
        )
        graph = trial_graph(plan, [TrialSpec(trial_id, {"a": 5}, 7)], settings, token="t", fuse=True).graph
        assert len(graph) == 1
        return tokenize(graph, ensure_deterministic=True)

    assert token(1) == token(1)
    assert len({token(trial_id) for trial_id in range(1, 31)} | {token(1, "other")}) == 31


def test_trials_on_a_cluster_record_what_they_computed(make_experiment: Callable[..., Experiment]) -> None:
    ex = make_experiment()
    a = ex.parameter("a")

    @ex
    def prepare(a):
        return a + 1

    @ex.result
    def score(s):
        ex.save_metric("s", 0, s)
        return s * 2

    result = score(prepare(a))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster):
            assert [ex.run(result, a=n) for n in range(40)] == [(n + 1) * 2 for n in range(40)]
    history = ex.get_history()
    assert history["a"].tolist() == list(range(40)) and history["Result"].tolist() == [(n + 1) * 2 for n in range(40)]
    assert ex.load_metric("s", list(range(1, 41))).loc[0].tolist() == [n + 1 for n in range(40)]
