"""Checking the values of yes/no options given to the public API."""

from __future__ import annotations


def checked_flag(name: str, value: object, example: str = "") -> bool:
    """``value`` of option ``name`` once checked to be a bool.

    Raises
    ------
    TypeError
        When it is not ``True`` or ``False`` (``1`` and ``"yes"`` are not);
        ``example`` is added to the message.
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}{'; e.g. ' + example if example else ''}")
    return value
