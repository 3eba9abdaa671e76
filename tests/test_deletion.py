"""Deleting trials and experiments through the API and the command line, on every store."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from daskperiment import Experiment
from daskperiment.backend import experiment_ids
from daskperiment.errors import PersistedValueNotFoundError, TrialIDNotFoundError


@pytest.fixture(params=["local", "redis", "mongo"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "local":
        return tmp_path / "store"
    return request.getfixturevalue(f"{request.param}_uri")


def content_of(a: int, b: int) -> bytes:
    return hashlib.sha256(f"{a}-{b}".encode()).digest() * 100


def define(ex: Experiment, scratch: Path, version: int) -> Any:
    """Steps that save metrics, persist, keep files, get notes and tags; b == 0 fails.

    ``version`` 1 and 2 differ in the code of ``score`` (two code records).
    """
    a, b = ex.parameter("a"), ex.parameter("b")
    shared = scratch / "shared.txt"
    shared.write_text("the same file in every trial\n")

    @ex.persist
    def prepare(a, b):
        for epoch in range(4):
            ex.save_metric("loss", epoch, a * 100 + b * 10 + epoch)
        if a == 1:
            ex.save_metric("only_a1", 0, b)
        path = scratch / f"weights-{a}-{b}.bin"
        path.write_bytes(content_of(a, b))
        ex.capture_artifact(path, "weights")
        ex.capture_artifact(shared, "shared")
        ex.add_tags(f"a{a}")
        return {"a": a, "b": b}

    if version == 1:
        @ex.result
        def score(prepared):
            ex.set_note(f"v1 {prepared['a']} {prepared['b']}")
            if prepared["b"] == 0:
                raise ValueError("b is 0")
            return prepared["a"] * prepared["b"]
    else:
        @ex.result
        def score(prepared):
            ex.set_note(f"v2 {prepared['a']} {prepared['b']}")
            if prepared["b"] == 0:
                raise ValueError("b is 0")
            return prepared["a"] * prepared["b"] + 1000

    return score(prepare(a, b))


def check_trial(ex: Experiment, trial_id: int, version: int) -> None:
    """Every record of a trial matches what its parameters give."""
    parameters = ex.get_parameters(trial_id)
    a, b = parameters["a"], parameters["b"]
    row = ex.get_history().loc[trial_id]
    assert bool(row["Success"]) == (b != 0)
    if b != 0:
        assert row["Result"] == a * b + (1000 if version == 2 else 0)
    assert ex.get_note(trial_id) == f"v{version} {a} {b}" and ex.get_tags(trial_id) == {f"a{a}"}
    assert list(ex.load_metric("loss", trial_id)[trial_id]) == [a * 100 + b * 10 + e for e in range(4)]
    assert ex.get_persisted("prepare", trial_id) == {"a": a, "b": b}
    assert ex.get_artifact("weights", trial_id).read_bytes() == content_of(a, b)
    assert ex.get_artifact("shared", trial_id).read_text() == "the same file in every trial\n"
    assert f"v{version} {{prepared['a']}}" in ex.get_code(trial_id)
    assert "Platform Information" in ex.get_environment(trial_id)


def check_gone(ex: Experiment, trial_id: int) -> None:
    for read in (
        lambda: ex.get_parameters(trial_id), lambda: ex.get_note(trial_id), lambda: ex.get_artifacts(trial_id),
        lambda: ex.load_metric("loss", trial_id), lambda: ex.get_code(trial_id),
    ):
        with pytest.raises(TrialIDNotFoundError, match=f"trial {trial_id} of experiment"):
            read()
    with pytest.raises((TrialIDNotFoundError, PersistedValueNotFoundError)):
        ex.get_persisted("prepare", trial_id)
    assert trial_id not in ex.get_history().index
    assert ex.backend.load_metrics("loss", [trial_id]) == [] and ex.backend.load_artifacts(trial_id) == []


def test_deleted_trials_go_whole_on_every_store(backend, make_experiment, tmp_path) -> None:
    ex = make_experiment(backend=backend)
    version_1 = define(ex, tmp_path, 1)
    first = ex.sweep(version_1, grid={"a": [1, 2, 3], "b": [0, 1, 2, 3]})  # trials 1-12, 3 failing
    version_2 = define(ex, tmp_path, 2)
    second = ex.sweep(version_2, grid={"a": [4, 5, 6], "b": [0, 1, 2, 3]})  # trials 13-24
    assert list(first.index) == list(range(1, 13)) and list(second.index) == list(range(13, 25))
    store = ex.artifacts
    digests = {t: {r.name: r.digest for r in ex.backend.load_artifacts(t)} for t in range(1, 25)}
    code_1 = ex.backend.load_trials([1])[0].code_digest

    assert ex.delete_trials([*range(1, 13), 20]) == [*range(1, 13), 20]  # every trial of version 1
    for trial_id in [*range(1, 13), 20]:
        check_gone(ex, trial_id)
        assert not store.exists(digests[trial_id]["weights"])  # no other trial kept that file
    for trial_id in [*range(13, 20), *range(21, 25)]:
        check_trial(ex, trial_id, 2)
    assert store.exists(digests[13]["shared"])  # still kept by trials 13, ...
    assert ex.backend.load_blob(code_1) is None  # the code of version 1 is no trial's anymore
    assert ex.backend.metric_keys() == ["loss"]  # only trials with a == 1 saved "only_a1"
    assert ex.trial_id == 24

    # version 1 again, in this process: its code record is sent again; ids continue after 24
    version_1 = define(ex, tmp_path, 1)
    assert ex.run(version_1, a=7, b=2) == 14
    check_trial(ex, 25, 1)
    with pytest.raises(TrialIDNotFoundError, match=r"cannot delete trials 99, 100 .* nothing was deleted"):
        ex.delete_trials([21, 99, 100])
    check_trial(ex, 21, 2)
    assert ex.delete_trials(25) == [25] and ex.trial_id == 24
    assert sorted(ex.get_history().index) == [*range(13, 20), *range(21, 25)]


def test_a_deletion_by_another_process_makes_this_one_send_its_code_again(backend, make_experiment, tmp_path, child_env) -> None:
    ex = make_experiment(backend=backend)
    result = define(ex, tmp_path, 2)
    for b in range(1, 4):
        ex.run(result, a=1, b=b)
    done = subprocess.run(
        [sys.executable, "-m", "daskperiment", "delete", ex.id, "1", "2", "3", "--yes", "--backend", str(backend)],
        cwd=tmp_path, env=child_env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0 and done.stdout == "deleted trials 1, 2, 3\n", done.stderr
    assert ex.backend.load_trials() == [] and ex.trial_id == 0
    for b in range(1, 4):  # this process sent its code and environment with trial 1, then never again
        ex.run(result, a=2, b=b)
    for trial_id in (4, 5, 6):
        check_trial(ex, trial_id, 2)


def test_deleting_an_experiment_removes_its_records_and_files(backend, make_experiment, tmp_path) -> None:
    ex = make_experiment(backend=backend)
    neighbour = make_experiment(backend=backend if not isinstance(backend, Path) else tmp_path / "other")
    result = define(ex, tmp_path, 1)
    ex.sweep(result, grid={"a": [1, 2], "b": [1, 2, 3]})
    kept = define(neighbour, tmp_path, 1)
    neighbour.run(kept, a=1, b=1)
    files = {r.digest for t in range(1, 7) for r in ex.backend.load_artifacts(t)}
    location = experiment_ids("local" if isinstance(backend, Path) else backend)
    assert ex.delete_experiment() == 6
    assert all(not ex.artifacts.exists(digest) for digest in files - {r.digest for r in neighbour.backend.load_artifacts(1)})
    if isinstance(backend, Path):
        assert not backend.exists()  # the store's folder, artifacts included
    else:
        assert experiment_ids(backend) == sorted(set(location) - {ex.id}) == [neighbour.id]
    assert ex.get_history().empty and ex.trial_id == 0
    check_trial(neighbour, 1, 1)
    # the experiment is open and empty: new trials start from 1 and record their code again
    result = define(ex, tmp_path, 1)
    assert ex.run(result, a=3, b=3) == 9
    check_trial(ex, 1, 1)


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    from daskperiment.cli import main

    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_the_command_line_asks_before_deleting(backend, make_experiment, tmp_path, capsys, monkeypatch) -> None:
    ex = make_experiment(backend=backend)
    result = define(ex, tmp_path, 1)
    ex.sweep(result, grid={"a": [1, 2, 3], "b": [1, 2, 3, 4]})  # 12 trials
    spec = str(backend)
    # no terminal: refused without --yes
    monkeypatch.setattr(sys, "stdin", _Terminal(False, ""))
    status, out, err = run_cli(capsys, "delete", ex.id, "1", "2", "--backend", spec)
    assert status == 2 and "no terminal to confirm on; add --yes" in err
    # a terminal: asked; anything but yes keeps the trials
    for answer in ("n", "", "maybe"):
        monkeypatch.setattr(sys, "stdin", _Terminal(True, answer))
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
        status, out, err = run_cli(capsys, "delete", ex.id, "1", "2", "--backend", spec)
        assert status == 1 and "Delete trials 1, 2 of experiment" in out and "nothing was deleted" in err
    assert len(ex.get_history()) == 12
    monkeypatch.setattr(sys, "stdin", _Terminal(True, "y"))
    status, out, err = run_cli(capsys, "delete", ex.id, "1", "2", "--backend", spec)
    assert status == 0 and out.endswith("deleted trials 1, 2\n"), err
    # unknown ids: nothing deleted, not even asked
    status, out, err = run_cli(capsys, "delete", ex.id, "3", "13", "--yes", "--backend", spec)
    assert status == 1 and "has no trial 13" in err and "nothing was deleted" in err
    status, out, err = run_cli(capsys, "delete", ex.id, "--backend", spec)
    assert status == 2 and "name the trials to delete" in err
    status, out, err = run_cli(capsys, "delete", ex.id, "3", "--all", "--backend", spec)
    assert status == 2 and "not both" in err
    assert sorted(ex.get_history().index) == list(range(3, 13))
    for trial_id in range(3, 13):
        check_trial(ex, trial_id, 1)
    monkeypatch.setattr(sys, "stdin", _Terminal(True, "yes"))
    status, out, err = run_cli(capsys, "delete", ex.id, "--all", "--backend", spec)
    assert status == 0 and "its 10 trial(s)" in out and out.endswith(f"deleted experiment {ex.id!r} (10 trials)\n")
    assert ex.id not in experiment_ids("local" if isinstance(backend, Path) else backend)


class _Terminal:
    """A stdin that is (or is not) a terminal, answering ``answer``."""

    def __init__(self, tty: bool, answer: str) -> None:
        self.tty, self.answer = tty, answer

    def isatty(self) -> bool:
        return self.tty

    def readline(self) -> str:
        return self.answer + "\n"


def test_a_mongo_deletion_cut_short_is_hidden_then_finished(mongo_uri, make_experiment, tmp_path) -> None:
    """Trials marked deleted are gone for readers; any later deletion finishes them."""
    import pymongo

    ex = make_experiment(backend=mongo_uri)
    result = define(ex, tmp_path, 1)
    ex.sweep(result, grid={"a": [1, 2, 3], "b": [1, 2, 3, 4]})
    client = pymongo.MongoClient(mongo_uri)
    collection = client.get_default_database()[f"daskperiment_{ex.id}"]
    collection.update_many({"kind": "trial", "trial_id": {"$in": [2, 5]}}, {"$set": {"kind": "deleted_trial"}})
    assert sorted(ex.get_history().index) == [1, 3, 4, *range(6, 13)]
    assert collection.count_documents({"trial_id": 5}) > 1  # the marked trial's records are still there
    assert ex.delete_trials([7]) == [2, 5, 7]
    for trial_id in (2, 5, 7):
        assert collection.count_documents({"trial_id": trial_id}) == 0
        check_gone(ex, trial_id)
    for trial_id in (1, 3, 4, *range(8, 13)):
        check_trial(ex, trial_id, 1)
    client.close()
