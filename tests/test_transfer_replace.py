"""``import --replace`` and ``copy --replace`` are atomic: the target keeps its old trials or gets all the new ones (issue 12).

The target first holds an "old" experiment (40 trials), then an "new" one (120
trials) replaces it. Both keep a file of their own per trial, three files
they share, and two large cached outputs each (one of them the same output).
"""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daskperiment import Experiment
from daskperiment.artifactstore import ArtifactStore, artifact_location, content_digest
from daskperiment.backend import Backend, experiment_ids, open_backend
from daskperiment.deletion import delete_experiment
from daskperiment.errors import TrialRunningError
from daskperiment.records import TrialStart
from daskperiment.transfer import copy_experiment, export_experiment, import_experiment
from daskperiment.transfer.loading import STAGING_PREFIX

OLD, NEW = 1, 2
"""Versions of the two experiments (``version`` in what their trials give)."""
TRIALS = {OLD: 40, NEW: 120}
NAMES = {OLD: "old", NEW: "new"}
EPOCHS = 10
KILLS_PER_CASE = 4
"""SIGKILLs per store and command: 3 stores x (import, copy) x 4 = 24."""

REPLACER = textwrap.dedent(
    """
    import sys
    import time
    from daskperiment.backend import open_backend, store_location
    from daskperiment.cli import main

    mode, source, target = sys.argv[1:]
    open_backend(store_location(target), "warm-up").metric_keys()  # the client library imported, the server reached
    print("go", flush=True)
    began = time.perf_counter()
    if mode == "import":
        status = main(["import", source, "--to", target, "--as", "target", "--replace"])
    else:  # copy from the local store the experiments were made in
        status = main(["copy", "new", "--from", source, "--to", target, "--as", "target", "--replace", "--cache"])
    print(f"done {status} {time.perf_counter() - began:.3f}", flush=True)
    """
)


def own_content(version: int, a: int) -> bytes:
    return hashlib.sha256(f"{NAMES[version]}-{a}".encode()).digest() * 64


def shared_content(a: int) -> bytes:
    return hashlib.sha256(f"shared-{a % 3}".encode()).digest() * 64


def group(version: int, a: int) -> int:
    """The cached step's parameter: 0 or 1 in the old experiment, 1 or 2 in the new one."""
    return version - 1 + a % 2


def build(make_experiment: Any, tmp_path: Path, version: int) -> Path:
    """Run the experiment of ``version`` in the local store ``source``; export it (with its cache) to a file."""
    name = NAMES[version]
    ex = make_experiment(name, backend=tmp_path / "source")
    scratch = tmp_path / "scratch" / name
    scratch.mkdir(parents=True)
    a, g = ex.parameter("a"), ex.parameter("g")

    @ex(cache=True)  # not persisted: the stores keep no copy of it per trial
    def block(g):
        return np.full(150_000, float(g))  # 1.2 MB: kept in the artifact location's cache folder

    @ex.result
    def train(a, block):
        for epoch in range(EPOCHS):
            ex.save_metric("loss", epoch, version * 1000 + a + epoch / 100)
        own = scratch / f"{a}.bin"
        own.write_bytes(own_content(version, a))
        ex.capture_artifact(own, "weights")
        shared = scratch / f"shared-{a % 3}.bin"
        shared.write_bytes(shared_content(a))
        ex.capture_artifact(shared, "shared")
        return version * 1000 + a + float(block[0])

    trials = [{"a": n, "g": group(version, n)} for n in range(TRIALS[version])]
    ex.sweep(train(a, block(g)), trials=trials, scheduler="sync")
    path = tmp_path / f"{name}.zip"
    export_experiment(name, path, backend=tmp_path / "source", cache=True)
    return path


def artifacts_of(backend: Backend) -> ArtifactStore:
    return ArtifactStore(artifact_location(None, backend.artifact_root(), backend.experiment_id))


def cache_files(tmp_path: Path, version: int) -> set[str]:
    """Digests of the cached outputs of the experiment of ``version``, as its source store holds them."""
    source = open_backend(tmp_path / "source", NAMES[version])
    return {entry.location for entry in source.cache_entries()}


