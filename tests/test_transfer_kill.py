"""An import or copy killed at any moment leaves the target with nothing of the experiment, or all of it (issue 12)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from daskperiment import Experiment
from daskperiment.artifactstore import ArtifactStore, artifact_location
from daskperiment.backend import Backend, experiment_ids, open_backend
from daskperiment.deletion import delete_experiment
from daskperiment.transfer import export_experiment, import_experiment
from daskperiment.transfer.loading import STAGING_PREFIX

KILLS_PER_STORE = 4
TRIALS = 120

IMPORTER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from daskperiment.transfer import copy_experiment, import_experiment

    mode, source, target, experiment_id = sys.argv[1:]
    spec = target if "://" in target else Path(target)
    from daskperiment.backend import open_backend
    open_backend(spec, "warm-up").metric_keys()  # the client library imported, the server reached
    print("go", flush=True)
    began = time.perf_counter()
    if mode == "import":
        import_experiment(source, backend=spec, experiment_id=experiment_id)
    else:  # copy from the local store of the export
        copy_experiment("origin", Path(source), spec, new_id=experiment_id)
    print(f"done {time.perf_counter() - began:.3f}", flush=True)
    """
)


def build_export(make_experiment: Any, tmp_path: Path) -> Path:
    """An export of TRIALS trials with 40 points each, notes, tags, a setting; its file."""
    ex = make_experiment("origin", backend=tmp_path / "source")
    a = ex.parameter("a")

    @ex.result
    def train(a):
        for epoch in range(40):
            ex.save_metric("loss", epoch, a + epoch / 100)
        ex.add_tags(f"a{a % 7}")
        return a * 2

    ex.sweep(train(a), grid={"a": list(range(TRIALS))}, scheduler="sync")
    ex.set_note(3, "third")
    ex.set_direction("minimize")
    path = tmp_path / "origin.zip"
    export_experiment("origin", path, backend=tmp_path / "source")
    return path


def holdings(backend: Backend) -> dict[str, Any]:
    """What the store holds of the experiment, summed up."""
    trials = backend.load_trials()
    ids = [t.trial_id for t in trials]
    loss = backend.load_metrics("loss", ids)
    return {
        "trials": [(t.trial_id, t.parameters["a"], t.result) for t in trials],
        "points": list(zip(loss.trial_ids.tolist(), loss.epochs.tolist(), loss.values.tolist())),
        "keys": backend.metric_keys(),
        "starts": backend.load_starts(),
        "annotations": backend.load_annotations(),
        "settings": backend.load_settings(),
        "step outputs": backend.step_outputs(),
        "cache": backend.cache_entries(),
    }


def expected_holdings() -> dict[str, Any]:
    trials = [(n + 1, n, n * 2) for n in range(TRIALS)]
    return {
        "trials": trials,
        "points": [(t, e, a + e / 100) for t, a, _ in trials for e in range(40)],
        "keys": ["loss"],
        "starts": {},
        "settings": {"direction": '"minimize"'},
        "cache": [],
    }


def check_whole(backend: Backend) -> None:
    held, expected = holdings(backend), expected_holdings()
    for name in ("trials", "points", "keys", "starts", "settings", "cache"):
        assert held[name] == expected[name], name
    assert len(held["step outputs"]) == TRIALS
    assert {t: (a.note, sorted(a.tags)) for t, a in held["annotations"].items()} == {
        t: ("third" if t == 3 else "", [f"a{(t - 1) % 7}"]) for t in range(1, TRIALS + 1)
    }


def is_empty(backend: Backend) -> bool:
    return not any(holdings(backend).values())


def stagings(kind: str, spec: Any) -> list[str]:
    if kind == "local":
        return sorted(p.name.removesuffix(".sqlite3") for p in Path(spec).glob(f"{STAGING_PREFIX}*.sqlite3"))
    return [i for i in experiment_ids(spec) if i.startswith(STAGING_PREFIX)]


def start_importer(
    mode: str, source: Path, spec: Any, experiment_id: str, cwd: Path, env: dict[str, str],
) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", IMPORTER, mode, str(source), str(spec), experiment_id],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert child.stdout.readline().strip() == "go", child.stderr.read()
    return child


@pytest.mark.parametrize("mode", ["import", "copy"])
@pytest.mark.parametrize("kind", ["local", "redis", "mongo"])
def test_an_import_or_copy_killed_at_random_moments_leaves_nothing_or_everything(
    kind, mode, request, tmp_path, make_experiment, child_env,
) -> None:
    exported = build_export(make_experiment, tmp_path)
    source = exported if mode == "import" else tmp_path / "source"
    spec = tmp_path / "target" if kind == "local" else request.getfixturevalue(f"{kind}_uri")
    timing = start_importer(mode, source, spec, "timed", tmp_path, child_env)
    out, err = timing.communicate(timeout=300)
    assert timing.returncode == 0, err
    seconds = float(out.split()[-1])  # the import itself, once the child is ready
    check_whole(open_backend(spec, "timed"))
    rng = random.Random(12)
    outcomes = []
    while len(outcomes) < KILLS_PER_STORE:
        child = start_importer(mode, source, spec, "target", tmp_path, child_env)
        time.sleep(rng.uniform(0.25, 1.0) * seconds)  # reading the contents takes the first part
        child.send_signal(signal.SIGKILL)
        target = open_backend(spec, "target")
        if child.wait(60) == 0:  # it ended first (a quicker run than the timed one): not a kill
            check_whole(target)
            delete_experiment(target, ArtifactStore(artifact_location(None, target.artifact_root(), "target")))
            continue
        assert child.returncode == -signal.SIGKILL
        if is_empty(target):
            outcomes.append("nothing, mid-staging" if stagings(kind, spec) else "nothing")
            report = import_experiment(exported, backend=spec, experiment_id="target")  # runs again
        else:
            outcomes.append("everything")
            check_whole(target)
            report = import_experiment(exported, backend=spec, experiment_id="target", replace=True)
        assert report.trials == TRIALS
        check_whole(open_backend(spec, "target"))
        # what the killed import staged went with the next one; a write the server was still running
        # for the killed process may make its staging again meanwhile: the next import removes that
        left = stagings(kind, spec)
        assert len(left) <= 1 and open_backend(spec, "target").discard_stagings(STAGING_PREFIX) == left
        history = Experiment("target", backend=spec).get_history()
        assert history["Result"].tolist() == [2 * a for a in range(TRIALS)]
        target = open_backend(spec, "target")
        delete_experiment(target, ArtifactStore(artifact_location(None, target.artifact_root(), "target")))
    assert len(outcomes) == KILLS_PER_STORE
    print(f"{mode} into {kind}: {seconds:.2f} s; kills left {outcomes}")

