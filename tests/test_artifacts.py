"""Artifacts (issue #11): files trials keep, on every store, in a folder or an S3 bucket.

Many trials each keep files whose content follows from their own parameters;
every trial's files are read back and checked, from this process and others.
Steps are defined inside functions so that they pickle by value to workers.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import distributed
import pytest

from conftest import S3Server, free_port, s3_storage_options
from daskperiment import ArtifactError, ArtifactStore, Experiment
from daskperiment.artifactstore import content_digest
from daskperiment.cli import main as cli_main
from daskperiment.errors import TrialIDNotFoundError


@pytest.fixture(params=["local", "redis", "mongo"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "local":
        return {}
    return {"backend": request.getfixturevalue(f"{request.param}_uri")}


@pytest.fixture(params=["file", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore | None:
    """Where artifacts go: the store's default folder (None), or a bucket of the S3 server."""
    if request.param == "file":
        return None
    server: S3Server = request.getfixturevalue("s3_server")
    return ArtifactStore(server.url(f"run-{time.time_ns()}"), server.storage_options, tmp_path / "downloads")


def weights_of(a: int, b: int) -> bytes:
    return hashlib.sha256(f"{a}-{b}".encode()).digest() * 1000


def training(ex: Experiment, scratch: Path) -> Any:
    """A trial whose ``train`` step keeps a folder, a captured report, and prints."""
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex
    def train(a, b):
        folder = ex.artifact_dir("weights")
        (folder / "layer1.bin").write_bytes(weights_of(a, b))
        (folder / "sub").mkdir()
        (folder / "sub" / "shared.txt").write_text("the same in every trial\n")
        report = scratch / f"report-{a}-{b}-{os.getpid()}-{time.time_ns()}.txt"
        report.write_text(f"a={a} b={b}\n")
        ex.capture_artifact(report, "report")
        print(f"training with a={a} b={b}")
        ex.save_metric("loss", 0, a + b)
        return a * b

    @ex.result
    def evaluate(model):
        print(f"evaluated {model}", file=sys.stderr)
        return model + 1

    return evaluate(train(a, b))


def check_trial(ex: Experiment, trial_id: int) -> None:
    """The artifacts of ``trial_id`` hold what its own parameters give."""
    a, b = ex.get_parameters(trial_id).values()
    listed = ex.get_artifacts(trial_id)
    assert list(zip(listed["Artifact"], listed["Path"])) == [
        ("output", ""), ("report", ""), ("weights", "layer1.bin"), ("weights", "sub/shared.txt"),
    ]
    assert set(listed.loc[listed["Artifact"] != "output", "Step"]) == {"train"}
    weights = ex.get_artifact("weights", trial_id)
    assert (weights / "layer1.bin").read_bytes() == weights_of(a, b)
    assert (weights / "sub" / "shared.txt").read_text() == "the same in every trial\n"
    assert ex.get_artifact("report", trial_id).read_text() == f"a={a} b={b}\n"
    assert ex.get_artifact("output", trial_id).read_text() == f"training with a={a} b={b}\nevaluated {a * b}\n"


def test_trials_keep_their_files_and_output_on_every_store_and_location(
    store, location, make_experiment, tmp_path, capfd
) -> None:
    ex = make_experiment(**store, artifacts=location)
    result = training(ex, tmp_path)
    frame = ex.sweep(result, grid={"a": [1, 2, 3, 4], "b": [1, 2, 3, 4, 5]}, scheduler="threads")
    assert frame["Success"].all() and len(frame) == 20
    ex.run(result, a=9, b=9)
    for trial_id in [*frame.index, ex.trial_id]:
        check_trial(ex, trial_id)
    printed = capfd.readouterr()
    assert printed.out.count("training with") == 21  # captured without hiding it
    assert printed.err.count("evaluated") == 21
    # identical files are stored once: 21 weights, 21 reports, 21 outputs, 1 shared file
    digests = set()
    for trial_id in [*frame.index, ex.trial_id]:
        digests.update(ex.get_artifacts(trial_id)["Digest"])
    assert len(digests) == 21 * 3 + 1
    objects = [p for p in ex.artifacts.fs.find(f"{ex.artifacts.url}/objects")]
    assert len(objects) == len(digests)