def state(backend: Backend) -> dict[str, Any]:
    """What the target holds, trial by trial."""
    trials = backend.load_trials()
    ids = [t.trial_id for t in trials]
    loss = backend.load_metrics("loss", ids)
    return {
        "trials": [(t.trial_id, t.parameters["a"], t.parameters["g"], t.result) for t in trials],
        "points": list(zip(loss.trial_ids.tolist(), loss.epochs.tolist(), loss.values.tolist())),
        "keys": backend.metric_keys(),
        "artifacts": {t: [(r.name, r.digest) for r in backend.load_artifacts(t)] for t in ids},
        "cache": sorted(entry.location for entry in backend.cache_entries()),
        "starts": backend.load_starts(),
    }


def expected(version: int, tmp_path: Path) -> dict[str, Any]:
    """What a target holding the experiment of ``version`` holds: each trial as its parameters give it."""
    rows = [(n + 1, n, group(version, n)) for n in range(TRIALS[version])]
    return {
        "trials": [(t, a, g, float(version * 1000 + a + g)) for t, a, g in rows],
        "points": [(t, e, version * 1000 + a + e / 100) for t, a, _ in rows for e in range(EPOCHS)],
        "keys": ["loss"],
        "artifacts": {
            t: [("shared", content_digest(shared_content(a))), ("weights", content_digest(own_content(version, a)))]
            for t, a, _ in rows
        },
        "cache": sorted(cache_files(tmp_path, version)),
        "starts": {},
    }


def check_files_present(backend: Backend) -> None:
    """Every file a record of the target refers to is in its artifact location."""
    artifacts = artifacts_of(backend)
    digests = backend.artifact_digests()
    assert digests and all(artifacts.exists(d) for d in digests)
    locations = [entry.location for entry in backend.cache_entries()]
    assert locations and all(artifacts.subfolder("cache").exists(d) for d in locations)


def put_old(spec: Any, old_zip: Path) -> Backend:
    """Make the target hold the old experiment only (removing what it held, files included)."""
    target = open_backend(spec, "target")
    delete_experiment(target, artifacts_of(target))
    import_experiment(old_zip, backend=spec, experiment_id="target")
    return open_backend(spec, "target")


def stagings(kind: str, spec: Any) -> list[str]:
    if kind == "local":
        return sorted(p.name.removesuffix(".sqlite3") for p in Path(spec).glob(f"{STAGING_PREFIX}*.sqlite3"))
    return [i for i in experiment_ids(spec) if i.startswith(STAGING_PREFIX)]


@pytest.fixture
def exports(make_experiment: Any, tmp_path: Path) -> dict[int, Path]:
    made = {version: build(make_experiment, tmp_path, version) for version in (OLD, NEW)}
    shared = cache_files(tmp_path, OLD) & cache_files(tmp_path, NEW)
    assert len(shared) == 1 and len(cache_files(tmp_path, OLD)) == len(cache_files(tmp_path, NEW)) == 2
    return made


