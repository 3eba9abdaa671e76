"""``daskperiment history ID``: the trials of an experiment as a table, CSV or JSON."""

from __future__ import annotations

import argparse

import pandas as pd

from daskperiment.cli.output import add_output_arguments, iso_time, render
from daskperiment.cli.store import BACKEND_HELP, open_experiment
from daskperiment.history import PROCESS_TIME_LABEL, seconds_text
from daskperiment.status import FAILED, FINISHED


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``history`` subcommand."""
    parser = subparsers.add_parser(
        "history",
        help="show the trials of an experiment",
        description=(
            "Show the history of an experiment: one row per trial with its parameters, "
            "result, success, finish time, process time (seconds) and error description. "
            "csv and json give finish times in ISO 8601 with the UTC offset."
        ),
    )
    parser.add_argument("experiment_id", metavar="ID", help="id of the experiment")
    parser.add_argument("--backend", default="local", help=BACKEND_HELP)
    add_output_arguments(parser)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also show the result type and the seed"
    )
    parser.set_defaults(command=run)


def history_table(frame: pd.DataFrame, fmt: str) -> pd.DataFrame:
    """The history with times made plain: seconds, and ISO dates (rounded for a terminal).

    A table shows process times as the dashboard does (:data:`PROCESS_TIME_LABEL`), and
    ``Status`` only when it says more than ``Success`` (some trial running, killed or
    interrupted): a terminal is narrow. CSV and JSON have every column. Trials not
    ended (running, killed) have neither finish nor process time: ``NaT`` and ``-`` in
    a table, empty (CSV) or null (JSON) otherwise.
    """
    table = frame.copy()
    ended = table["Finished"].notna()
    if fmt == "table":
        if "Status" in table and set(table["Status"]) <= {FINISHED, FAILED}:
            table = table.drop(columns="Status")
        table["Finished"] = table["Finished"].dt.floor("s")
        table["Process Time"] = [
            seconds_text(s) if done else "-" for s, done in zip(table["Process Time"].dt.total_seconds(), ended)
        ]
        return table.rename(columns={"Process Time": PROCESS_TIME_LABEL})
    table["Finished"] = [iso_time(moment) if done else None for moment, done in zip(table["Finished"], ended)]
    table["Process Time"] = table["Process Time"].dt.total_seconds()
    return table


def run(args: argparse.Namespace) -> int:
    """Print the history of ``args.experiment_id``."""
    experiment = open_experiment(args.backend, args.experiment_id)
    frame = experiment.get_history(verbose=args.verbose)
    print(render(history_table(frame, args.format), args.format, args.wide))
    return 0
