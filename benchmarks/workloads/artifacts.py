"""Workload 10: a large file kept as an artifact and read back, against a plain file copy.

A step writes ``artifact_mib`` MiB (random bytes, a new header each round, so
nothing is deduplicated) into ``ex.artifact_dir("big")``; the trial keeps it.
Each round, on the same disk (the job's working folder), times:

- the trial that keeps the file, and the same trial writing the same bytes
  into a plain folder (not an artifact);
- **read back**: ``ex.get_artifact("big", trial)`` and reading the file fully;
- **copy** (the baseline): ``shutil.copyfile`` of the plain trial's file and
  reading the copy fully.

After a warm-up round, ``artifact_rounds`` rounds (alternating whether ours or
the copy goes first; each round's files and objects deleted afterwards); from
the medians of each: **capture** = keeping trial − plain trial (what keeping
the file costs), **ours** = capture + read back, and copy / ours (1.0: as fast
as a plain copy). Medians of each figure rather than per-round differences:
on this shared machine one slow trial would make a round's difference
meaningless (even negative).

The same with the artifacts on an S3 server (``moto_server`` started by the
runner; the trial store stays local): capture, read back (a download, checked
against its digest), and as a reference a plain s3fs ``put_file`` + ``get_file``
of the same file + reading it. Figures only, no target.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.adapters import Adapter
from benchmarks.config import Sizes
from benchmarks.workloads import median
from benchmarks.workloads.engine import new_experiment, require_ours, timed

ARTIFACT = "big"
FILE = "big.bin"
READ_BUFFER = 8 * 2**20


def read_fully(path: Path) -> None:
    """Read the file ``path`` to its end."""
    buffer = bytearray(READ_BUFFER)
    with open(path, "rb", buffering=0) as handle:
        while handle.readinto(buffer):
            pass


class Trials:
    """An experiment whose two result steps write the same bytes: as an artifact, or into a plain folder."""

    def __init__(self, payload: bytearray, plain: Path, artifacts: Any = None) -> None:
        ex = new_experiment("artifacts", artifacts=artifacts)
        n = ex.parameter("n")
        plain.mkdir(parents=True, exist_ok=True)

        def write(path: Path, n: int) -> None:
            payload[:8] = n.to_bytes(8, "little")  # a new content each round
            with open(path, "wb") as handle:
                handle.write(payload)

        @ex.result
        def keep(n: int) -> int:
            write(ex.artifact_dir(ARTIFACT) / FILE, n)
            return ex.current_trial_id

        @ex.result
        def write_plain(n: int) -> int:
            write(plain / f"{n}.bin", n)
            return n

        self.ex, self.plain = ex, plain
        self._keep, self._write_plain = keep(n), write_plain(n)

    def keep(self, n: int) -> tuple[float, int]:
        """Seconds of the trial keeping the artifact, and its trial id."""
        ids = []
        seconds = timed(lambda: ids.append(self.ex.run(self._keep, n=n)))
        return seconds, ids[0]

    def write_plain(self, n: int) -> tuple[float, Path]:
        """Seconds of the same trial writing into the plain folder, and the file it wrote."""
        return timed(lambda: self.ex.run(self._write_plain, n=n)), self.plain / f"{n}.bin"

    def read_back(self, trial_id: int) -> tuple[float, Path]:
        """Seconds of ``get_artifact`` + reading the file fully; the artifact's local path."""
        found = []

        def read() -> None:
            found.append(self.ex.get_artifact(ARTIFACT, trial_id))
            read_fully(found[0] / FILE)

        return timed(read), found[0]

    def forget(self, trial_id: int, local: Path) -> None:
        """Delete the trial's stored object and the local folder it was read from."""
        digests = self.ex.get_artifacts(trial_id)["Digest"].tolist()
        self.ex.artifacts.delete(digests)
        shutil.rmtree(local, ignore_errors=True)


def ours_round(trials: Trials, n: int) -> tuple[dict[str, float], Path]:
    """Seconds of the trial without and with the artifact and of the read back; the plain trial's file."""
    plain_seconds, plain_file = trials.write_plain(n)
    keep_seconds, trial_id = trials.keep(n)
    read_seconds, local = trials.read_back(trial_id)
    trials.forget(trial_id, local)
    return {"keep_trial": keep_seconds, "plain_trial": plain_seconds, "read_back": read_seconds}, plain_file


