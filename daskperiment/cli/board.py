"""``daskperiment board ID`` (and ``daskperimentboard ID``): start the dashboard."""

from __future__ import annotations

import argparse

from daskperiment.cli.errors import USAGE, CommandError
from daskperiment.cli.store import ARTIFACTS_HELP, BACKEND_HELP, open_store

DESCRIPTION = (
    "Start the web dashboard of an experiment (history, metrics, code, environment and files of "
    "its trials) and serve it until interrupted with Ctrl+C."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of the dashboard command to ``parser``."""
    parser.add_argument("experiment_id", metavar="ID", help="id of the experiment")
    parser.add_argument("--backend", default="local", help=BACKEND_HELP)
    parser.add_argument("--artifacts", help=ARTIFACTS_HELP)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5006, help="port to listen on (default: 5006; 0 picks a free one)")
    parser.add_argument("--show", action="store_true", help="open the dashboard in a web browser")
    parser.set_defaults(command=run)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``board`` subcommand."""
    parser = subparsers.add_parser("board", help="start the dashboard", description=DESCRIPTION)
    add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Serve the dashboard of ``args.experiment_id`` (blocks)."""
    if not 0 <= args.port < 65536:
        raise CommandError(f"invalid port {args.port}: use a number from 0 (any free one) to 65535", USAGE)
    backend = open_store(args.backend, args.experiment_id)
    try:
        from daskperiment.board import BoardServer
    except ImportError as exc:
        raise CommandError(
            f"the dashboard is not available ({exc}); install its dependencies with "
            "pip install 'daskperiment[board]'"
        ) from None
    board = BoardServer(args.experiment_id, backend, args.host, args.port, args.artifacts)
    board.when_ready(
        lambda: print(f"dashboard of {args.experiment_id!r} at {board.url} (Ctrl+C stops it)", flush=True)
    )
    if args.show:
        board.when_ready(board.show)
    board.run()
    return 0
