"""Moving experiments with running and killed trials and the purity check's step hashes (issue 12)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import WAIT_SECONDS, wait_until
from daskperiment import Experiment
from daskperiment.backend import open_backend
from daskperiment.records import MetricPoint, TrialStart
from daskperiment.transfer import copy_experiment, export_experiment, import_experiment

STORES = ("local", "redis", "mongo")
CHANGED = "Experiment step result is changed with the same input"
FINISHED, KILLED = 24, 6
STEP_OUTPUTS = 12 + 18  # drift(a) for 12 values of a; train(d, a): 6 odd a, 6 even a with 2 outputs of drift


def store_spec(kind: str, request: pytest.FixtureRequest, folder: Path) -> Any:
    return folder / "store" if kind == "local" else request.getfixturevalue(f"{kind}_uri")


def define(ex: Experiment, counter: Path, gate: threading.Event | None = None) -> Any:
    """The graph of every experiment here: ``drift`` gives another output at each call for an even ``a``."""
    a = ex.parameter("a")

    @ex
    def drift(a):
        calls = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(calls))
        return a if a % 2 else a * 1000 + calls

    @ex.result
    def train(d, a):
        for epoch in range(a + 3):
            ex.save_metric("loss", epoch, a + epoch / 10)
        if a < 0:  # the running trial: waits for the test, its points streamed meanwhile
            assert gate is not None and gate.wait(WAIT_SECONDS)
        return d

    return train(drift(a), a)


def killed_start(a: int, when: float) -> TrialStart:
    """What a process SIGKILLed while running trial ``a`` leaves: a start whose heartbeat is stale."""
    return TrialStart({"a": a}, 100 + a, started=when - 60 - a, heartbeat=when - 50 - a, interval=1.0, process=f"h:{a}")


def build(ex: Experiment, counter: Path, gate: threading.Event) -> tuple[list[int], int]:
    """Finished trials (every even ``a`` twice: impure), killed ones with points, one running; their ids."""
    graph = define(ex, counter, gate)
    for n in range(FINISHED):
        ex.run(graph, a=n % 12, scheduler="sync", seed=1)  # step input keys hold the seed
    now = time.time()
    killed = list(ex.backend.start_trials([killed_start(a, now) for a in range(KILLED)]))
    ex.backend.write_metrics([MetricPoint(t, "loss", e, a * 100 + e) for a, t in enumerate(killed) for e in range(a + 1)])
    running = ex.submit(graph, a=-1, scheduler="sync", seed=1)
    wait_until(lambda: len(ex.backend.load_metrics("loss", [running.trial_id])) == 2, "the running trial's points")
    return killed, running


def stale(history: Any, running: int) -> list[Any]:
    return [history] if history.loc[running, "Status"] == "killed" else []


def check_moved(source: Any, target: Any, killed: list[int], running: int, outputs: dict[str, str]) -> None:
    """The target holds the source's trials, starts (heartbeats as exported), points and step hashes."""
    ids = list(range(1, FINISHED + 1))
    assert [t.trial_id for t in target.load_trials()] == ids
    starts = target.load_starts()
    assert list(starts) == [*killed, running]
    for a, trial_id in enumerate(killed):
        start = starts[trial_id]
        assert (dict(start.parameters), start.seed, start.process) == ({"a": a}, 100 + a, f"h:{a}")
        assert start.started == source.load_starts([trial_id])[trial_id].started
        assert start.heartbeat < time.time() - 49 and start.status(time.time()) == "killed"
    assert dict(starts[running].parameters) == {"a": -1} and starts[running].seed == 1
    loss = target.load_metrics("loss", [*ids, *killed, running])
    expected = [(t, e, float(n % 12 + e / 10)) for n, t in enumerate(ids) for e in range(n % 12 + 3)]
    expected += [(t, e, float(a * 100 + e)) for a, t in enumerate(killed) for e in range(a + 1)]
    expected += [(running, 0, -1.0), (running, 1, -0.9)]
    assert list(zip(loss.trial_ids.tolist(), loss.epochs.tolist(), loss.values.tolist())) == expected
    assert target.step_outputs() == outputs and len(outputs) == STEP_OUTPUTS


def move_everywhere(request: pytest.FixtureRequest, tmp_path: Path, source_spec: Any) -> list[tuple[Any, str]]:
    """Export "origin" and import it into every kind of store, and copy it there too; the copies."""
    exported = tmp_path / "origin.zip"
    manifest = export_experiment("origin", exported, backend=source_spec)
    assert (manifest["trials"], manifest["starts"], manifest["step_outputs"]) == (FINISHED, KILLED + 1, STEP_OUTPUTS)
    assert manifest["metric_points"] == sum(n % 12 + 3 for n in range(FINISHED)) + sum(range(1, KILLED + 1)) + 2
    moved = []
    for target_kind in STORES:
        target_spec = store_spec(target_kind, request, tmp_path / f"to-{target_kind}")
        report = import_experiment(exported, backend=target_spec, experiment_id=f"imported-{target_kind}")
        assert (report.trials, report.started) == (FINISHED, KILLED + 1)
        report = copy_experiment("origin", source_spec, target_spec, new_id=f"copied-{target_kind}")
        assert (report.trials, report.started) == (FINISHED, KILLED + 1)
        moved += [(target_spec, f"imported-{target_kind}"), (target_spec, f"copied-{target_kind}")]
    return moved


@pytest.mark.parametrize("source_kind", STORES)
def test_running_and_killed_trials_and_step_hashes_move_between_every_pair_of_stores(
    source_kind, request, tmp_path, make_experiment, fast, warnings_of,
) -> None:
    source_spec = store_spec(source_kind, request, tmp_path)
    counter, gate = tmp_path / "calls", threading.Event()
    ex = make_experiment("origin", backend=source_spec)
    killed, future = build(ex, counter, gate)
    outputs = ex.backend.step_outputs()  # as exported: the running trial adds its own when it ends
    try:
        moved = move_everywhere(request, tmp_path, source_spec)
    finally:
        gate.set()
    assert future.result(WAIT_SECONDS) == -1  # it ends in the source only
    running = future.trial_id
    for target_spec, experiment_id in moved:
        target = open_backend(target_spec, experiment_id)
        check_moved(ex.backend, target, killed, running, outputs)
        copy = Experiment(experiment_id, backend=target_spec)
        # no process beats the copy of the running trial: it shows killed once its exported heartbeat is stale
        (history,) = wait_until(lambda: stale(copy.get_history(), running), "the running trial's copy shown killed")
        assert list(history.index) == [*range(1, FINISHED + 1), *killed, running]
        for trial_id, row in history.iterrows():
            assert row["Status"] == ("finished" if trial_id <= FINISHED else "killed"), (experiment_id, trial_id)
        # the imported step hashes tell the copy's next trials apart: drift(a) of an even a changed
        graph = define(copy, counter)
        before = len([w for w in warnings_of() if CHANGED in w])
        assert copy.run(graph, a=3, scheduler="sync", seed=1) == 3 and copy.trial_id == running + 1
        copy.run(graph, a=4, scheduler="sync", seed=1)
        flagged = [w for w in warnings_of() if CHANGED in w][before:]
        assert len(flagged) == 1 and "step: drift, args: (4,)" in flagged[0], flagged
        assert copy.delete_trials(killed[:2]) == killed[:2]  # killed trials of a copy delete as any
