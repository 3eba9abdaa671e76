"""The ``daskperiment`` command: run experiment scripts and read stores from a shell.

Subcommands: ``run``, ``sweep``, ``list``, ``history``, ``show``, ``diff``, ``artifacts``,
``cache``, ``board``, ``migrate``, ``note``, ``tag``, ``delete``, ``export``, ``import`` and
``copy``;
``daskperimentboard`` is ``daskperiment board``. Errors are one line on
stderr; the exit status is 0 on success, 1 when the command failed and 2 for
a usage error. Only ``run`` and ``sweep`` (which run your scripts) load
pickled values; the other commands show them as ``<pickled TYPE>``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from daskperiment import __version__
from daskperiment import serialization
from daskperiment.cli import (
    annotate, artifacts, board, cache, delete, diff, history, listing, migrate, run, show, sweep, transfer,
)
from daskperiment.cli.errors import CommandError
from daskperiment.errors import DaskperimentError

__all__ = ["board_main", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``daskperiment`` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="daskperiment",
        description="Run daskperiment experiment scripts and inspect recorded trials.",
        epilog="Run `daskperiment COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"daskperiment {__version__}")
    subparsers = parser.add_subparsers(metavar="COMMAND", required=True)
    for module in (run, sweep, listing, history, show, diff, artifacts, cache, board, migrate, annotate, delete,
                   transfer):
        module.add_parser(subparsers)
    return parser


def _execute(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra  # arguments argparse takes for unknown options: "-draft" of `tag`
    # A script run by `run` or `sweep` loads its own signed values; reading a store loads no pickle.
    runs_scripts = args.command in (run.run, sweep.sweep)
    try:
        with serialization.trusting(serialization.Trust.SIGNED if runs_scripts else serialization.Trust.NONE):
            return args.command(args)
    except CommandError as exc:
        _report(parser.prog, str(exc))
        return exc.status
    except DaskperimentError as exc:
        _report(parser.prog, str(exc))
        return 1
    except KeyboardInterrupt:  # e.g. Ctrl+C to stop the dashboard
        return 130
    except BrokenPipeError:  # the reader stopped early, e.g. `daskperiment history ID | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _report(program: str, message: str) -> None:
    sys.stderr.write(f"{program}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``daskperiment``; returns the exit status."""
    return _execute(build_parser(), argv)


def board_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``daskperimentboard ID``, the same as ``daskperiment board ID``."""
    parser = argparse.ArgumentParser(prog="daskperimentboard", description=board.DESCRIPTION)
    board.add_arguments(parser)
    return _execute(parser, argv)
