"""Redis, a MongoDB-wire server and an S3 server of the suite's own, on free loopback ports.

Never the system's Redis on 6379: each run starts ``redis-server`` (no
persistence), ``python -m secantus`` (in memory) and ``moto_server`` (S3, in
memory; for the artifacts workload) and stops them at the end.
A server that cannot start is reported, and its rows say so.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"not listening on port {port} after {timeout:.0f} s")


@contextmanager
def servers(wanted: set[str], log) -> Iterator[dict[str, str | None]]:
    """Start the wanted servers (``redis``, ``mongo``, ``s3``); yield kind -> URI (None if failed).

    The S3 server's "URI" is its endpoint URL (``http://127.0.0.1:PORT``).
    """
    processes: list[subprocess.Popen] = []
    uris: dict[str, str | None] = {}
    scratch = tempfile.mkdtemp(prefix="daskperiment-bench-servers-")
    try:
        if "redis" in wanted:
            uris["redis"] = _start(
                "redis", processes, log,
                lambda port: [shutil.which("redis-server") or "redis-server", "--port", str(port),
                              "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                              "--dir", scratch],
                lambda port: f"redis://127.0.0.1:{port}/0",
            )
        if "mongo" in wanted:
            uris["mongo"] = _start(
                "mongo", processes, log,
                lambda port: [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port",
                              str(port), "--storage-path", ":memory:", "--log-level", "WARNING"],
                lambda port: f"mongodb://127.0.0.1:{port}/daskperiment_bench",
            )
        if "s3" in wanted:
            uris["s3"] = _start(
                "s3", processes, log,
                lambda port: [shutil.which("moto_server") or "moto_server", "-H", "127.0.0.1", "-p", str(port)],
                lambda port: f"http://127.0.0.1:{port}",
            )
        yield uris
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(scratch, ignore_errors=True)


def _start(kind, processes, log, command, uri) -> str | None:
    port = free_port()
    try:
        process = subprocess.Popen(command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as exc:
        log(f"{kind} server cannot start: {exc}")
        return None
    processes.append(process)
    try:
        _wait_for(port, process)
    except RuntimeError as exc:
        log(f"{kind} server cannot start: {exc}")
        return None
    return uri(port)
