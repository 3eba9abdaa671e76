"""``daskperiment migrate ID --trust-old-pickles``: re-encode what an earlier daskperiment pickled."""

from __future__ import annotations

import argparse

from daskperiment.cli.errors import USAGE, CommandError
from daskperiment.cli.store import BACKEND_HELP, open_store
from daskperiment.migration import migrate_store


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``migrate`` subcommand."""
    parser = subparsers.add_parser(
        "migrate",
        help="store an older store's pickled values as data or signed pickles",
        description=(
            "Stores written by an earlier daskperiment hold parameters, results, persisted and "
            "cached outputs as unsigned pickles, which are never loaded (they show as "
            "<unreadable …>). Loading a pickle runs whatever code it names, so only migrate a "
            "store whose writers you trust: each old value is loaded once and stored again as "
            "data, or pickled and signed with your key (DASKPERIMENT_SIGNING_KEY, else your "
            "per-user key). Batches an earlier version spooled for a server are re-sent."
        ),
    )
    parser.add_argument("experiment_id", metavar="ID", help="id of the experiment")
    parser.add_argument("--backend", default="local", help=BACKEND_HELP)
    parser.add_argument(
        "--trust-old-pickles", action="store_true",
        help="state that you trust every process that wrote this store (required)",
    )
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    """Migrate the store of ``args.experiment_id``; print what was done."""
    if not args.trust_old_pickles:
        raise CommandError(
            "migrating loads the old pickles of the store, which runs the code they name: if you "
            "trust every process that wrote it, run again with --trust-old-pickles",
            USAGE,
        )
    backend = open_store(args.backend, args.experiment_id)
    try:
        report = migrate_store(backend)
    finally:
        backend.close()
    print(
        f"re-encoded {report.trials} trials, {report.persisted} persisted values and "
        f"{report.cache_entries} cached outputs; re-sent {report.spooled} spooled batches; "
        f"removed {report.cache_entries_removed} cached outputs that could not be loaded"
    )
    for problem in report.unreadable:
        print(f"not migrated: {problem}")
    return 1 if report.unreadable else 0
