"""``daskperiment direction ID [minimize|maximize]``: show or store whether lower or higher results are better."""

from __future__ import annotations

import argparse

from daskperiment.cli.store import BACKEND_HELP, open_store
from daskperiment.direction import DEFAULT_DIRECTION, DIRECTIONS, load_direction, save_direction

_MEANING = {"minimize": "lower results are better", "maximize": "higher results are better"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``direction`` subcommand."""
    parser = subparsers.add_parser(
        "direction",
        help="show or set whether lower or higher results are better",
        description=(
            "Show the objective direction stored with an experiment, or store it: 'minimize' when "
            "lower results are better (a loss), 'maximize' when higher ones are (an accuracy). The "
            "dashboard's best trial and later searches (ex.optimize) follow it."
        ),
    )
    parser.add_argument("experiment_id", metavar="ID", help="id of the experiment")
    parser.add_argument("direction", nargs="?", choices=DIRECTIONS, help="the direction to store")
    parser.add_argument("--backend", default="local", help=BACKEND_HELP)
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    """Store ``args.direction`` if given, then print the experiment's direction."""
    backend = open_store(args.backend, args.experiment_id)
    try:
        if args.direction is not None:
            save_direction(backend, args.direction)
        direction = load_direction(backend)
    finally:
        backend.close()
    if direction is None:
        print(f"not set: {DEFAULT_DIRECTION} is assumed ({_MEANING[DEFAULT_DIRECTION]})")
    else:
        print(f"{direction} ({_MEANING[direction]})")
    return 0
