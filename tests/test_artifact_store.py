"""The artifact store: content-addressed files in a local folder and on a real S3 server (moto)."""

from __future__ import annotations

import itertools
import os
import pickle
import shutil
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import platformdirs
import pytest
from blake3 import blake3

from conftest import S3Server, free_port, s3_storage_options
from daskperiment.artifactstore import CHUNK, ArtifactStore, artifact_location, check_relative_path, content_digest
from daskperiment.errors import ArtifactError, DaskperimentError

_prefixes = itertools.count(1)


@pytest.fixture(params=["file", "s3"])
def artifact_store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """An empty store in a local folder, and in a new prefix of the test S3 bucket."""
    cache = tmp_path / "download-cache"
    if request.param == "file":
        return ArtifactStore(str(tmp_path / "artifacts"), cache_dir=cache)
    server: S3Server = request.getfixturevalue("s3_server")
    prefix = f"{request.node.name}-{next(_prefixes)}".replace("[", "-").replace("]", "")
    return ArtifactStore(server.url(prefix), server.storage_options, cache_dir=cache)


@pytest.fixture
def s3_store(s3_server: S3Server, tmp_path: Path) -> ArtifactStore:
    """An empty store in a new prefix of the test S3 bucket."""
    return ArtifactStore(
        s3_server.url(f"remote-{next(_prefixes)}"), s3_server.storage_options, cache_dir=tmp_path / "download-cache"
    )


def unreachable_store(url: str, cache_dir: Path) -> ArtifactStore:
    """A store of ``url`` on a loopback port nothing listens on, failing at the first attempt."""
    options = s3_storage_options(
        f"http://127.0.0.1:{free_port()}", connect_timeout=2, retries={"total_max_attempts": 1}
    )
    return ArtifactStore(url, options, cache_dir=cache_dir)


def objects(store: ArtifactStore) -> list[str]:
    """Paths of the objects stored (and of anything else left in the objects folder)."""
    return store.fs.find(f"{store.url}/objects")


def address(data: bytes) -> str:
    """The address of ``data`` in a store (its BLAKE3 hash)."""
    return blake3(data).hexdigest()


def file_digest(path: Path) -> str:
    """The store's digest of a file (SHA-256 only up to one chunk)."""
    return content_digest(path.read_bytes())


def corrupt(store: ArtifactStore, digest: str, content: bytes) -> None:
    """Replace the stored content of ``digest`` behind the store's back."""
    path = f"{store.url}/objects/{digest[:2]}/{digest}"
    if store.url.startswith("s3://"):
        store.fs.pipe_file(path, content)
    else:
        os.chmod(path, 0o644)
        Path(path).write_bytes(content)


