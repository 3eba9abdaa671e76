"""``daskperiment sweep SCRIPT lr=0.01,0.1 l2=0,0.1``: run a script whose result call runs a sweep.

The script runs as in script mode, but each call of its ``@ex.result`` step
runs :meth:`Experiment.sweep` over the grid of the values given, instead of
one trial, then prints the sweep's rows of the history. The arguments are
checked before the script runs, the parameter names when the result step is
called: a usage error records nothing.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from daskperiment.cli.axes import VALUE_FORMS, parse_axis_argument
from daskperiment.cli.output import render
from daskperiment.cli.errors import USAGE
from daskperiment.cli.run import run_script, script_path
from daskperiment.errors import SweepError
from daskperiment.script import (
    UsageError,
    check_parameters,
    parameter_lines,
    parse_seed,
    result_runner,
    usage_exit,
)

if TYPE_CHECKING:
    import pandas as pd

    from daskperiment.experiment import Experiment
    from daskperiment.trial import TrialResult

PROGRAM = "daskperiment sweep"
SYNOPSIS = (
    "%(prog)s SCRIPT [name=values ...] [--seed N] [--per-trial-seeds] [--max-in-flight K] "
    "[--scheduler {sync,threads,processes}] [--name NAME] [--progress] [--no-cache] [--backend BACKEND]"
)
DESCRIPTION = (
    "Run SCRIPT as in script mode, but each call of its @ex.result step runs a sweep: one trial "
    "per combination of the values given as name=values (the other parameters keep their "
    "defaults), computed as one dask graph; then print the sweep's rows of the history. "
    "Options may come before SCRIPT or among the name=values."
)


@dataclass
class SweepRequest:
    """What the command line of ``daskperiment sweep`` asks for."""

    axes: dict[str, list[Any]]
    """Values of each swept parameter."""
    options: dict[str, Any]
    """Keyword arguments of :meth:`Experiment.sweep` besides the grid."""
    backend: str | None = None
    help: bool = False


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` subcommand."""
    parser = subparsers.add_parser(
        "sweep",
        help="run an experiment script whose @ex.result call runs a sweep over a grid",
        usage=SYNOPSIS,
        description=DESCRIPTION,
        epilog=f"{VALUE_FORMS}\n\nexample: daskperiment sweep train.py lr=logspace(-4,-1,4) l2=0,0.1 --seed 1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_options(parser)
    parser.add_argument("script", metavar="SCRIPT", help="path of the experiment script")
    parser.add_argument(
        "arguments", metavar="name=values", nargs=argparse.REMAINDER,
        help="the values of each swept parameter (see below), and options",
    )
    parser.set_defaults(command=sweep)


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=_seed, metavar="N", help="seed of the trials (default: the experiment's, else generated and recorded)")
    parser.add_argument(
        "--per-trial-seeds", action="store_true", help="give each trial its own seed, derived from --seed"
    )
    parser.add_argument(
        "--max-in-flight", type=_positive, metavar="K", help="send at most K trials to the scheduler at once"
    )
    parser.add_argument(
        "--scheduler", choices=("sync", "threads", "processes"), help="dask scheduler (default: threads)"
    )
    parser.add_argument("--name", help="id of the sweep, in the history's Sweep column (default: generated)")
    parser.add_argument("--progress", action="store_true", help="show trials done / total on stderr")
    parser.add_argument(
        "--no-cache", dest="cache", action="store_false",
        help="compute cached steps (@ex(cache=True)) again instead of loading them from the step cache",
    )
    parser.add_argument(
        "--backend",
        help="store of the experiments the script creates without naming one: 'local' "
        "(./daskperiment_cache), a folder, or a server URI such as redis://localhost:6379/0 "
        "(default: $DASKPERIMENT_BACKEND, else local)",
    )


class _ArgumentsParser(argparse.ArgumentParser):
    """Parses the arguments after SCRIPT; errors are raised, not printed."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _arguments_parser() -> _ArgumentsParser:
    parser = _ArgumentsParser(
        prog=PROGRAM, usage=SYNOPSIS, description=DESCRIPTION, epilog=VALUE_FORMS, add_help=False,
        allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-h", "--help", action="store_true", help="list the parameters and value forms")
    _add_options(parser)
    parser.add_argument("assignments", metavar="name=values", nargs="*", help="values of a swept parameter")
    return parser


def _seed(text: str) -> int:
    try:
        return parse_seed(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer, e.g. 4")
    return value


def parse_request(args: argparse.Namespace) -> SweepRequest:
    """The sweep the command line asks for: options given before SCRIPT, then after it.

    Raises
    ------
    UsageError
        For a malformed option or value, or a parameter given twice.
    """
    parsed = _arguments_parser().parse_intermixed_args(list(args.arguments), argparse.Namespace(**vars(args)))
    axes: dict[str, list[Any]] = {}
    for arg in parsed.assignments:
        name, values = parse_axis_argument(arg)
        if name in axes:
            raise UsageError(f"parameter {name!r} is given twice: give its values once, e.g. {name}=1,2")
        axes[name] = values
    options = {
        "seed": parsed.seed, "per_trial_seeds": parsed.per_trial_seeds,
        "max_in_flight": parsed.max_in_flight, "scheduler": parsed.scheduler, "name": parsed.name,
        "progress": parsed.progress, "cache": parsed.cache,
    }
    return SweepRequest(axes, options, parsed.backend, parsed.help)


def sweep(args: argparse.Namespace) -> int:
    """Run ``args.script`` with its result calls running sweeps; 1 when a trial failed or it raised."""
    script = script_path(args.script)
    try:
        request = parse_request(args)
    except UsageError as exc:
        _usage_error(str(exc))
        return USAGE
    runner = _SweepRunner(request)
    with result_runner(runner):
        status = run_script(script, list(args.arguments), request.backend)
    if status == 0 and runner.failed:
        sys.stderr.write(
            f"{PROGRAM}: error: {runner.failed} of {runner.trials} trials failed "
            "(recorded with their errors, see the Description column)\n"
        )
        return 1
    return status


class _SweepRunner:
    """Runs a sweep where the script calls its result step; counts the trials and failures."""

    def __init__(self, request: SweepRequest) -> None:
        self.request = request
        self.trials = 0
        self.failed = 0

    def __call__(self, result: TrialResult, experiment: Experiment) -> pd.DataFrame:
        if self.request.help:
            sys.stdout.write(_help(experiment))
            raise SystemExit(0)
        try:
            check_parameters(experiment, result, self.request.axes)
            rows = experiment.sweep(result, grid=self.request.axes, **self.request.options)
        except (UsageError, SweepError) as exc:  # nothing ran
            raise _usage_error(str(exc)) from None
        self.trials += len(rows)
        self.failed += int((~rows["Success"]).sum())
        sys.stdout.write(render(rows, "table") + "\n")
        return rows


def _help(experiment: Experiment) -> str:
    usage, _, rest = _arguments_parser().format_help().partition("\n\n")
    return f"{usage}\n\n" + "\n".join(parameter_lines(experiment)) + f"\n\n{rest}"


def _usage_error(message: str) -> SystemExit:
    """Write the usage line and ``message`` on stderr; the SystemExit of a usage error."""
    return usage_exit(_arguments_parser().format_usage().rstrip("\n"), PROGRAM, message)

