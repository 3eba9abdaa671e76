"""The error the command line reports as a message and an exit status, without traceback."""

from __future__ import annotations

FAILURE = 1
USAGE = 2


class CommandError(Exception):
    """A command cannot do what was asked; ``str(error)`` says why and how to fix it.

    Parameters
    ----------
    message : str
        What was wrong and how to fix it.
    status : int, default 1
        Exit status of the command (2 for a usage error).
    """

    def __init__(self, message: str, status: int = FAILURE) -> None:
        super().__init__(message)
        self.status = status
