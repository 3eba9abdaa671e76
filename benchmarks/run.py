"""Run the benchmark suite: every system, every workload, one table.

    python -m benchmarks [--quick] [--json out.json] [--markdown out.md]
                         [--only trial_overhead,metric_logging,history,command_line,concurrency,
                                 sweep_sharing,many_trials,cluster_overhead,step_cache,artifacts,
                                 physical_floor]
                         [--systems floor,ours,original,mlflow,sacred] [--backends local,redis,mongo]

Each system runs in its own subprocess with its own interpreter (ours and the
floor: this one, with the repository importable; the original, MLflow and
Sacred: their venvs, created on first use) and reports JSON back; this module
assembles the results, prints the table and writes the JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # python benchmarks/run.py
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository, not this folder

from benchmarks import report
from benchmarks.adapters import ADAPTERS, load_adapter
from benchmarks.config import FULL, QUICK, Sizes
from benchmarks.envs import Interpreter, cache_root, interpreters
from benchmarks.servers import servers
from benchmarks.worker import bootstrap_code
from benchmarks.workloads import ENGINE_WORKLOADS, WORKLOADS, command_line

SYSTEMS = ("floor", "ours", "original", "mlflow", "sacred")
BACKENDS = ("local", "redis", "mongo")


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Runner:
    """Starts the jobs of one run of the suite and keeps their results."""

    def __init__(self, sizes: Sizes, interps: dict[str, Interpreter], uris: dict[str, str | None],
                 scratch: Path) -> None:
        self.sizes = sizes
        self.interps = interps
        self.uris = uris
        self.scratch = scratch
        self._count = 0

    # -- one job ----------------------------------------------------------------
    def skip_reason(self, system: str, backend: str) -> str | None:
        """Why ``system`` cannot run on ``backend`` here, or None."""
        interp = self.interps[system]
        if interp.unavailable:
            return interp.unavailable
        if backend not in load_adapter(system).backends:
            return f"{system} has no {backend} store"
        if backend != "local" and not self.uris.get(backend):
            return f"{backend} server could not be started"
        return None

    def _env(self, system: str) -> dict[str, str]:
        return command_line.python_env(self.interps[system].pythonpath)

    def _spawn(self, system: str, job: dict[str, Any]) -> tuple[subprocess.Popen, Path, Path]:
        self._count += 1
        folder = self.scratch / f"{self._count:03d}-{system}-{job['workload']}-{job['backend']}"
        workdir = Path(job.get("workdir") or folder / "work")
        folder.mkdir(parents=True)
        workdir.mkdir(parents=True, exist_ok=True)
        job = {**job, "system": system, "workdir": str(workdir), "sizes": self.sizes.as_dict(),
               "uri": self.uris.get(job["backend"])}
        job_path, result_path = folder / "job.json", folder / "result.json"
        job_path.write_text(json.dumps(job))
        with open(folder / "log.txt", "w") as logfile:  # the child keeps its own handle
            process = subprocess.Popen(
                [self.interps[system].python, "-c", bootstrap_code(), str(job_path), str(result_path)],
                cwd=workdir, env=self._env(system), stdout=logfile, stderr=subprocess.STDOUT,
            )
        return process, result_path, folder

    def _collect(self, process: subprocess.Popen, result_path: Path, folder: Path) -> dict[str, Any]:
        try:
            process.wait(timeout=self.sizes.job_timeout_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return {"status": "error", "reason": f"timed out after {self.sizes.job_timeout_seconds:.0f} s"}
        if result_path.exists():
            return json.loads(result_path.read_text())
        tail = (folder / "log.txt").read_text().strip().splitlines()[-1:] or ["no output"]
        return {"status": "error", "reason": f"worker exited {process.returncode}: {tail[0][:200]}"}

    def job(self, system: str, workload: str, backend: str, **extra: Any) -> dict[str, Any]:
        """Run one job of ``system`` and return its result (status ok/unavailable/error)."""
        reason = self.skip_reason(system, backend)
        if reason:
            return {"status": "unavailable", "reason": reason}
        log(f"{workload}: {system} on {backend} ...")
        result = self._collect(*self._spawn(system, {"workload": workload, "backend": backend, **extra}))
        log(f"  -> {result['status']} {result.get('reason', '')}")
        return result

    # -- workloads ----------------------------------------------------------------
    def concurrency(self, system: str, backend: str) -> dict[str, Any]:
        """Workload 5: N writers started together, then a count of the stored trials."""
        reason = self.skip_reason(system, backend)
        if reason:
            return {"status": "unavailable", "reason": reason}
        log(f"concurrency: {self.sizes.concurrency_processes} x {system} on {backend} ...")
        rendezvous = Path(tempfile.mkdtemp(dir=self.scratch, prefix="rendezvous-"))
        shared = Path(tempfile.mkdtemp(dir=self.scratch, prefix="shared-"))
        jobs = []
        # All writers share one working directory, hence one local store. The
        # first writer creates the store alone (and warms up) before the
        # others start: creating a store is not what this workload measures.
        for worker in range(self.sizes.concurrency_processes):
            process, result_path, folder = self._spawn(
                system, {"workload": "concurrency", "backend": backend,
                         "rendezvous": str(rendezvous), "worker": worker, "workdir": str(shared)},
            )
            jobs.append((process, result_path, folder))
            self._wait_ready(rendezvous, jobs, len(jobs) if worker == 0 else 0)
        self._wait_ready(rendezvous, jobs, len(jobs))
        (rendezvous / "go").touch()
        results = [self._collect(*job) for job in jobs]
        failed = [r for r in results if r["status"] != "ok"]
        if failed:
            log(f"  -> {failed[0]['status']} {failed[0].get('reason', '')}")
            return failed[0]
        start = min(r["start"] for r in results)
        end = max(r["end"] for r in results)
        trials = sum(r["trials"] for r in results)
        out: dict[str, Any] = {"status": "ok", "processes": len(results), "trials": trials,
                               "seconds": end - start, "trials_per_second": trials / (end - start)}
        counted = self._collect(*self._spawn(system, {"workload": "concurrency_count",
                                                       "backend": backend, "workdir": str(shared)}))
        out["rows_stored"] = counted.get("rows") if counted["status"] == "ok" else None
        out["rows_expected"] = trials + len(results)  # one warm-up trial per writer
        log(f"  -> ok {out['trials_per_second']:.1f} trials/s, stored {out['rows_stored']}/{out['rows_expected']}")
        shutil.rmtree(shared, ignore_errors=True)
        return out

    @staticmethod
    def _wait_ready(rendezvous: Path, jobs: list, wanted: int) -> None:
        deadline = time.time() + 180
        while len(list(rendezvous.glob("ready-*"))) < wanted and time.time() < deadline:
            if any(p.poll() is not None for p, _, _ in jobs):
                return
            time.sleep(0.02)

    def command_line(self, systems: list[str]) -> dict[str, Any]:
        """Workload 4: each system's script as a new process, interleaved rounds."""
        out: dict[str, Any] = {}
        runnable = {}
        for system in systems:
            reason = self.skip_reason(system, "local")
            if reason:
                out[f"{system}/local"] = {"status": "unavailable", "reason": reason}
            else:
                runnable[system] = (self.interps[system].python, self._env(system))
        log(f"command_line: {', '.join(runnable)} ...")
        results = command_line.run(runnable, self.scratch, self.sizes.cli_repeats,
                                   self.sizes.job_timeout_seconds, log)
        out.update({f"{s}/local": r for s, r in results.items()})
        return {f"{s}/local": out[f"{s}/local"] for s in systems}


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of ~1-2 minutes")
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="also write the table as Markdown")
    parser.add_argument("--only", metavar="W1,W2", help=f"workloads among {','.join(WORKLOADS)}")
    parser.add_argument("--systems", metavar="S1,S2", default=",".join(SYSTEMS))
    parser.add_argument("--backends", metavar="B1,B2", default=",".join(BACKENDS))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the suite; print the table; return the exit status."""
    args = parse(argv)
    sizes = QUICK if args.quick else FULL
    workloads = args.only.split(",") if args.only else list(WORKLOADS)
    unknown = set(workloads) - set(WORKLOADS)
    systems = [s for s in args.systems.split(",") if s]
    backends = [b for b in args.backends.split(",") if b]
    if unknown or set(systems) - set(ADAPTERS) or set(backends) - set(BACKENDS):
        print(f"unknown workload/system/backend in {args}", file=sys.stderr)
        return 2
    started = time.time()
    interps = interpreters(systems, log)
    scratch_root = cache_root() / "runs"
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=scratch_root, prefix=time.strftime("%Y%m%d-%H%M%S-")))
    results: dict[str, Any] = {"machine": machine(), "sizes": sizes.as_dict(), "quick": args.quick,
                               "versions": {s: i.versions for s, i in interps.items()},
                               "unavailable": {s: i.unavailable for s, i in interps.items() if i.unavailable},
                               "workloads": {}}
    wanted = {b for b in backends if b != "local"} | ({"s3"} if "artifacts" in workloads else set())
    with servers(wanted, log) as uris:
        results["servers"] = {k: (v is not None) for k, v in uris.items()}
        runner = Runner(sizes, interps, uris, scratch)
        table = results["workloads"]
        if "trial_overhead" in workloads or "history" in workloads:
            table["trial_overhead"] = {f"{s}/{b}": runner.job(s, "trial_overhead", b)
                                       for b in backends for s in systems}
        if "metric_logging" in workloads:
            table["metric_logging"] = {f"{s}/{b}": runner.job(s, "metric_logging", b)
                                       for b in backends for s in systems}
        if "command_line" in workloads:
            table["command_line"] = runner.command_line(systems)
        if "concurrency" in workloads:
            table["concurrency"] = {f"{s}/{b}": runner.concurrency(s, b)
                                    for b in backends for s in systems}
        for name in ENGINE_WORKLOADS:
            if name in workloads and "ours" in systems:
                table[name] = {"ours/local": runner.job("ours", name, "local")}
        if "step_cache" in workloads and "ours" in systems:
            table["step_cache"] = {f"ours/{b}": runner.job("ours", "step_cache", b) for b in backends}
        if "artifacts" in workloads and "ours" in systems:
            table["artifacts"] = {"ours/local": runner.job("ours", "artifacts", "local", s3=uris.get("s3"))}
        if "physical_floor" in workloads and "ours" in systems:
            table["physical_floor"] = {f"ours/{b}": runner.job("ours", "physical_floor", b) for b in backends}
    results["elapsed_seconds"] = time.time() - started
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    text = report.render(results)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    if args.markdown:
        Path(args.markdown).write_text(text)
    shutil.rmtree(scratch, ignore_errors=True)
    log(f"done in {results['elapsed_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
