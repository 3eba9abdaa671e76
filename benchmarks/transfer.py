"""Export, import and copy of a 1,000-trial experiment (not part of the table).

    python -m benchmarks.transfer [--trials 1000] [--rounds 2] [--backends local,redis,mongo]

The experiment (local store): each trial saves 100 epochs of 2 metrics, keeps
a 10 kB file of random bytes as an artifact and persists a small array. Reported per round: the
export file's size and the seconds of the export, then of the import into each
store (staged, then put in place), then of a copy from the local store into each.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository, not this folder

from benchmarks.servers import servers


def build(folder: Path, trials: int) -> Path:
    """The experiment "moved" of ``trials`` trials in a local store under ``folder``; its store."""
    import numpy as np

    from daskperiment import Experiment

    store = folder / "source"
    ex = Experiment("moved", backend=store, script_mode=False)
    a = ex.parameter("a")

    @ex.persist
    def train(a):
        for epoch in range(100):
            ex.save_metric("loss", epoch, a / (epoch + 1))
            ex.save_metric("accuracy", epoch, 1 - 1 / (a + epoch + 2))
        (ex.artifact_dir("model") / "weights.bin").write_bytes(np.random.default_rng(a).bytes(10_000))
        return np.arange(16, dtype=np.float64) * a

    @ex.result
    def score(weights):
        return float(weights.sum())

    ex.sweep(score(train(a)), grid={"a": list(range(trials))}, scheduler="sync")
    return store


def timed(call: Any) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backends", default="local,redis,mongo")
    args = parser.parse_args(argv)
    from daskperiment.transfer import copy_experiment, export_experiment, import_experiment

    folder = Path(tempfile.mkdtemp(prefix="daskperiment-bench-transfer-"))
    wanted = args.backends.split(",")
    source = build(folder, args.trials)
    rounds = []
    with servers({kind for kind in wanted if kind != "local"}, lambda text: print(text, file=sys.stderr)) as uris:
        targets = {kind: folder / "target" if kind == "local" else uris.get(kind) for kind in wanted}
        for number in range(args.rounds):
            path = folder / f"moved-{number}.zip"
            result: dict[str, Any] = {"export_seconds": timed(lambda: export_experiment("moved", path, backend=source))}
            result["file_mib"] = path.stat().st_size / 2**20
            for kind, target in targets.items():
                if target is None:
                    result[kind] = "n/a: the server did not start"
                    continue
                result[f"import_{kind}_seconds"] = timed(
                    lambda: import_experiment(path, backend=target, experiment_id=f"imported-{number}")
                )
                result[f"copy_{kind}_seconds"] = timed(
                    lambda: copy_experiment("moved", source, target, new_id=f"copied-{number}")
                )
            rounds.append(result)
    print(json.dumps({"trials": args.trials, "rounds": rounds}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
