"""``daskperiment diff ID A B``: how two trials differ, as unified diffs."""

from __future__ import annotations

import argparse

from daskperiment.cli.show import parameter_lines
from daskperiment.cli.store import BACKEND_HELP, open_experiment
from daskperiment.codecontext import code_diff
from daskperiment.collector import diff_environments
from daskperiment.errors import TrialIDNotFoundError
from daskperiment.experiment import Experiment

IDENTICAL = "(identical)"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``diff`` subcommand."""
    parser = subparsers.add_parser(
        "diff",
        help="compare two trials: parameters, code and environment",
        description=(
            "Show how trial B differs from trial A: the parameters, the code of the steps "
            "and the environment, each as a unified diff (or '(identical)')."
        ),
    )
    parser.add_argument("experiment_id", metavar="ID", help="id of the experiment")
    parser.add_argument("trial_a", metavar="TRIAL_A", type=int, help="id of the first trial")
    parser.add_argument("trial_b", metavar="TRIAL_B", type=int, help="id of the second trial")
    parser.add_argument("--backend", default="local", help=BACKEND_HELP)
    parser.set_defaults(command=run)


def _text(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def _environment(experiment: Experiment, trial_id: int) -> dict:
    try:
        return experiment._environment(trial_id)
    except TrialIDNotFoundError:
        return {}  # not captured: every line shows as added or removed


def trial_diffs(experiment: Experiment, a: int, b: int) -> dict[str, str]:
    """Unified diffs of the parameters, code and environment of trials ``a`` and ``b``."""
    label_a, label_b = f"trial {a}", f"trial {b}"
    return {
        "parameters": code_diff(
            _text(parameter_lines(experiment.get_parameters(a))),
            _text(parameter_lines(experiment.get_parameters(b))),
            label_a,
            label_b,
        ),
        "code": code_diff(experiment.get_code(a), experiment.get_code(b), label_a, label_b),
        "environment": diff_environments(
            _environment(experiment, a),
            _environment(experiment, b),
            old_label=label_a,
            new_label=label_b,
        ),
    }


def run(args: argparse.Namespace) -> int:
    """Print the differences of trials ``args.trial_a`` and ``args.trial_b``."""
    experiment = open_experiment(args.backend, args.experiment_id)
    for name, diff in trial_diffs(experiment, args.trial_a, args.trial_b).items():
        print(f"[{name}]")
        print(diff.rstrip("\n") if diff else IDENTICAL)
    return 0