def rounds(count: int, one: Callable[[int], dict[str, float]], baseline: str) -> dict[str, Any]:
    """A warm-up round, then ``count`` rounds; ours (capture + read back) against the figure ``baseline``."""
    one(0)
    measured = [one(n) for n in range(1, count + 1)]
    figures = {key: {"median": median(r[key] for r in measured), "all": [r[key] for r in measured]}
               for key in measured[0]}
    capture = figures["keep_trial"]["median"] - figures["plain_trial"]["median"]
    ours = capture + figures["read_back"]["median"]
    base = figures[baseline]["median"]
    return {"rounds": figures, "capture_seconds": capture, "ours_seconds": ours, "baseline": baseline,
            "baseline_seconds": base, "baseline_over_ours": base / ours}


def local_figures(payload: bytearray, work: Path, count: int) -> dict[str, Any]:
    """Ours against ``shutil.copyfile`` + read, on the job's disk."""
    trials = Trials(payload, work / "plain")

    def one(n: int) -> dict[str, float]:
        copy = work / "copy.bin"
        figures: dict[str, float] = {}

        def copy_round(source: Path) -> None:
            figures["copyfile"] = timed(lambda: shutil.copyfile(source, copy))
            figures["copy_read"] = timed(lambda: read_fully(copy))
            figures["copy"] = figures["copyfile"] + figures["copy_read"]

        if n % 2:  # ours first
            mine, source = ours_round(trials, n)
            copy_round(source)
        else:
            source = work / "plain" / "source.bin"
            source.write_bytes(payload)
            copy_round(source)
            source.unlink()
            mine, source = ours_round(trials, n)
        source.unlink()
        copy.unlink()
        return {**mine, **figures}

    return rounds(count, one, "copy")


def s3_figures(payload: bytearray, work: Path, endpoint: str, count: int) -> dict[str, Any]:
    """Ours with the artifacts in a bucket of the S3 server, and a plain s3fs upload + download."""
    import boto3

    from daskperiment.artifactstore import ArtifactStore

    options = {"key": "bench", "secret": "bench",
               "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    bucket = f"bench-{os.getpid()}-{time.time_ns()}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench",
                 region_name="us-east-1").create_bucket(Bucket=bucket)
    store = ArtifactStore(f"s3://{bucket}/artifacts", options, cache_dir=work / "s3-downloads")
    trials = Trials(payload, work / "plain-s3", store)
    fs = store.fs

    def one(n: int) -> dict[str, float]:
        mine, source = ours_round(trials, n)
        key, downloaded = f"{bucket}/plain/{n}.bin", work / "s3-plain.bin"
        figures = {"put_file": timed(lambda: fs.put_file(str(source), key)),
                   "get_file_read": timed(lambda: (fs.get_file(key, str(downloaded)), read_fully(downloaded)))}
        figures["plain_s3"] = figures["put_file"] + figures["get_file_read"]
        fs.rm_file(key)
        source.unlink()
        downloaded.unlink()
        return {**mine, **figures}

    return rounds(count, one, "plain_s3")


def run(adapter: Adapter, backend: str, uri: str | None, sizes: Sizes, s3_endpoint: str | None) -> dict[str, Any]:
    """Measure on the local disk and, given an endpoint, on the S3 server; return the figures."""
    require_ours(adapter)
    work = Path.cwd()
    os.environ["DASKPERIMENT_CACHE_DIR"] = str(work / "user-cache")  # downloads and folders: this disk
    payload = bytearray(os.urandom(sizes.artifact_mib * 2**20))
    figures: dict[str, Any] = {"mib": sizes.artifact_mib, "local": local_figures(payload, work, sizes.artifact_rounds)}
    if s3_endpoint:
        figures["s3"] = s3_figures(payload, work, s3_endpoint, sizes.artifact_s3_rounds)
    else:
        figures["s3"] = {"unavailable": "no S3 server (moto_server) could be started"}
    return figures
