"""``daskperiment run SCRIPT``: run an experiment script as ``python SCRIPT`` would."""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import traceback
from pathlib import Path

from daskperiment.backend import BACKEND_VARIABLE
from daskperiment.cli.errors import USAGE, CommandError
from daskperiment.cli.store import BACKEND_HELP


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help="run an experiment script (one trial per @ex.result call)",
        description=(
            "Run SCRIPT as `python SCRIPT ARGS` does: each call of an @ex.result step runs "
            "and records one trial, with the parameters given as name=value (Python "
            "literals; a bare word is a string). Experiments the script creates without "
            "naming a backend use --backend (default: $DASKPERIMENT_BACKEND, else local)."
        ),
        epilog="example: daskperiment run simple_experiment.py a=1 b=2 --seed 1",
    )
    parser.add_argument(
        "--seed", type=int, help="seed of random and numpy.random (also accepted after SCRIPT)"
    )
    parser.add_argument(
        "--progress", action="store_true", help="show dask's progress bar on stderr"
    )
    parser.add_argument("--backend", help=BACKEND_HELP)
    parser.add_argument("script", metavar="SCRIPT", help="path of the experiment script")
    parser.add_argument(
        "arguments",
        metavar="name=value",
        nargs=argparse.REMAINDER,
        help="parameter values, and --seed N / --progress",
    )
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    """Run ``args.script`` as ``__main__``; 1 when it raises (a failed trial is recorded)."""
    script = script_path(args.script)
    arguments = list(args.arguments)
    if args.seed is not None:
        arguments += ["--seed", str(args.seed)]
    if args.progress:
        arguments.append("--progress")
    return run_script(script, arguments, args.backend)


def script_path(text: str) -> Path:
    """The path of the script ``text`` names; a usage error when it is no file."""
    script = Path(text)
    if not script.is_file():
        raise CommandError(f"script {text!r} not found: give the path of a Python file", USAGE)
    return script


def run_script(script: Path, arguments: list[str], backend: str | None) -> int:
    """Run ``script`` as ``__main__`` with ``arguments`` in ``sys.argv``; 1 when it raises.

    ``backend`` is the store of the experiments the script creates without naming one.
    """
    if backend:
        os.environ[BACKEND_VARIABLE] = backend  # the default store of Experiment(...)
    sys.argv = [str(script), *arguments]
    sys.path.insert(0, str(script.resolve().parent))
    try:
        runpy.run_path(str(script), run_name="__main__")
    except Exception:  # noqa: BLE001 - whatever the script raised: shown as `python SCRIPT` does
        traceback.print_exc()
        return 1
    return 0
