"""Shared fixtures: every test gets fresh experiments in its own folder."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

import daskperiment
from daskperiment import Experiment

_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run each test in its own working directory with no experiment open."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DASKPERIMENT_CACHE_DIR", str(tmp_path / ".cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / ".local" / "share"))  # artifacts of server stores
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ".cache-home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config-home"))  # the signing key
    monkeypatch.delenv("DASKPERIMENT_SIGNING_KEY", raising=False)
    monkeypatch.delenv("DASKPERIMENT_SIGNING_KEY_FILE", raising=False)
    monkeypatch.delenv("DASKPERIMENT_ARTIFACTS", raising=False)
    Experiment._instances.clear()
    yield
    for experiment in Experiment._instances.values():
        experiment.backend.close()
    Experiment._instances.clear()


WAIT_SECONDS = 60.0
"""Longest wait for something a test waits for: only to fail rather than hang when it never happens."""


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    """Poll ``condition`` until it is true; its value (a failure after WAIT_SECONDS)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Running trials, quickly: heartbeats every 0.3 s, metric points written every 20 ms or every
    4 points, artifact files uploaded every 50 ms while a step runs."""
    from daskperiment import capture, metricstream, status

    monkeypatch.setattr(status, "HEARTBEAT_SECONDS", 0.3)  # a loaded machine may delay a beat 0.9 s
    monkeypatch.setattr(metricstream, "FLUSH_SECONDS", 0.02)
    monkeypatch.setattr(metricstream, "FLUSH_POINTS", 4)
    monkeypatch.setattr(metricstream, "POLL_SECONDS", 0.005)
    monkeypatch.setattr(capture, "UPLOAD_INTERVAL", 0.05)


@pytest.fixture
def make_experiment(tmp_path: Path) -> Callable[..., Experiment]:
    """Create an experiment with a unique id stored below the test's folder."""

    def make(id: str | None = None, **kwargs: object) -> Experiment:
        experiment_id = id or f"ex{next(_ids)}"
        kwargs.setdefault("backend", tmp_path / "store" / experiment_id)
        return Experiment(experiment_id, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def ex(make_experiment: Callable[..., Experiment]) -> Experiment:
    """A fresh experiment on the local store."""
    return make_experiment()


@pytest.fixture
def warnings_of(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """WARNING messages logged by daskperiment so far in the test."""
    caplog.set_level(logging.INFO, logger="daskperiment")

    def messages() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.WARNING and r.name.startswith("daskperiment")
        ]

    return messages


@pytest.fixture
def child_env() -> dict[str, str]:
    """Environment for child Python processes: the package importable from this checkout."""
    return _child_environment()


@pytest.fixture
def run_python(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run code in a new Python process in the test's folder; return its outcome."""

    def run(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=tmp_path,
            env=_child_environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def _child_environment() -> dict[str, str]:
    """Environment of child processes: the package importable from this checkout."""
    env = dict(os.environ)
    root = str(Path(daskperiment.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


# -- real servers: Redis (redis-server) and MongoDB (a real mongod, or secantusdb) -------------
SERVER_START_SECONDS = 60.0


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """A server process on 127.0.0.1 that tests start, kill and restart on the same port.

    Parameters
    ----------
    command : callable
        Builds the command line from the port.
    log : pathlib.Path
        File receiving the server's output (shown if it does not start).
    """

    def __init__(self, command: Callable[[int], list[str]], log: Path) -> None:
        self.command = command
        self.log = log
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> "ServerProcess":
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.command(self.port), stdout=output, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.command(self.port)} did not start:\n{self.log.read_text()}")

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(timeout=60)


def redis_command(directory: Path, persistent: bool = False) -> Callable[[int], list[str]]:
    """``redis-server`` on a port, its files in ``directory`` (each write on disk if persistent)."""
    durability = ["--appendonly", "yes", "--appendfsync", "always"]
    if not persistent:
        durability = ["--appendonly", "no"]
    return lambda port: [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        *durability, "--dir", str(directory),
    ]


def mongo_command(storage: str, *options: str) -> Callable[[int], list[str]]:
    """The MongoDB-wire server secantusdb on a port, storing in ``storage`` (or ``:memory:``)."""
    return lambda port: [
        sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
        "--storage-path", storage, "--log-level", "WARNING", *options,
    ]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of the test Redis: ``$DASKPERIMENT_TEST_REDIS_URI`` or a redis-server started here."""
    configured = os.environ.get("DASKPERIMENT_TEST_REDIS_URI")
    if configured:
        yield configured
        return
    folder = tmp_path_factory.mktemp("redis")
    server = ServerProcess(redis_command(folder), folder / "server.log").start()
    yield f"redis://127.0.0.1:{server.port}/0"
    server.kill()


@pytest.fixture
def redis_uri(redis_server: str) -> str:
    """URI of an empty Redis database (flushed before the test)."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    client.close()
    return redis_server


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of the test MongoDB: ``$DASKPERIMENT_TEST_MONGO_URI`` or a secantusdb started here."""
    configured = os.environ.get("DASKPERIMENT_TEST_MONGO_URI")
    if configured:
        yield configured
        return
    folder = tmp_path_factory.mktemp("mongo")
    server = ServerProcess(mongo_command(":memory:"), folder / "server.log").start()
    yield f"mongodb://127.0.0.1:{server.port}/"
    server.kill()


@pytest.fixture
def mongo_uri(mongo_server: str) -> Iterator[str]:
    """URI of a new, empty MongoDB database, dropped after the test."""
    import pymongo

    name = f"daskperiment_test_{os.getpid()}_{next(_ids)}"
    parts = urlsplit(mongo_server)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    client = pymongo.MongoClient(mongo_server, serverSelectionTimeoutMS=10_000)
    client.drop_database(name)
    client.close()


@pytest.fixture(params=["redis", "mongo"])
def server_uri(request: pytest.FixtureRequest) -> str:
    """URI of an empty store on each kind of server."""
    return request.getfixturevalue(f"{request.param}_uri")


# -- a real S3-compatible server: moto_server --------------------------------------------
@dataclasses.dataclass(frozen=True)
class S3Server:
    """An S3-compatible endpoint with one bucket the tests may write into.

    Attributes
    ----------
    endpoint : str
        URL of the endpoint.
    bucket : str
        Name of an existing bucket.
    storage_options : dict
        s3fs options reaching the endpoint (credentials, endpoint, region).
    """

    endpoint: str
    bucket: str
    storage_options: dict

    def url(self, prefix: str) -> str:
        """``s3://<bucket>/<prefix>``."""
        return f"s3://{self.bucket}/{prefix}"


def s3_storage_options(endpoint: str, **config: object) -> dict:
    """s3fs options for ``endpoint`` with its test credentials (none from the environment)."""
    options: dict = {
        "key": os.environ.get("DASKPERIMENT_TEST_S3_KEY", "testing"),
        "secret": os.environ.get("DASKPERIMENT_TEST_S3_SECRET", "testing"),
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    if config:
        options["config_kwargs"] = config
    return options


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """``$DASKPERIMENT_TEST_S3_ENDPOINT`` (credentials in ``$DASKPERIMENT_TEST_S3_KEY`` and
    ``..._SECRET``) or a ``moto_server`` started here, with a new bucket."""
    import boto3

    endpoint = os.environ.get("DASKPERIMENT_TEST_S3_ENDPOINT")
    server = None
    if not endpoint:
        folder = tmp_path_factory.mktemp("s3")
        server = ServerProcess(
            lambda port: ["moto_server", "-H", "127.0.0.1", "-p", str(port)], folder / "server.log"
        ).start()
        endpoint = f"http://127.0.0.1:{server.port}"
    options = s3_storage_options(endpoint)
    bucket = f"daskperiment-test-{os.getpid()}-{int(time.time())}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=options["key"],
        aws_secret_access_key=options["secret"], region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)
    yield S3Server(endpoint, bucket, options)
    if server is not None:
        server.kill()
        return
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A ``distributed.LocalCluster`` of 2 worker processes, shared by a test module."""
    import distributed

    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster


@pytest.fixture(params=["sync", "threads", "processes", "cluster"])
def scheduler(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Each scheduler users pick: a name for dask's local ones, a client of :func:`cluster`."""
    if request.param != "cluster":
        yield request.param
        return
    import distributed

    with distributed.Client(request.getfixturevalue("cluster")) as client:
        yield client
