"""``daskperiment export``, ``import`` and ``copy``: move an experiment between files and stores."""

from __future__ import annotations

import argparse

from daskperiment.backend import describe_store, store_location
from daskperiment.cli.store import ARTIFACTS_HELP, BACKEND_HELP, open_store
from daskperiment.transfer import TransferReport, copy_experiment, export_experiment, import_experiment

TARGET_HELP = "store to write into: 'local' (default), a folder, or a server URI such as redis://localhost:6379/0"
REPLACE_HELP = (
    "replace what the target experiment holds, all at once (cut short, it keeps its old records); "
    "refused while one of its trials runs"
)
SIGNED_NOTE = (
    "{count} value(s) are pickles signed with the exporting user's key: they load only where "
    "DASKPERIMENT_SIGNING_KEY is that key (plain values load anywhere)"
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export``, ``import`` and ``copy`` subcommands."""
    export = subparsers.add_parser(
        "export",
        help="write an experiment with everything it holds to one file",
        description=(
            "Write an experiment to FILE (a ZIP archive of JSON Lines and the stored bytes): its "
            "trials (running and killed ones too, with the points they wrote), metrics, persisted "
            "values, code, environments, step output hashes, artifact records and files, notes, "
            "tags and settings; with --cache its step cache too. Values are copied as "
            "stored: no pickle is loaded, signed pickles keep their signatures."
        ),
    )
    export.add_argument("experiment_id", metavar="ID", help="id of the experiment")
    export.add_argument("file", metavar="FILE", help="the file to write (e.g. experiment.zip)")
    export.add_argument("--backend", default="local", help=BACKEND_HELP)
    export.add_argument("--artifacts", help=ARTIFACTS_HELP)
    _content_arguments(export)
    export.set_defaults(command=run_export)

    imported = subparsers.add_parser(
        "import",
        help="import an exported experiment into a store",
        description=(
            "Import the experiment of FILE (written by `daskperiment export`) into a store, with "
            "the same trial ids, all at once: an import cut short leaves the target as it was. A "
            "target experiment holding records is refused unless --replace: then its records give "
            "way to the imported ones in the same atomic step (cut short, it keeps them all), and "
            "its files the imported records do not use are removed after. A target with a trial "
            "still running is not replaced."
        ),
    )
    imported.add_argument("file", metavar="FILE", help="the export file")
    imported.add_argument("--to", default="local", help=TARGET_HELP)
    imported.add_argument("--as", dest="new_id", metavar="NEWID", help="import under this id (default: the exported one)")
    imported.add_argument("--artifacts", help="where the artifact files go (default: the experiment's default location)")
    imported.add_argument("--replace", action="store_true", help=REPLACE_HELP)
    imported.set_defaults(command=run_import)

    copy = subparsers.add_parser(
        "copy",
        help="copy an experiment from one store to another",
        description=(
            "Copy an experiment with everything it holds (as `export` then `import` would, "
            "without a file), e.g. `daskperiment copy ID --from local --to redis://host:6379/0`."
        ),
    )
    copy.add_argument("experiment_id", metavar="ID", help="id of the experiment")
    copy.add_argument("--from", dest="source", default="local", help="store to copy from (default: local)")
    copy.add_argument("--to", dest="target", required=True, help=TARGET_HELP)
    copy.add_argument("--as", dest="new_id", metavar="NEWID", help="id of the copy (default: the same)")
    copy.add_argument("--from-artifacts", help="artifact location of the source (default: its default one)")
    copy.add_argument("--to-artifacts", help="artifact location of the copy (default: its default one)")
    copy.add_argument("--replace", action="store_true", help=REPLACE_HELP)
    _content_arguments(copy)
    copy.set_defaults(command=run_copy)


def _content_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache", action="store_true", help="also move the step cache")
    parser.add_argument(
        "--without-files", action="store_true", help="leave the artifact files out (their records move)"
    )


def run_export(args: argparse.Namespace) -> int:
    """Export the experiment; print what the file holds."""
    store = open_store(args.backend, args.experiment_id)
    manifest = export_experiment(
        args.experiment_id, args.file, backend=store, artifacts=args.artifacts, cache=args.cache,
        files=not args.without_files,
    )
    print(
        f"exported experiment {args.experiment_id!r} to {args.file}: {manifest['trials']} trials"
        f"{_started(manifest['starts'])}, "
        f"{manifest['metric_points']} metric points, {manifest['persisted']} persisted values, "
        f"{manifest['artifact_files']} artifact files, {manifest['annotations']} notes and tags, "
        f"{manifest['cache_entries']} cache entries"
    )
    if manifest["signed_pickles"]:
        print(SIGNED_NOTE.format(count=manifest["signed_pickles"]))
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Import the file; print what was written."""
    report = import_experiment(
        args.file, backend=store_location(args.to), experiment_id=args.new_id, artifacts=args.artifacts,
        replace=args.replace,
    )
    print(f"imported {_summary(report)} into {describe_store(store_location(args.to))}")
    return 0


def run_copy(args: argparse.Namespace) -> int:
    """Copy the experiment; print what was written."""
    report = copy_experiment(
        args.experiment_id, open_store(args.source, args.experiment_id), store_location(args.target),
        new_id=args.new_id,
        source_artifacts=args.from_artifacts, target_artifacts=args.to_artifacts, cache=args.cache,
        files=not args.without_files, replace=args.replace,
    )
    print(f"copied {_summary(report)} to {describe_store(store_location(args.target))}")
    return 0


def _summary(report: TransferReport) -> str:
    return (
        f"experiment {report.experiment_id!r}: {report.trials} trials{_started(report.started)}, "
        f"{report.metric_points} metric "
        f"points, {report.persisted} persisted values, {report.artifact_files} artifact files, "
        f"{report.annotations} notes and tags, {report.cache_entries} cache entries"
    )


def _started(count: int) -> str:
    return f" (and {count} running or killed)" if count else ""
