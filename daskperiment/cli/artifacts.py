"""``daskperiment artifacts ID TRIAL``: list a trial's artifacts, or fetch one."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from daskperiment.cli.errors import CommandError
from daskperiment.cli.output import add_output_arguments, render
from daskperiment.cli.store import ARTIFACTS_HELP, BACKEND_HELP, open_experiment


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``artifacts`` subcommand."""
    parser = subparsers.add_parser(
        "artifacts",
        help="list the files a trial kept, or fetch one",
        description=(
            "List the artifacts of a trial (the files its steps kept, and 'output', what it "
            "printed), one row per file; with --get NAME, copy artifact NAME (a file or a "
            "folder) to --to (default: the current folder) and print where it is."
        ),
    )
    parser.add_argument("experiment_id", metavar="ID", help="id of the experiment")
    parser.add_argument("trial_id", metavar="TRIAL", type=int, help="id of the trial")
    parser.add_argument("--backend", default="local", help=BACKEND_HELP)
    parser.add_argument("--artifacts", help=ARTIFACTS_HELP)
    parser.add_argument("--get", metavar="NAME", help="fetch artifact NAME")
    parser.add_argument("--to", metavar="FOLDER", default=".", help="where --get copies it (default: .)")
    add_output_arguments(parser, "output format of the list")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    """List the artifacts of the trial, or copy one to ``args.to``."""
    experiment = open_experiment(args.backend, args.experiment_id, args.artifacts)
    if args.get is None:
        print(render(experiment.get_artifacts(args.trial_id).set_index("Artifact"), args.format, args.wide))
        return 0
    source = experiment.get_artifact(args.get, args.trial_id)
    folder = Path(args.to)
    if not folder.is_dir():
        raise CommandError(f"--to {args.to!r} is not a folder: create it, or give an existing one")
    target = folder / args.get
    if target.exists():
        raise CommandError(f"{str(target)!r} exists already: remove it, or give another folder with --to")
    if source.is_dir():
        shutil.copytree(source, target, copy_function=shutil.copyfile)
    else:
        shutil.copyfile(source, target)
    print(target)
    return 0
