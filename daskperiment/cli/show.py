"""``daskperiment show ID TRIAL``: everything recorded about one trial."""

from __future__ import annotations

import argparse
import math
import time
from datetime import datetime

import pandas as pd

from daskperiment.annotations import printable, tags_text
from daskperiment.cli.errors import USAGE, CommandError
from daskperiment.cli.follow import follow
from daskperiment.cli.output import iso_time
from daskperiment.cli.store import BACKEND_HELP, open_experiment
from daskperiment.errors import TrialIDNotFoundError
from daskperiment.experiment import Experiment
from daskperiment.history import PROCESS_TIME_LABEL, describe_cached, seconds_text
from daskperiment.records import Annotation, TrialRecord, TrialStart


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``show`` subcommand."""
    parser = subparsers.add_parser(
        "show",
        help="show one trial: parameters, result, seed, tags, note, metrics, code, environment",
        description=(
            "Show what was recorded about one trial: its outcome and seed, its tags and note, "
            "its parameters, a summary of its metrics, the code of its steps and its environment. "
            "A running trial shows its metric points so far; --follow prints its new points and "
            "its status until it ends."
        ),
    )
    parser.add_argument("experiment_id", metavar="ID", help="id of the experiment")
    parser.add_argument("trial_id", metavar="TRIAL", type=int, help="id of the trial")
    parser.add_argument("--backend", default="local", help=BACKEND_HELP)
    parser.add_argument(
        "-f", "--follow", action="store_true",
        help="print the trial's metric points (key, epoch, value) as they are recorded and its "
        "status, until it ends; the exit status is 0 when it finished, 1 otherwise",
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS",
        help="with --follow, seconds between two reads of the store (default: 1)",
    )
    parser.set_defaults(command=run)


def _aligned(pairs: list[tuple[str, object]]) -> list[str]:
    width = max(len(label) for label, _ in pairs) + 1
    return [f"{label + ':':<{width}} {value}" for label, value in pairs]


def trial_lines(record: TrialRecord, experiment_id: str, annotation: Annotation | None = None) -> list[str]:
    """Outcome of the trial: success, result, seed, times, error; its tags and note."""
    annotation = annotation or Annotation(record.trial_id)
    note, *more = printable(annotation.note).split("\n") if annotation.note else ["-"]
    lines = _aligned(
        [
            ("Experiment", experiment_id),
            ("Trial", record.trial_id),
            ("Success", record.success),
            ("Status", record.status),
            ("Result", repr(record.result) if record.success else "-"),
            ("Result Type", record.result_type or "-"),
            ("Seed", record.seed),
            ("Finished", iso_time(datetime.fromtimestamp(record.finished))),
            (PROCESS_TIME_LABEL, seconds_text(record.process_time)),
            ("Description", record.description or "-"),
            ("Cached Steps", describe_cached(record.cached_steps) or "-"),
            ("Tags", printable(tags_text(annotation.tags)) or "-"),
            ("Note", note),
        ]
    )
    indent = " " * (len(lines[-1]) - len(note))
    return lines + [indent + line for line in more]


def start_lines(trial_id: int, start: TrialStart, experiment_id: str) -> list[str]:
    """A trial not recorded yet: running, or killed when its heartbeat is stale."""
    return _aligned(
        [
            ("Experiment", experiment_id),
            ("Trial", trial_id),
            ("Status", start.status(time.time())),
            ("Seed", start.seed),
            ("Started", iso_time(datetime.fromtimestamp(start.started))),
            ("Heartbeat", iso_time(datetime.fromtimestamp(start.heartbeat))),
            ("Process", start.process),
            ("Sweep", start.sweep_id or "-"),
        ]
    )


def parameter_lines(parameters: dict[str, object]) -> list[str]:
    """``name = value`` lines (values as Python literals)."""
    return [f"{name} = {value!r}" for name, value in parameters.items()] or ["(none)"]


def metric_lines(experiment: Experiment, trial_id: int) -> list[str]:
    """One row per metric the trial saved: epochs, first, last, min and max values."""
    rows = {}
    for key in experiment.backend.metric_keys():
        try:
            values = experiment.load_metric(key, trial_id)[trial_id]
        except TrialIDNotFoundError:  # the trial (shown already) saved no value of this metric
            continue
        if len(values):
            rows[key] = {
                "Epochs": len(values),
                "First": values.iloc[0],
                "Last": values.iloc[-1],
                "Min": values.min(),
                "Max": values.max(),
            }
    if not rows:
        return ["(none)"]
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "Metric"
    return frame.to_string().splitlines()


def environment_lines(experiment: Experiment, trial_id: int) -> list[str]:
    """Summary of the environment the trial ran in."""
    try:
        return experiment.get_environment(trial_id).splitlines()
    except TrialIDNotFoundError:
        return ["(not captured)"]


def run(args: argparse.Namespace) -> int:
    """Print the record of trial ``args.trial_id``, or follow it (``--follow``)."""
    if not (math.isfinite(args.interval) and args.interval > 0):
        raise CommandError(f"--interval must be a positive number of seconds, e.g. 0.5; got {args.interval}", USAGE)
    experiment = open_experiment(args.backend, args.experiment_id)
    if args.follow:
        return follow(experiment.backend, args.trial_id, args.interval, lambda line: print(line, flush=True))
    records = experiment.backend.load_trials([args.trial_id])
    start = None if records else experiment.backend.load_starts([args.trial_id]).get(args.trial_id)
    if not records and start is None:
        records = experiment.backend.load_trials([args.trial_id])  # it ended meanwhile
    parameters = experiment.get_parameters(args.trial_id)  # an unknown trial fails here
    if records:
        annotation = experiment.backend.load_annotations([args.trial_id]).get(args.trial_id)
        sections = {
            "trial": trial_lines(records[0], experiment.id, annotation),
            "parameters": parameter_lines(parameters),
            "metrics": metric_lines(experiment, args.trial_id),
            "code": experiment.get_code(args.trial_id).rstrip("\n").splitlines(),
            "environment": environment_lines(experiment, args.trial_id),
        }
    else:  # started, not recorded: its code and environment come with its record
        sections = {
            "trial": start_lines(args.trial_id, start, experiment.id),  # type: ignore[arg-type]
            "parameters": parameter_lines(parameters),
            "metrics": metric_lines(experiment, args.trial_id),
        }
    for name, lines in sections.items():
        print(f"[{name}]")
        print("\n".join(lines))
    return 0
