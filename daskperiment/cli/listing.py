"""``daskperiment list``: the experiments of a store."""

from __future__ import annotations

import argparse
from datetime import datetime

import pandas as pd

from daskperiment.backend import experiment_store, open_backend, store_location
from daskperiment.cli.output import add_output_arguments, iso_time, render
from daskperiment.cli.store import BACKEND_HELP, list_ids


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``list`` subcommand."""
    parser = subparsers.add_parser(
        "list",
        help="list the experiments of a store",
        description=(
            "List the experiments of a store with the id of their last trial and when it "
            "finished."
        ),
    )
    parser.add_argument("--backend", default="local", help=BACKEND_HELP)
    add_output_arguments(parser)
    parser.set_defaults(command=run)


def _summary(spec: str, experiment_id: str, fmt: str) -> tuple[int, datetime | str | None]:
    backend = open_backend(experiment_store(store_location(spec), experiment_id), experiment_id)
    try:
        last = backend.last_trial_id()
        records = backend.load_trials([last]) if last else []
    finally:
        backend.close()
    if not records:
        return last, None
    finished = datetime.fromtimestamp(records[0].finished)
    return last, finished.replace(microsecond=0) if fmt == "table" else iso_time(finished)


def run(args: argparse.Namespace) -> int:
    """Print the experiments of ``args.backend``."""
    ids = list_ids(args.backend)
    rows = [_summary(args.backend, experiment_id, args.format) for experiment_id in ids]
    frame = pd.DataFrame(
        {
            "Last Trial": [last for last, _ in rows],
            "Last Finished": [finished for _, finished in rows],
        },
        index=pd.Index(ids, name="Experiment", dtype=object),
    )
    print(render(frame, args.format, args.wide))
    return 0
