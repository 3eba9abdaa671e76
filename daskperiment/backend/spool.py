"""The local spool: batches a server could not take, kept on disk until they are re-sent.

Each batch is one file ``<token>.batch`` (the token and batch, pickled and
signed: :func:`daskperiment.serialization.signed_pickle`), written to a
temporary name (mode 0600, in a folder of mode 0700) and renamed, so a
reader never sees half a file, and a file that does not verify with this
process's key is never loaded.
Tokens begin with a nanosecond timestamp: sorted file names are the order
the batches were written in. A batch spooled by an earlier daskperiment reads
with the defaults of the record fields added since.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from daskperiment import serialization
from daskperiment.errors import BackendError
from daskperiment.records import RecordBatch

logger = logging.getLogger(__name__)

SPOOL_FORMAT = 1
SUFFIX = ".batch"


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """A batch read back from the spool, with the token it was first sent with."""

    path: Path
    token: str
    batch: RecordBatch


class Spool:
    """The folder holding the unsent batches of one experiment for one server.

    Parameters
    ----------
    directory : pathlib.Path
        Folder of the spool files, created when the first batch is kept.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def put(self, token: str, batch: RecordBatch) -> Path:
        """Keep ``batch`` (sent with ``token``) on disk; return the file it is in.

        Raises
        ------
        BackendError
            When the file cannot be written either.
        """
        target = self.directory / f"{token}{SUFFIX}"
        partial = self.directory / f".{token}.{os.getpid()}.{threading.get_ident()}.tmp"
        payload = serialization.signed_pickle({"format": SPOOL_FORMAT, "token": token, "batch": batch})
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(payload)
            os.replace(partial, target)
        except OSError as exc:
            raise BackendError(
                f"the batch could not be kept in the local spool {self.directory} either: {exc}"
            ) from exc
        return target

    def pending(self) -> list[SpooledBatch]:
        """Batches waiting to be re-sent, oldest first (unreadable files left, with a WARNING)."""
        if not self.directory.is_dir():
            return []
        batches = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                content = serialization.load_value(path.read_bytes())
                if content["format"] > SPOOL_FORMAT:
                    raise ValueError("written by a newer daskperiment; upgrade to re-send it")
                batch = _with_defaults(content["batch"])
                for trial in batch.trials:
                    _with_defaults(trial)
                batches.append(SpooledBatch(path, content["token"], batch))
            except FileNotFoundError:  # another process re-sent it meanwhile
                continue
            except Exception as exc:
                logger.warning(
                    "spooled batch %s cannot be read and is left in place: %s", path, exc
                )
        return batches

    def remove(self, spooled: SpooledBatch) -> None:
        """Forget a batch that was re-sent."""
        spooled.path.unlink(missing_ok=True)


def _with_defaults(record: Any) -> Any:
    """``record`` (a dataclass) with the fields its pickle lacked set to their defaults.

    Unpickling a slotted dataclass pickled before a field was added leaves
    that field unset; once they are set, the record's ``__post_init__`` (if
    any) derives what follows from them (a trial's status from its success).
    """
    missing = [field for field in fields(record) if not hasattr(record, field.name)]
    for field in missing:
        default = field.default if field.default_factory is MISSING else field.default_factory()
        object.__setattr__(record, field.name, default)
    if missing and hasattr(record, "__post_init__"):
        record.__post_init__()
    return record
