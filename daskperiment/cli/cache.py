"""``daskperiment cache ID``: show, limit and clear an experiment's step cache."""

from __future__ import annotations

import argparse

from daskperiment.cli.errors import USAGE, CommandError
from daskperiment.cli.output import add_output_arguments, iso_time, render
from daskperiment.cli.store import ARTIFACTS_HELP, BACKEND_HELP, open_experiment


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``cache`` subcommand."""
    parser = subparsers.add_parser(
        "cache",
        help="show or clear the step cache of an experiment",
        description=(
            "Show the outputs of cached steps (@ex(cache=True)) an experiment keeps, with the "
            "trial that computed each, its size and when it was last used; set the cache's "
            "size limit, or clear it (all of it, or the outputs of some steps). Cleared steps "
            "are computed again by later trials; recorded trials are not changed."
        ),
    )
    parser.add_argument("experiment_id", metavar="ID", help="id of the experiment")
    parser.add_argument("--backend", default="local", help=BACKEND_HELP)
    parser.add_argument("--artifacts", help=ARTIFACTS_HELP)
    parser.add_argument(
        "--clear", nargs="*", metavar="STEP",
        help="remove the cached outputs of these steps (of every step when none is named)",
    )
    parser.add_argument(
        "--limit", metavar="SIZE",
        help="keep the cache under SIZE (e.g. 500MB, 2GiB), evicting the least recently used outputs",
    )
    add_output_arguments(parser)
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    """Clear or limit the cache as asked, then print what it holds."""
    experiment = open_experiment(args.backend, args.experiment_id, args.artifacts)
    if args.clear is not None:
        known = set(experiment.get_cache()["Step"])
        unknown = sorted(set(args.clear) - known)
        if unknown:
            raise CommandError(
                f"no cached output of step{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
                f"the cache holds {', '.join(sorted(known)) or 'nothing'}"
            )
        removed = experiment.clear_cache(args.clear or None)
        print(f"removed {removed} cached output{'s' if removed != 1 else ''}")
    if args.limit is not None:
        try:
            experiment.set_cache_limit(args.limit)
        except ValueError as exc:
            raise CommandError(str(exc), status=USAGE) from None
    frame = experiment.get_cache()
    limit = experiment.get_cache_limit()
    for column in ("Created", "Last Used"):  # dates in a table are never cut
        frame[column] = (
            frame[column].dt.floor("s") if args.format == "table" else [iso_time(t) for t in frame[column]]
        )
    print(render(frame, args.format, args.wide))
    if args.format == "table":
        print(f"total {frame['Size'].sum()} bytes in {len(frame)} outputs; limit {limit} bytes")
    return 0
