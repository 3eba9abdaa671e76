"""Export, import and copy of experiments: everything equal after the trip, between every pair of stores."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from daskperiment import Experiment, serialization
from daskperiment.artifactstore import ArtifactStore, artifact_location
from daskperiment.backend import Backend, open_backend
from daskperiment.backend.codec import trial_document
from daskperiment.errors import TransferError
from daskperiment.transfer import copy_experiment, export_experiment, import_experiment

STORES = ("local", "redis", "mongo")


def store_spec(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if kind == "local":
        return tmp_path / "local-store"
    return request.getfixturevalue(f"{kind}_uri")


def build(ex: Experiment, scratch: Path) -> list[int]:
    """Dozens of trials with every kind of record; return the ids kept (two are deleted)."""
    a, b = ex.parameter("a"), ex.parameter("b")
    (scratch / "shared.txt").write_text("in every trial\n")

    @ex(cache=True)
    def load(a):
        ex.save_metric("load_calls", 0, a)
        return bytes(1_100_000) if a == 1 else list(range(a))  # a == 1: kept in the artifact location

    @ex.persist
    def train(data, a, b):
        for epoch in range(5):
            ex.save_metric("loss", epoch, a / (b + epoch + 1))
        ex.save_metric("steps", 0, a * b)  # only ints: read back as ints
        if b == 2:
            ex.save_metric("odd values", 0, float("nan"))
            ex.save_metric("odd values", 1, float("-inf"))
        folder = ex.artifact_dir("model")
        (folder / "w.bin").write_bytes(bytes([a, b]) * 1000)
        (folder / "sub").mkdir()
        (folder / "sub" / "shared.txt").write_text("in every trial\n")
        ex.capture_artifact(scratch / "shared.txt", "shared")
        print(f"trained a={a} b={b}")
        ex.add_tags(f"a{a}", "trained")
        return pd.DataFrame({"a": [a], "b": [b], "size": [len(data)]})  # pickled, signed

    @ex.result
    def score(model, a, b):
        if b == 3:
            raise ValueError(f"b is 3 (a={a})")
        ex.set_note(f"a={a}\nb={b} ✓")
        return {"score": a * b + 0.5, "pair": (a, b), "big": 2**70}

    result = score(train(load(a), a, b), a, b)
    grid = {"a": [1, 2, 3, 4, 5], "b": [0, 1, 2, 3]}
    ex.sweep(result, grid=grid, seed=3, name="first")  # trials 1-20
    ex.sweep(result, grid=grid, seed=4, name="second")  # 21-40: load() from the step cache
    ex.set_direction("maximize")
    ex.remove_tags(7, "trained")
    assert ex.delete_trials([5, 33]) == [5, 33]
    return [t for t in range(1, 41) if t not in (5, 33)]


def artifacts_of(backend: Backend) -> ArtifactStore:
    return ArtifactStore(artifact_location(None, backend.artifact_root(), backend.experiment_id))


def snapshot(backend: Backend) -> dict[str, Any]:
    """Everything the experiment of ``backend`` holds, as plain comparable data."""
    with serialization.keeping_data():
        trials = backend.load_trials()
    ids = [t.trial_id for t in trials]
    artifacts = artifacts_of(backend)
    records = {t: backend.load_artifacts(t) for t in ids}
    metrics = {}
    for key in backend.metric_keys():
        series = backend.load_metrics(key, ids)
        metrics[key] = (
            series.integer, series.trial_ids.tolist(), series.epochs.tolist(),
            [repr(v) for v in series.values.tolist()],  # NaN equal to NaN
            [repr(t) for t in series.times.tolist()],
        )
    cache = backend.cache_entries()
    return {
        "trials": [json.dumps(trial_document(t), sort_keys=True) for t in trials],
        "metrics": metrics,
        "persisted": {(t, s): bytes(backend.load_persisted(s, t).payload) for t, s in backend.persisted_keys()},
        "blobs": {d: bytes(backend.load_blob(d).content) for t in trials for d in t.blob_digests()},
        "artifacts": records,
        "files": {r.digest: artifacts.get_bytes(r.digest) for rs in records.values() for r in rs},
        "annotations": backend.load_annotations(),
        "settings": backend.load_settings(),
        "cache": cache,
        "cache payloads": {e.key: backend.load_cache_payload(e.key) for e in cache},
        "cache files": {
            e.location: artifacts.subfolder("cache").get_bytes(e.location) for e in cache if e.location
        },
    }


def check_same(source: Backend, target: Backend, kept: list[int], cache: bool) -> None:
    expected, actual = snapshot(source), snapshot(target)
    if not cache:
        assert actual["cache"] == [] and actual["cache files"] == {}
        for name in ("cache", "cache payloads", "cache files"):
            expected.pop(name), actual.pop(name)
    else:
        assert len(actual["cache"]) == 5 and len(actual["cache files"]) == 1  # load(a) for 5 values of a
    for name in expected:
        assert actual[name] == expected[name], name
    assert [json.loads(t)["trial_id"] for t in actual["trials"]] == kept
    assert len(actual["files"]) >= 21 and len(actual["metrics"]) == 4


def check_readable(experiment_id: str, backend: Any, kept: list[int]) -> None:
    """The imported experiment reads as the original did: history, values, files, notes; new ids after the last."""
    ex = Experiment(experiment_id, backend=backend)
    history = ex.get_history()
    assert list(history.index) == kept
    for trial_id, row in history.iterrows():
        a, b = row["a"], row["b"]
        assert row["Success"] == (b != 3) and row["Sweep"] == ("first" if trial_id <= 20 else "second")
        if b != 3:
            assert row["Result"] == {"score": a * b + 0.5, "pair": (a, b), "big": 2**70}
            assert row["Note"] == f"a={a}\nb={b} ✓"
        else:
            assert row["Description"] == f"ValueError(b is 3 (a={a}))" and row["Note"] == ""
        assert row["Tags"] == (f"a{a}" if trial_id == 7 else f"a{a}, trained")
        assert ex.get_persisted("train", trial_id).equals(
            pd.DataFrame({"a": [a], "b": [b], "size": [1_100_000 if a == 1 else a]})
        )
        assert list(ex.load_metric("loss", trial_id)[trial_id]) == [a / (b + e + 1) for e in range(5)]
        assert ex.load_metric("steps", trial_id)[trial_id].dtype == np.int64
        assert (ex.get_artifact("model", trial_id) / "w.bin").read_bytes() == bytes([a, b]) * 1000
        assert f"trained a={a} b={b}" in ex.get_artifact("output", trial_id).read_text()
        assert "def train(data, a, b)" in ex.get_code(trial_id)
    odd = ex.load_metric("odd values", [t for t in kept if history.loc[t, "b"] == 2])
    assert odd.iloc[0].isna().all() and (odd.iloc[1] == -math.inf).all()
    assert ex.get_direction() == "maximize"
    assert ex.backend.allocate_trial_id() == 41  # the ids of the file are never given again


@pytest.mark.parametrize("source_kind", STORES)
def test_export_import_and_copy_between_every_pair_of_stores(source_kind, request, tmp_path, make_experiment) -> None:
    source_spec = store_spec(source_kind, request, tmp_path)
    ex = make_experiment("origin", backend=source_spec)
    kept = build(ex, tmp_path)
    source = ex.backend
    exported = tmp_path / "origin.zip"
    manifest = export_experiment("origin", exported, backend=source_spec, cache=True)
    assert manifest["trials"] == 38 and manifest["cache_entries"] == 5 and manifest["signed_pickles"] >= 38
    for target_kind in STORES:
        target_spec = store_spec(target_kind, request, tmp_path / f"to-{target_kind}")
        imported_id, copied_id = f"imported-{target_kind}", f"copied-{target_kind}"
        report = import_experiment(exported, backend=target_spec, experiment_id=imported_id)
        assert (report.trials, report.cache_entries) == (38, 5)
        target = open_backend(target_spec, imported_id)
        check_same(source, target, kept, cache=True)
        check_readable(imported_id, target_spec, kept)
        report = copy_experiment("origin", source_spec, target_spec, new_id=copied_id)  # no cache
        assert report.trials == 38 and report.cache_entries == 0
        check_same(source, open_backend(target_spec, copied_id), kept, cache=False)
        check_readable(copied_id, target_spec, kept)


def test_an_import_over_an_experiment_holding_records_is_refused_unless_replaced(make_experiment, tmp_path) -> None:
    ex = make_experiment("origin", backend=tmp_path / "store")
    kept = build(ex, tmp_path)
    exported = tmp_path / "origin.zip"
    export_experiment("origin", exported, backend=tmp_path / "store")
    other = make_experiment("other", backend=tmp_path / "other")
    x = other.parameter("x")

    @other.result
    def double(x):
        return 2 * x

    for value in range(3):
        other.run(double(x), x=value)
    before = snapshot(other.backend)
    with pytest.raises(TransferError, match=r"holds trials \(up to id 3\) already: nothing was imported"):
        import_experiment(exported, backend=tmp_path / "other", experiment_id="other")
    assert snapshot(other.backend) == before
    import_experiment(exported, backend=tmp_path / "other", experiment_id="other", replace=True)
    check_same(ex.backend, other.backend, kept, cache=False)
    with pytest.raises(TransferError, match="onto itself"):
        copy_experiment("origin", tmp_path / "store", tmp_path / "store")


def test_damaged_or_forged_files_are_refused_before_anything_is_written(make_experiment, tmp_path) -> None:
    ex = make_experiment("origin", backend=tmp_path / "store")
    build(ex, tmp_path)
    exported = tmp_path / "origin.zip"
    export_experiment("origin", exported, backend=tmp_path / "store")
    members = {name: zipfile.ZipFile(exported).read(name) for name in zipfile.ZipFile(exported).namelist()}

    def forged(name: str, **changes: bytes) -> Path:
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as archive:
            for member, content in {**members, **changes}.items():
                if content is not None:
                    archive.writestr(member, content)
        return path

    trials = members["trials.jsonl"].decode().splitlines()
    first = json.loads(trials[0])
    cases = [
        (tmp_path / "missing.zip", "there is no export file"),
        (forged("text.zip"), None),
        (forged("no-manifest.zip", **{"manifest.json": None}), "lacks the member manifest.json"),
        (forged("newer.zip", **{"manifest.json": json.dumps({"format": "daskperiment-experiment", "version": 4}).encode()}),
         "format version 4; this daskperiment reads versions 1, 2 and 3"),
        (forged("bad-start.zip", **{"starts.jsonl": json.dumps({"trial_id": 50, "parameters": {}, "seed": None,
         "started": 1.0, "heartbeat": "late", "interval": 10.0, "process": "h:1"}).encode()}), "field 'heartbeat'"),
        (forged("start-twice.zip", **{"starts.jsonl": json.dumps({"trial_id": 1, "parameters": {}, "seed": None,
         "started": 1.0, "heartbeat": 2.0, "interval": 10.0, "process": "h:1"}).encode()}), "repeat ids"),
        (forged("no-seed.zip", **{"starts.jsonl": json.dumps({"trial_id": 50, "parameters": {}, "started": 1.0,
         "heartbeat": 2.0, "interval": 10.0, "process": "h:1"}).encode()}), "KeyError: 'seed'"),
        (forged("bad-output.zip", **{"step_outputs.jsonl": b'{"input_key": "k", "output_hash": 3}\n'}),
         "the output hash of line 1 of step_outputs.jsonl"),
        (forged("bad-line.zip", **{"trials.jsonl": b"{not json\n"}), "line 1 of trials.jsonl is not JSON"),
        (forged("bad-id.zip", **{"trials.jsonl": json.dumps({**first, "trial_id": -1}).encode()}),
         "line 1 of trials.jsonl is malformed"),
        (forged("bad-field.zip", **{"trials.jsonl": json.dumps({**first, "success": "yes"}).encode()}),
         "field 'success'"),
        (forged("traversal.zip", **{"persisted.jsonl": json.dumps(
            {"trial_id": 1, "step": "train", "payload": "../../etc/passwd"}).encode()}), "not a member of payloads/"),
        (forged("bad-id-text.zip", **{"manifest.json": json.dumps(
            {**json.loads(members["manifest.json"]), "experiment_id": "../escape"}).encode()}), "invalid experiment id"),
    ]
    (tmp_path / "text.zip").write_text("not a zip")
    for path, message in cases:
        with pytest.raises(Exception) as raised:
            import_experiment(path, backend=tmp_path / "target", experiment_id=None if "id-text" in path.name else "target")
        assert message is None or message in str(raised.value), (path.name, raised.value)
        assert not (tmp_path / "target" / "target.sqlite3").exists() or Experiment(
            "target", backend=tmp_path / "target").get_history().empty, path.name


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    from daskperiment.cli import main

    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_the_command_line_exports_imports_and_copies(make_experiment, tmp_path, redis_uri, mongo_uri, capsys) -> None:
    ex = make_experiment("origin", backend="local")
    kept = build(ex, tmp_path)
    status, out, err = run_cli(capsys, "export", "origin", "origin.zip", "--cache")
    assert status == 0, err
    assert out.startswith("exported experiment 'origin' to origin.zip: 38 trials, ") and "5 cache entries" in out
    assert "are pickles signed with the exporting user's key" in out
    status, out, err = run_cli(capsys, "import", "origin.zip", "--to", redis_uri, "--as", "again")
    assert status == 0 and out.startswith("imported experiment 'again': 38 trials, "), err
    check_same(ex.backend, open_backend(redis_uri, "again"), kept, cache=True)
    status, out, err = run_cli(capsys, "import", "origin.zip", "--to", redis_uri, "--as", "again")
    assert status == 1 and "holds trials (up to id 40) already: nothing was imported" in err
    status, out, err = run_cli(capsys, "import", "origin.zip", "--to", redis_uri, "--as", "again", "--replace")
    assert status == 0, err
    check_same(ex.backend, open_backend(redis_uri, "again"), kept, cache=True)
    status, out, err = run_cli(capsys, "copy", "origin", "--from", "local", "--to", mongo_uri, "--without-files")
    assert status == 0 and out.startswith("copied experiment 'origin': 38 trials, ") and "0 artifact files" in out, err
    copied = open_backend(mongo_uri, "origin")
    assert snapshot_without_files(copied) == snapshot_without_files(ex.backend)
    status, out, err = run_cli(capsys, "copy", "origin", "--from", "local", "--to", "local")
    assert status == 1 and "onto itself" in err
    status, out, err = run_cli(capsys, "copy", "absent", "--from", "local", "--to", mongo_uri)
    assert status == 1 and "no experiment 'absent'" in err
    status, out, err = run_cli(capsys, "import", "absent.zip")
    assert status == 1 and "there is no export file 'absent.zip'" in err


def snapshot_without_files(backend: Backend) -> dict[str, Any]:
    """What :func:`snapshot` reads, but the artifact files (left out of a copy)."""
    with serialization.keeping_data():
        trials = backend.load_trials()
    ids = [t.trial_id for t in trials]
    return {
        "trials": [json.dumps(trial_document(t), sort_keys=True) for t in trials],
        "artifacts": {t: backend.load_artifacts(t) for t in ids},
        "annotations": backend.load_annotations(),
        "metrics": {k: [repr(p) for p in backend.load_metrics(k, ids)] for k in backend.metric_keys()},
    }