def target_spec(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return tmp_path / "target" if kind == "local" else request.getfixturevalue(f"{kind}_uri")


@pytest.mark.parametrize("kind", ["local", "redis", "mongo"])
def test_a_replace_removes_the_old_files_the_new_records_do_not_use(kind, request, tmp_path, exports) -> None:
    spec = target_spec(kind, request, tmp_path)
    target = put_old(spec, exports[OLD])
    assert state(target) == expected(OLD, tmp_path)
    check_files_present(target)
    artifacts = artifacts_of(target)
    old_own = [content_digest(own_content(OLD, a)) for a in range(TRIALS[OLD])]
    assert all(artifacts.exists(d) for d in old_own)

    report = import_experiment(exports[NEW], backend=spec, experiment_id="target", replace=True)

    assert report.trials == TRIALS[NEW] and report.cache_entries == 2
    target = open_backend(spec, "target")
    assert state(target) == expected(NEW, tmp_path)
    check_files_present(target)
    assert not any(artifacts.exists(d) for d in old_own)  # the old trials' own files: gone
    assert all(artifacts.exists(content_digest(shared_content(a))) for a in range(3))  # shared: kept
    assert all(artifacts.exists(content_digest(own_content(NEW, a))) for a in range(TRIALS[NEW]))
    cached = artifacts.subfolder("cache")
    only_old = cache_files(tmp_path, OLD) - cache_files(tmp_path, NEW)
    assert not any(cached.exists(d) for d in only_old)
    assert all(cached.exists(d) for d in cache_files(tmp_path, NEW))
    assert stagings(kind, spec) == []
    history = Experiment("target", backend=spec).get_history()
    assert history["Result"].tolist() == [float(2000 + a + group(NEW, a)) for a in range(TRIALS[NEW])]


@pytest.mark.parametrize("kind", ["local", "redis", "mongo"])
def test_a_target_with_a_running_trial_is_not_replaced(kind, request, tmp_path, exports, capsys) -> None:
    from daskperiment.cli import main

    spec = target_spec(kind, request, tmp_path)
    target = put_old(spec, exports[OLD])
    now = time.time()
    started = target.start_trials([TrialStart({"a": 99, "g": 0}, 1, now, now, 10.0, "elsewhere:1")])
    before = state(target)
    assert list(before["starts"]) == list(started) == [TRIALS[OLD] + 1]
    with pytest.raises(TrialRunningError, match=rf"trial {TRIALS[OLD] + 1} is still running .*nothing was imported"):
        import_experiment(exports[NEW], backend=spec, experiment_id="target", replace=True)
    with pytest.raises(TrialRunningError, match="once it has ended or shows as killed"):
        copy_experiment("new", tmp_path / "source", spec, new_id="target", replace=True)
    capsys.readouterr()
    assert main(["import", str(exports[NEW]), "--to", str(spec), "--as", "target", "--replace"]) != 0
    assert "still running" in capsys.readouterr().err
    assert state(open_backend(spec, "target")) == before and stagings(kind, spec) == []
    check_files_present(open_backend(spec, "target"))

    target.beat_trials(list(started), now - 3600)  # its process is gone: the trial shows as killed
    import_experiment(exports[NEW], backend=spec, experiment_id="target", replace=True)
    assert state(open_backend(spec, "target")) == expected(NEW, tmp_path)


def start_replacer(mode: str, source: Path, spec: Any, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", REPLACER, mode, str(source), str(spec)],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert child.stdout.readline().strip() == "go", child.stderr.read()
    return child


@pytest.mark.parametrize("mode", ["import", "copy"])
@pytest.mark.parametrize("kind", ["local", "redis", "mongo"])
def test_a_replace_killed_at_random_moments_leaves_the_old_trials_or_the_new_ones(
    kind, mode, request, tmp_path, exports, child_env,
) -> None:
    spec = target_spec(kind, request, tmp_path)
    source = exports[NEW] if mode == "import" else tmp_path / "source"
    old, new = expected(OLD, tmp_path), expected(NEW, tmp_path)
    put_old(spec, exports[OLD])
    timing = start_replacer(mode, source, spec, tmp_path, child_env)
    out, err = timing.communicate(timeout=300)
    assert timing.returncode == 0 and out.split()[-2] == "0", err
    seconds = float(out.split()[-1])  # the replace itself, once the child is ready
    assert state(open_backend(spec, "target")) == new
    rng = random.Random(20)
    outcomes: list[str] = []
    while len(outcomes) < KILLS_PER_CASE:
        put_old(spec, exports[OLD])
        child = start_replacer(mode, source, spec, tmp_path, child_env)
        time.sleep(rng.uniform(0.05, 1.1) * seconds)  # a run ending first is tried again
        child.send_signal(signal.SIGKILL)
        if child.wait(60) == 0:  # it ended first (a quicker run than the timed one): not a kill
            assert state(open_backend(spec, "target")) == new
            continue
        assert child.returncode == -signal.SIGKILL
        target = open_backend(spec, "target")
        held = state(target)
        assert held in (old, new), "the target holds neither all its old trials nor all the new ones"
        check_files_present(target)  # no record refers to a file removed (or not yet written)
        if held == old:
            outcomes.append("old, mid-staging" if stagings(kind, spec) else "old")
        else:
            outcomes.append("new")
        again = start_replacer(mode, source, spec, tmp_path, child_env)  # a re-run succeeds
        out, err = again.communicate(timeout=300)
        assert again.returncode == 0 and out.split()[-2] == "0", err
        target = open_backend(spec, "target")
        assert state(target) == new
        check_files_present(target)
        left = stagings(kind, spec)  # a write the server still ran for the killed process may stage again
        assert len(left) <= 1 and target.discard_stagings(STAGING_PREFIX) == left
    print(f"{mode} --replace into {kind}: {seconds:.2f} s; kills left {outcomes}")
