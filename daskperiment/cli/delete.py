"""``daskperiment delete ID TRIAL...`` and ``daskperiment delete ID --all``: delete trials or an experiment."""

from __future__ import annotations

import argparse
import sys

from daskperiment.backend import describe_store, store_location
from daskperiment.cli.errors import USAGE, CommandError
from daskperiment.cli.store import ARTIFACTS_HELP, BACKEND_HELP, open_experiment
from daskperiment.errors import TrialIDNotFoundError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``delete`` subcommand."""
    parser = subparsers.add_parser(
        "delete",
        help="delete trials, or a whole experiment",
        description=(
            "Delete trials with their metrics, persisted values, artifacts, notes and tags (the "
            "code and environment records and artifact files no remaining trial uses go too); "
            "their ids are never given again. With --all, delete the whole experiment. Asks for "
            "confirmation on a terminal unless --yes; without a terminal, --yes is required."
        ),
    )
    parser.add_argument("experiment_id", metavar="ID", help="id of the experiment")
    parser.add_argument("trial_ids", metavar="TRIAL", type=int, nargs="*", help="ids of the trials to delete")
    parser.add_argument("--all", action="store_true", help="delete the whole experiment")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--keep-files", action="store_true",
        help="keep the artifact files (for an artifact location other experiments share)",
    )
    parser.add_argument("--backend", default="local", help=BACKEND_HELP)
    parser.add_argument("--artifacts", help=ARTIFACTS_HELP)
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    """Delete what was asked once confirmed; print what was deleted."""
    if args.all == bool(args.trial_ids):
        raise CommandError(
            "name the trials to delete (daskperiment delete ID 3 4) or give --all to delete the "
            "whole experiment, not both" if args.all else
            "name the trials to delete, e.g. `daskperiment delete ID 3 4`, or give --all to "
            "delete the whole experiment",
            USAGE,
        )
    experiment = open_experiment(args.backend, args.experiment_id, args.artifacts)
    store = describe_store(store_location(args.backend))
    if args.all:
        count = len(experiment.backend.load_trials())
        what = f"experiment {experiment.id!r} of store {store}, its {count} trial(s) and all its records"
    else:
        ids = sorted(set(args.trial_ids))
        recorded = {t.trial_id for t in experiment.backend.load_trials(ids)}
        unknown = [t for t in ids if t not in recorded]
        if unknown:
            raise CommandError(
                f"experiment {experiment.id!r} has no trial {', '.join(map(str, unknown))} "
                f"(its trial ids go up to {experiment.backend.last_trial_id()}): nothing was deleted"
            )
        what = (
            f"trial{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))} of experiment "
            f"{experiment.id!r} ({store}) with their metrics, persisted values, artifacts, notes and tags"
        )
    _confirm(what, args.yes)
    if args.all:
        deleted = experiment.delete_experiment(files=not args.keep_files)
        print(f"deleted experiment {experiment.id!r} ({deleted} trial{'s' if deleted != 1 else ''})")
        return 0
    try:
        deleted_ids = experiment.delete_trials(ids, files=not args.keep_files)
    except TrialIDNotFoundError as exc:  # deleted by someone else meanwhile
        raise CommandError(str(exc)) from None
    print(f"deleted trial{'s' if len(deleted_ids) != 1 else ''} {', '.join(map(str, deleted_ids))}")
    return 0


def _confirm(what: str, given: bool) -> None:
    """Ask on the terminal to delete ``what``; raise unless the answer is yes (or ``given``)."""
    if given:
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise CommandError(
            f"not deleting {what}: there is no terminal to confirm on; add --yes to delete "
            "without confirmation",
            USAGE,
        )
    try:
        answer = input(f"Delete {what}? This cannot be undone. [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise CommandError("nothing was deleted", status=1)