def is_read_only(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o222 == 0


# -- storing ---------------------------------------------------------------------------
def test_identical_content_is_stored_once(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"same content")
    (tmp_path / "b.bin").write_bytes(b"same content")

    first = artifact_store.put_file(tmp_path / "a.txt")
    second = artifact_store.put_file(str(tmp_path / "b.bin"))
    third = artifact_store.put_bytes(b"same content")

    assert first == second == (address(b"same content"), 12)
    assert third == first[0]
    assert len(objects(artifact_store)) == 1
    assert artifact_store.exists(third)
    assert not artifact_store.exists(address(b"other content"))


def test_empty_files_are_kept(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")

    digest, size = artifact_store.put_file(tmp_path / "empty")

    assert (digest, size) == (address(b""), 0)
    assert artifact_store.get_bytes(digest) == b""
    assert artifact_store.fetch(digest).read_bytes() == b""


def test_many_files_from_many_threads(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    contents = [f"file {i % 150}\n".encode() * (i + 1) for i in range(200)]  # 50 share a content
    paths = []
    for i, content in enumerate(contents):
        paths.append(tmp_path / "in" / f"{i}.txt")
        paths[-1].parent.mkdir(exist_ok=True)
        paths[-1].write_bytes(content)

    with ThreadPoolExecutor(16) as pool:
        kept = list(pool.map(artifact_store.put_file, paths))

    assert kept == [(address(content), len(content)) for content in contents]
    assert len(objects(artifact_store)) == len(set(contents))
    with ThreadPoolExecutor(16) as pool:
        read = list(pool.map(artifact_store.get_bytes, [digest for digest, _ in kept]))
    assert read == contents


def test_one_large_content_from_many_threads_is_one_object(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(20 * 2**20))

    with ThreadPoolExecutor(4) as pool:
        kept = set(pool.map(lambda _: artifact_store.put_file(source), range(4)))

    assert kept == {(file_digest(source), 20 * 2**20)}
    assert len(objects(artifact_store)) == 1  # and no temporary file left


def test_a_large_file_round_trip(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    with source.open("wb") as handle:
        for _ in range(50):
            handle.write(os.urandom(2**20))
    handle_digest = file_digest(source)

    digest, size = artifact_store.put_file(source)
    fetched = artifact_store.fetch(digest)

    assert (digest, size) == (handle_digest, 50 * 2**20)
    assert file_digest(fetched) == digest
    assert fetched != source


def test_contents_are_addressed_by_their_blake3_hash_whatever_their_size(
    artifact_store: ArtifactStore, tmp_path: Path
) -> None:
    for content in (b"", b"small", os.urandom(CHUNK), os.urandom(2 * CHUNK + 1000)):
        expected = blake3(content).hexdigest()
        (tmp_path / "content.bin").write_bytes(content)
        assert content_digest(content) == expected
        assert artifact_store.put_bytes(content) == expected
        assert artifact_store.put_file(tmp_path / "content.bin") == (expected, len(content))
        assert artifact_store.get_bytes(expected) == content
        assert artifact_store.fetch(expected).read_bytes() == content


def test_a_file_given_away_is_moved_into_a_local_store(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    folder = store.scratch_folder("step-")
    given = folder / "weights.bin"
    content = os.urandom(CHUNK + 10)
    given.write_bytes(content)
    inode = given.stat().st_ino

    digest, size = store.put_file(given, move=True)

    assert folder.parent == tmp_path / "artifacts" / "tmp"
    assert (digest, size) == (content_digest(content), len(content))
    assert not given.exists()
    assert store.fetch(digest).stat().st_ino == inode
    assert is_read_only(store.fetch(digest))
    assert store.get_bytes(digest) == content


def test_a_file_given_away_with_another_link_is_copied(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    elsewhere = tmp_path / "mine.bin"
    elsewhere.write_bytes(b"still mine")
    given = store.scratch_folder("step-") / "linked.bin"
    os.link(elsewhere, given)

    digest, _ = store.put_file(given, move=True)

    assert store.fetch(digest).read_bytes() == b"still mine"
    assert not os.path.samefile(store.fetch(digest), elsewhere)
    assert not is_read_only(elsewhere)


def test_a_file_given_away_is_kept_by_any_store(artifact_store: ArtifactStore) -> None:
    folder = artifact_store.scratch_folder("step-")  # the system's temporary folder for a bucket
    (folder / "plot.svg").write_bytes(b"<svg/>" * 1000)

    digest, size = artifact_store.put_file(folder / "plot.svg", move=True)
    shutil.rmtree(folder)

    assert (digest, size) == (address(b"<svg/>" * 1000), 6000)
    assert artifact_store.get_bytes(digest) == b"<svg/>" * 1000


def test_a_local_store_fetches_the_object_itself(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"), cache_dir=tmp_path / "cache")
    digest = store.put_bytes(b"weights")

    assert store.fetch(digest) == tmp_path / "artifacts" / "objects" / digest[:2] / digest
    assert not (tmp_path / "cache").exists()


def test_a_remote_object_is_downloaded_once(s3_store: ArtifactStore, tmp_path: Path) -> None:
    digest = s3_store.put_bytes(b"a plot")
    fetched = s3_store.fetch(digest)
    # the same location, its endpoint unreachable: only the local copy can answer
    offline = unreachable_store(s3_store.url, tmp_path / "download-cache")

    assert fetched == tmp_path / "download-cache" / digest
    assert offline.fetch(digest) == fetched
    assert fetched.read_bytes() == b"a plot"
    with pytest.raises(ArtifactError):
        offline.get_bytes(digest)  # which does ask the location


def test_fetched_files_are_read_only(artifact_store: ArtifactStore) -> None:
    digest = artifact_store.put_bytes(b"immutable")

    assert is_read_only(artifact_store.fetch(digest))


def test_a_damaged_object_is_detected(artifact_store: ArtifactStore) -> None:
    digest = artifact_store.put_bytes(b"the original")
    corrupt(artifact_store, digest, b"something else")

    with pytest.raises(ArtifactError, match=f"{digest} .* is damaged: its content has the digest "
                       f"{address(b'something else')}"):
        artifact_store.get_bytes(digest)


def test_a_damaged_download_leaves_nothing_behind(s3_store: ArtifactStore, tmp_path: Path) -> None:
    digest = s3_store.put_bytes(b"the original")
    corrupt(s3_store, digest, b"something else")

    with pytest.raises(ArtifactError, match="is damaged"):
        s3_store.fetch(digest)
    assert list((tmp_path / "download-cache").iterdir()) == []


def test_an_object_of_the_wrong_size_is_written_again(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    digest = store.put_bytes(b"complete")
    corrupt(store, digest, b"")  # as a power cut can leave it

    assert store.put_bytes(b"complete") == digest
    assert store.get_bytes(digest) == b"complete"


def test_a_store_pickles_into_another_process(
    artifact_store: ArtifactStore, run_python: Callable[..., subprocess.CompletedProcess], tmp_path: Path
) -> None:
    digest = artifact_store.put_bytes(b"sent to a worker")
    (tmp_path / "store.pickle").write_bytes(pickle.dumps(artifact_store))
    code = (
        "import pickle, sys\n"
        "store = pickle.loads(open('store.pickle', 'rb').read())\n"
        "print(store.url)\n"
        "print(store.get_bytes(sys.argv[1]).decode())\n"
        "print(store.fetch(sys.argv[1]).read_text())\n"
        "print(store.put_bytes(b'from the worker'))\n"
    )

    done = run_python(code, digest)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        artifact_store.url, "sent to a worker", "sent to a worker", address(b"from the worker")
    ]
    assert artifact_store.get_bytes(address(b"from the worker")) == b"from the worker"


def test_deleted_objects_are_gone(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    kept = artifact_store.put_bytes(b"kept")
    dropped = artifact_store.put_bytes(b"dropped")
    fetched = artifact_store.fetch(dropped)

    artifact_store.delete([dropped, address(b"never stored")])
    artifact_store.delete([])

    assert not artifact_store.exists(dropped)
    assert artifact_store.exists(kept)
    assert not fetched.exists()  # nor its downloaded copy
    with pytest.raises(ArtifactError, match=f"artifact object {dropped} is missing from"):
        artifact_store.fetch(dropped)


# -- folders ---------------------------------------------------------------------------
def test_a_folder_is_materialized_from_its_files(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    weights = artifact_store.put_bytes(b"weights")
    config = artifact_store.put_bytes(b"config")
    files = [("model/weights.bin", weights), ("config.json", config), ("copy/of/weights.bin", weights)]

    folder = artifact_store.materialize(files, tmp_path / "folders" / "model")

    assert folder == tmp_path / "folders" / "model"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "config.json", "copy/of/weights.bin", "model/weights.bin"
    ]
    assert (folder / "model" / "weights.bin").read_bytes() == b"weights"
    assert os.path.samefile(folder / "config.json", artifact_store.fetch(config))  # a link, not a copy
    assert is_read_only(folder / "config.json")
    assert [p.name for p in folder.parent.iterdir()] == ["model"]  # nothing left beside it


def test_a_materialized_folder_is_reused_or_rebuilt(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    first = artifact_store.put_bytes(b"first")
    second = artifact_store.put_bytes(b"second")
    target = tmp_path / "folder"
    artifact_store.materialize([("a.txt", first)], target)
    inode = (target / "a.txt").stat().st_ino

    artifact_store.materialize([("a.txt", first)], target)
    assert (target / "a.txt").stat().st_ino == inode

    artifact_store.materialize([("a.txt", second), ("b/c.txt", first)], target)
    assert (target / "a.txt").read_bytes() == b"second"
    assert (target / "b" / "c.txt").read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".folder")] == []


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([("/etc/passwd", "0" * 64)], "is absolute"),
        ([("../outside", "0" * 64)], "leads outside the artifact directory"),
        ([("a.txt", "0" * 64), ("./a.txt", "1" * 64)], "given twice"),
        ([("a", "0" * 64), ("a/b", "1" * 64)], "'a' is both a file and a folder"),
    ],
)
def test_a_folder_with_bad_paths_is_refused(
    artifact_store: ArtifactStore, tmp_path: Path, files: list, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        artifact_store.materialize(files, tmp_path / "folder")
    assert not (tmp_path / "folder").exists()


# -- bad input and unreachable locations -------------------------------------------------
def test_a_missing_file_is_an_error(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="'.*nope.txt' as an artifact: there is no such file; check the path"):
        artifact_store.put_file(tmp_path / "nope.txt")


def test_a_folder_is_not_a_file(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="as a file artifact: it is a folder; give a file"):
        artifact_store.put_file(tmp_path)


def test_a_missing_object_is_an_error(artifact_store: ArtifactStore) -> None:
    digest = address(b"never stored")
    for read in (artifact_store.get_bytes, artifact_store.fetch):
        with pytest.raises(ArtifactError, match=f"artifact object {digest} is missing from '{artifact_store.url}'"):
            read(digest)


def test_a_malformed_digest_is_refused(artifact_store: ArtifactStore) -> None:
    for bad in ("abc", "../" + "0" * 61, "A" * 64):
        with pytest.raises(ValueError, match="is not a content digest"):
            artifact_store.fetch(bad)


def test_a_missing_bucket_is_named(s3_server: S3Server, tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"model")
    store = ArtifactStore("s3://no-such-bucket/artifacts", s3_server.storage_options, cache_dir=tmp_path / "cache")
    calls = [
        lambda: store.put_file(tmp_path / "model.bin"), lambda: store.put_bytes(b"x"),
        lambda: store.fetch(address(b"x")), lambda: store.get_bytes(address(b"x")),
    ]
    for call in calls:
        with pytest.raises(ArtifactError, match="the bucket of the artifact location "
                           f"'s3://no-such-bucket/artifacts' at {s3_server.endpoint} does not exist; create it"):
            call()
    assert list((tmp_path / "cache").iterdir()) == []  # no upload snapshot nor partial download left


def test_an_unreachable_endpoint_is_an_error(tmp_path: Path) -> None:
    store = unreachable_store("s3://bucket/artifacts", tmp_path / "cache")
    (tmp_path / "big.bin").write_bytes(b"x" * (9 * 2**20))
    calls = [
        lambda: store.put_bytes(b"x"), lambda: store.put_file(tmp_path / "big.bin"),
        lambda: store.fetch(address(b"x")), lambda: store.exists(address(b"x")),
    ]
    endpoint = store.fs.client_kwargs["endpoint_url"]
    for call in calls:
        with pytest.raises(ArtifactError, match=f"the artifact location 's3://bucket/artifacts' at {endpoint} "
                           "could not be reached .*check the endpoint URL, the network and the credentials"):
            call()
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_unwritable_local_location_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    store = ArtifactStore(str(tmp_path / "a-file" / "artifacts"))
    (tmp_path / "data.txt").write_bytes(b"data")

    with pytest.raises(ArtifactError, match="choose a writable artifact location"):
        store.put_file(tmp_path / "data.txt")
    with pytest.raises(ArtifactError, match="choose a writable artifact location"):
        store.put_bytes(b"data")


@pytest.mark.parametrize("url", ["", "   ", "nosuchprotocol://bucket/x"])
def test_a_bad_location_is_refused(url: str) -> None:
    with pytest.raises(ArtifactError, match="artifact location"):
        ArtifactStore(url)


def test_artifact_errors_are_daskperiment_errors() -> None:
    assert issubclass(ArtifactError, DaskperimentError)


# -- locations -----------------------------------------------------------------------
def test_local_locations_are_absolute_paths(tmp_path: Path) -> None:
    assert ArtifactStore("artifacts").url == str(tmp_path / "artifacts")
    assert ArtifactStore(f"file://{tmp_path}/art/").url == str(tmp_path / "art")
    assert ArtifactStore("~/art").url == str(Path.home() / "art")


def test_remote_locations_keep_their_url(s3_server: S3Server) -> None:
    assert ArtifactStore(s3_server.url("a/b/"), s3_server.storage_options).url == s3_server.url("a/b")


def test_downloads_go_to_the_configured_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ArtifactStore("artifacts").cache_dir == tmp_path / ".cache" / "artifacts"  # see conftest
    monkeypatch.delenv("DASKPERIMENT_CACHE_DIR")
    assert ArtifactStore("artifacts").cache_dir == Path(platformdirs.user_cache_dir("daskperiment")) / "artifacts"
    assert ArtifactStore("artifacts", cache_dir=tmp_path / "c").cache_dir == tmp_path / "c"


def test_the_artifact_location_of_an_experiment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASKPERIMENT_ARTIFACTS", raising=False)
    default = Path(platformdirs.user_data_dir("daskperiment")) / "artifacts" / "ex"
    assert artifact_location(None, None, "ex") == str(default)
    assert artifact_location(None, "/store/ex/artifacts", "ex") == "/store/ex/artifacts"
    assert artifact_location("s3://bucket/mine", "/store/ex/artifacts", "ex") == "s3://bucket/mine"

    monkeypatch.setenv("DASKPERIMENT_ARTIFACTS", "s3://bucket/shared/")
    assert artifact_location(None, "/store/ex/artifacts", "ex") == "s3://bucket/shared/ex"
    assert artifact_location("/explicit", "/store/ex/artifacts", "ex") == "/explicit"


@pytest.mark.parametrize(
    ("path", "normalised"),
    [("a.txt", "a.txt"), ("model/weights.bin", "model/weights.bin"), ("./a//b/./c", "a/b/c"), ("a/", "a")],
)
def test_paths_inside_an_artifact_are_normalised(path: str, normalised: str) -> None:
    assert check_relative_path(path) == normalised


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/etc/passwd", "is absolute"),
        ("C:/Windows", "is absolute"),
        ("..", "leads outside the artifact directory"),
        ("a/../../b", "leads outside the artifact directory"),
        ("", "names no file"),
        ("./", "names no file"),
        ("a\0b", "NUL character"),
    ],
)
def test_paths_outside_an_artifact_are_refused(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_relative_path(path)
