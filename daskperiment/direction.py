"""The objective direction of an experiment: whether lower or higher results are better.

It is stored with the experiment (a setting of its store), set with
:meth:`Experiment.set_direction`, ``daskperiment direction ID minimize|maximize``,
the dashboard, or by :meth:`Experiment.optimize` from its study; everything that
names a best trial reads it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from daskperiment.backend.base import Backend

Direction = Literal["minimize", "maximize"]
DIRECTIONS: tuple[Direction, ...] = ("minimize", "maximize")
DIRECTION_SETTING = "direction"
DEFAULT_DIRECTION: Direction = "minimize"
"""The direction assumed while none is stored."""


def validate_direction(direction: object) -> Direction:
    """Return ``direction`` if it is ``"minimize"`` or ``"maximize"``.

    Raises
    ------
    ValueError
        For any other value.
    """
    if direction not in DIRECTIONS:
        raise ValueError(
            f"invalid direction {direction!r}: use 'minimize' (lower results are better) or "
            "'maximize' (higher results are better)"
        )
    return "maximize" if direction == "maximize" else "minimize"


def save_direction(backend: Backend, direction: str) -> None:
    """Store the direction of the experiment's results (validated first).

    Raises
    ------
    ValueError
        For a direction other than ``"minimize"`` or ``"maximize"`` (nothing is stored).
    BackendError
        When the store cannot be written.
    """
    backend.save_setting(DIRECTION_SETTING, json.dumps(validate_direction(direction)))


def load_direction(backend: Backend) -> Direction | None:
    """The stored direction of the experiment's results, None when never set (or unreadable).

    Raises
    ------
    BackendError
        When the store cannot be read.
    """
    stored = backend.load_setting(DIRECTION_SETTING)
    if stored is None:
        return None
    try:
        return validate_direction(json.loads(stored))
    except ValueError:  # written by hand, or by something else: not a direction
        return None
