"""The code of trials as plain ``.py`` files, for diff tools and Git.

A folder ``code/`` holds one file per distinct code text,
``code/versions/<digest>.py``, written once. A trial's own file,
``code/<experiment id>_<trial id>.py`` (daskperiment 0.5's name), is made on
request (:meth:`Experiment.code_file`): a hard link to its version's file, or a
copy where links cannot be made (a file system without them, or one whose
limit of links per file is reached). Recording a trial therefore writes no
file per trial: the store's own record of the trial's code digest is the
index from trials to versions.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

VERSIONS = "versions"
"""Subfolder of the code folder holding one file per code version."""


def version_path(folder: Path, digest: str) -> Path:
    """Where the code text of ``digest`` is kept below the code ``folder``."""
    return folder / VERSIONS / f"{digest}.py"


def write_version(folder: Path, digest: str, content: bytes) -> Path:
    """Write the code text ``content`` of ``digest`` as its version file, unless it exists; return it."""
    path = version_path(folder, digest)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, content)
    return path


def trial_code_file(folder: Path, experiment_id: str, trial_id: int, digest: str, content: bytes) -> Path:
    """Make ``<folder>/<experiment id>_<trial id>.py``, the code of a trial; return its path.

    It is a hard link to the version file of ``digest`` (written if missing),
    or a copy of it where no link can be made. A file already there is
    replaced, so the file always holds the trial's recorded code.
    """
    version = write_version(folder, digest, content)
    target = folder / f"{experiment_id}_{trial_id}.py"
    partial = _partial_name(target)
    partial.unlink(missing_ok=True)  # left by a process killed here
    try:
        os.link(version, partial)
    except OSError as exc:  # no hard links here, or too many links (EMLINK): a copy
        logger.debug("code file %s copied instead of linked: %s", target, exc)
        partial.write_bytes(content)
    os.replace(partial, target)
    return target


def write_atomically(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` so that readers see the old file or the whole new one."""
    partial = _partial_name(path)
    partial.write_bytes(content)
    os.replace(partial, path)


def _partial_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
