"""``daskperiment note ID TRIAL [TEXT]`` and ``daskperiment tag ID TRIAL [+TAG|-TAG ...]``."""

from __future__ import annotations

import argparse

from daskperiment.annotations import tags_text
from daskperiment.cli.errors import USAGE, CommandError
from daskperiment.cli.store import BACKEND_HELP, open_experiment
from daskperiment.errors import AnnotationError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``note`` and ``tag`` subcommands."""
    note = subparsers.add_parser(
        "note",
        help="show or set the note of a trial",
        description=(
            "Print the note of a trial, or set it to TEXT (an empty TEXT, \"\", clears it). "
            "Notes show in the history's Note column and in `daskperiment show`."
        ),
    )
    note.add_argument("experiment_id", metavar="ID", help="id of the experiment")
    note.add_argument("trial_id", metavar="TRIAL", type=int, help="id of the trial")
    note.add_argument("text", metavar="TEXT", nargs="?", help="the new note (\"\" clears it)")
    note.add_argument("--backend", default="local", help=BACKEND_HELP)
    note.set_defaults(command=run_note)

    tag = subparsers.add_parser(
        "tag",
        help="show, add or remove the tags of a trial",
        description=(
            "Print the tags of a trial, or change them: +NAME adds tag NAME, -NAME removes it "
            "(e.g. `daskperiment tag ID 3 +baseline -draft`); --add and --remove do the same "
            "for any name (--add=-x for a name starting with -). The tags are "
            "then printed, sorted."
        ),
    )
    tag.add_argument("experiment_id", metavar="ID", help="id of the experiment")
    tag.add_argument("trial_id", metavar="TRIAL", type=int, help="id of the trial")
    tag.add_argument("changes", metavar="+TAG|-TAG", nargs="*", help="tags to add (+) or remove (-)")
    tag.add_argument("--add", action="append", default=[], metavar="TAG", help="add TAG")
    tag.add_argument("--remove", action="append", default=[], metavar="TAG", help="remove TAG")
    tag.add_argument("--backend", default="local", help=BACKEND_HELP)
    tag.set_defaults(command=run_tag, takes_extra=True)


def run_note(args: argparse.Namespace) -> int:
    """Set the note of the trial if a text is given; print it."""
    experiment = open_experiment(args.backend, args.experiment_id)
    if args.text is not None:
        try:
            experiment.set_note(args.trial_id, args.text)
        except AnnotationError as exc:
            raise CommandError(str(exc), USAGE) from None
    print(experiment.get_note(args.trial_id))
    return 0


def run_tag(args: argparse.Namespace) -> int:
    """Add and remove the tags asked for; print the trial's tags."""
    added, removed = list(args.add), list(args.remove)
    for change in [*args.changes, *args.extra]:  # "-name" reaches here as an unknown option
        if len(change) < 2 or change[0] not in "+-":
            raise CommandError(
                f"{change!r} is neither +TAG (add) nor -TAG (remove); e.g. +baseline -draft, "
                "or --add TAG / --remove TAG",
                USAGE,
            )
        (added if change[0] == "+" else removed).append(change[1:])
    both = sorted(set(added) & set(removed))
    if both:
        raise CommandError(f"tag {both[0]!r} is both added and removed: say which", USAGE)
    experiment = open_experiment(args.backend, args.experiment_id)
    try:
        if added:
            experiment.add_tags(args.trial_id, *added)
        if removed:
            experiment.remove_tags(args.trial_id, *removed)
    except AnnotationError as exc:
        raise CommandError(str(exc), USAGE) from None
    print(tags_text(experiment.get_tags(args.trial_id)))
    return 0