def test_another_process_reads_the_artifacts(location, make_experiment, tmp_path, child_env) -> None:
    ex = make_experiment("shared_files", artifacts=location)
    ex.run(training(ex, tmp_path), a=2, b=3)
    downloads = tmp_path / "other-downloads"
    code = (
        "import pickle, sys; from pathlib import Path; from daskperiment import Experiment\n"
        "store = pickle.loads(bytes.fromhex(sys.argv[1]))\n"
        "ex = Experiment('shared_files', backend=Path(sys.argv[2]), artifacts=store)\n"
        "print(ex.get_artifact('report', 1).read_text(), end='')\n"
        "print((ex.get_artifact('weights', 1) / 'layer1.bin').read_bytes().hex())\n"
    )
    import pickle

    store = ex.artifacts if location is not None else ArtifactStore(ex.artifacts.url, cache_dir=downloads)
    done = subprocess.run(
        [sys.executable, "-c", code, pickle.dumps(store).hex(), str(tmp_path / "store" / "shared_files")],
        env=child_env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    report, weights = done.stdout.splitlines()
    assert report == "a=2 b=3" and bytes.fromhex(weights) == weights_of(2, 3)


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster


def test_steps_on_cluster_workers_keep_files_in_the_bucket(cluster, s3_server, make_experiment, redis_uri, tmp_path) -> None:
    artifacts = ArtifactStore(s3_server.url("cluster"), s3_server.storage_options, tmp_path / "downloads")
    ex = make_experiment(backend=redis_uri, artifacts=artifacts)
    result = training(ex, tmp_path)
    with distributed.Client(cluster) as client:
        frame = ex.sweep(result, grid={"a": [1, 2, 3], "b": [1, 2, 3, 4]}, scheduler=client)
        futures = [ex.submit(result, a=a, b=7, scheduler=client) for a in range(5)]
        assert [f.result() for f in futures] == [7 * a + 1 for a in range(5)]
    worker_pids = {p for p in (tmp_path).glob("report-*")}
    assert len(frame) == 12 and frame["Success"].all() and worker_pids
    for trial_id in [*frame.index, *(f.trial_id for f in futures)]:
        a, b = ex.get_parameters(trial_id).values()
        assert (ex.get_artifact("weights", trial_id) / "layer1.bin").read_bytes() == weights_of(a, b)
        assert ex.get_artifact("report", trial_id).read_text() == f"a={a} b={b}\n"
        assert "training with" in ex.get_artifact("output", trial_id).read_text()


def test_cached_steps_bring_their_artifacts_and_artifacts_feed_other_experiments(make_experiment, tmp_path) -> None:
    producer = make_experiment("producer")
    size = producer.parameter("size")
    made = tmp_path / "made"

    @producer(cache=True)
    def make_model(size):
        with open(made, "a") as file:
            file.write(f"{size}\n")
        (producer.artifact_dir("model") / "weights.txt").write_text("w" * size)
        return size

    @producer.result
    def publish(model):
        return model

    for size_value in (3, 5, 3, 5, 3):
        producer.run(publish(make_model(size)), size=size_value)
    assert made.read_text().split() == ["3", "5"]
    for trial_id, size_value in zip(range(1, 6), (3, 5, 3, 5, 3)):  # loaded trials list the files too
        assert (producer.get_artifact("model", trial_id) / "weights.txt").read_text() == "w" * size_value
    assert producer.get_history().loc[[3, 4, 5], "Cached"].tolist() == [
        "make_model (trial 1)", "make_model (trial 2)", "make_model (trial 1)",
    ]

    consumer = make_experiment("consumer")
    used = tmp_path / "used"

    @consumer(cache=True)
    def score(model_folder):
        with open(used, "a") as file:
            file.write("scored\n")
        return len((Path(model_folder) / "weights.txt").read_text())

    @consumer.result
    def report(value):
        return value

    # the artifact of trial 1 and of trial 3 have one content: one computation of the cached step
    results = [consumer.run(report(score(producer.artifact("model", t)))) for t in (1, 3, 2, 1)]
    assert results == [3, 3, 5, 3]
    assert used.read_text().split() == ["scored", "scored"]


def test_long_steps_upload_while_they_run(make_experiment, tmp_path, monkeypatch) -> None:
    from daskperiment import capture

    monkeypatch.setattr(capture, "UPLOAD_INTERVAL", 0.2)
    ex = make_experiment()
    a = ex.parameter("a")
    content = b"checkpoint of a long step" * 1000
    digest = content_digest(content)

    @ex.result
    def long_training(a):
        (ex.artifact_dir("checkpoints") / "epoch1.bin").write_bytes(content)
        deadline = time.monotonic() + 60
        while not ex.artifacts.exists(digest):  # uploaded before the step ends
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return a

    assert ex.run(long_training(a), a=1) == 1
    assert ex.get_artifacts(1)["Digest"].tolist()[-1] == digest


def test_a_step_folder_is_moved_into_a_local_location(make_experiment) -> None:
    ex = make_experiment()
    a = ex.parameter("a")

    @ex.result
    def train(a):
        folder = ex.artifact_dir("model")
        (folder / "weights.bin").write_bytes(weights_of(a, 0))
        return os.stat(folder / "weights.bin").st_ino

    @ex.result
    def train_with_link(a):
        folder = ex.artifact_dir("model")
        (folder / "weights.bin").write_bytes(weights_of(a, 1))
        (folder / "latest.bin").symlink_to(folder / "weights.bin")
        return a

    inode = ex.run(train(a), a=1)
    ex.run(train_with_link(a), a=2)

    listed = ex.get_artifacts(1)
    stored = ex.artifacts.fetch(listed.loc[listed["Artifact"] == "model", "Digest"].item())
    assert stored.stat().st_ino == inode  # renamed into the location, not copied
    model = ex.get_artifact("model", 2)  # a folder holding a link is copied: both files kept
    assert (model / "weights.bin").read_bytes() == (model / "latest.bin").read_bytes() == weights_of(2, 1)
    assert list((Path(ex.artifacts.url) / "tmp").iterdir()) == []  # no scratch folder left


def test_bad_artifacts_fail_the_trial_clearly_and_keep_its_other_records(make_experiment, tmp_path) -> None:
    ex = make_experiment()
    case = ex.parameter("case")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")

    @ex.result
    def keep(case):
        ex.save_metric("before", 0, 1.0)
        if case == "missing":
            ex.capture_artifact(tmp_path / "never-written.txt")
        elif case == "bad-name":
            ex.artifact_dir("../escape")
        elif case == "reserved":
            ex.artifact_dir("output")
        elif case == "twice":
            ex.artifact_dir("w")
            ex.capture_artifact(outside, "w")
        elif case == "link-out":
            (ex.artifact_dir("linked") / "link").symlink_to(outside)
        return case

    expected = {
        "missing": "ArtifactError(cannot keep",
        "bad-name": "ValueError(invalid artifact name '../escape'",
        "reserved": "ValueError(the artifact name 'output' is reserved",
        "twice": "ArtifactError(artifact 'w' is already kept",
        "link-out": "ArtifactError(artifact 'linked' holds",
    }
    for index, (name, message) in enumerate(expected.items(), start=1):
        with pytest.raises(Exception):
            ex.run(keep(case), case=name)
        row = ex.get_history().loc[index]
        assert not row["Success"] and row["Description"].startswith(message), row["Description"]
        assert ex.load_metric("before", index)[index].tolist() == [1.0]
    with pytest.raises(TrialIDNotFoundError, match="artifact_dir is only available inside a step"):
        ex.artifact_dir("weights")
    assert ex.run(keep(case), case="fine") == "fine"
    with pytest.raises(ArtifactError, match="kept no artifact 'weights'; it kept none"):
        ex.get_artifact("weights", 6)
    with pytest.raises(TrialIDNotFoundError):
        ex.get_artifact("weights", 99)


def test_an_unreachable_bucket_fails_the_trial_clearly(make_experiment, tmp_path) -> None:
    port = free_port()
    options = s3_storage_options(f"http://127.0.0.1:{port}", connect_timeout=1, retries={"max_attempts": 1})
    ex = make_experiment(artifacts=ArtifactStore("s3://nowhere/x", options, tmp_path / "downloads"))
    a = ex.parameter("a")

    @ex.result
    def keep(a):
        ex.save_metric("m", 0, a)
        (ex.artifact_dir("w") / "f").write_text("x")
        return a

    with pytest.raises(ArtifactError, match="could not be reached"):
        ex.run(keep(a), a=1)
    row = ex.get_history().loc[1]
    assert not row["Success"] and "127.0.0.1" in row["Description"]
    assert ex.load_metric("m", 1)[1].tolist() == [1.0]


def test_artifacts_command_lists_and_fetches(make_experiment, tmp_path, capsys) -> None:
    ex = make_experiment("files")
    ex.run(training(ex, tmp_path), a=1, b=2)
    store = str(tmp_path / "store")
    assert cli_main(["artifacts", "files", "1", "--backend", store]) == 0
    listed = capsys.readouterr().out
    assert "layer1.bin" in listed and "sub/shared.txt" in listed and "report" in listed
    target = tmp_path / "fetched"
    target.mkdir()
    assert cli_main(["artifacts", "files", "1", "--backend", store, "--get", "weights", "--to", str(target)]) == 0
    assert (target / "weights" / "layer1.bin").read_bytes() == weights_of(1, 2)
    assert cli_main(["artifacts", "files", "1", "--backend", store, "--get", "report", "--to", str(target)]) == 0
    assert (target / "report").read_text() == "a=1 b=2\n"
    assert cli_main(["artifacts", "files", "1", "--backend", store, "--get", "report", "--to", str(target)]) == 1
    assert "exists already" in capsys.readouterr().err
    assert cli_main(["artifacts", "files", "1", "--backend", store, "--get", "nothing"]) == 1
    assert "kept no artifact 'nothing'" in capsys.readouterr().err
