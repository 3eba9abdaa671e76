"""Checking a metric point when it is saved: only what every store can hold gets through.

SQLite, Redis (packed chunks) and MongoDB (BSON) hold epochs as 64-bit
integers, values as double floats (NaN and infinities included: integers are
exact up to 2**53) and keys as UTF-8 text. A point outside those is refused at
``ex.save_metric``, where the step can still handle the error, instead of
failing the whole trial (or coming back changed) when it is written.

A point is kept with the time it was saved (:data:`clock`): stores hold it as
a double float of POSIX seconds, NaN (None in a
:class:`~daskperiment.records.MetricPoint`) for points stored before times were.
"""

from __future__ import annotations

import numbers
import time

from daskperiment.errors import MetricError

clock = time.time
"""The clock a point's time is read from when it is saved: POSIX time (UTC seconds), a float."""

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
EXACT_INTEGER_LIMIT = 2**53
"""Largest magnitude of an integer value a double float holds exactly."""


MAX_KNOWN_KEYS = 4096
"""Printable ASCII keys remembered as such (a metric key is checked once, not at every point)."""
_known_keys: set[str] = set()


def is_plain(key: object, epoch: object, value: object) -> bool:
    """Whether a point is trivially storable: a float value, an int64 epoch and a printable ASCII key.

    The fast path of ``save_metric``; any other point goes through :func:`checked_point`.
    """
    return (
        type(value) is float
        and type(epoch) is int
        and -0x8000_0000_0000_0000 <= epoch <= 0x7FFF_FFFF_FFFF_FFFF  # INT64_MIN, INT64_MAX as constants
        and type(key) is str
        and (key in _known_keys or _is_plain_key(key))
    )


def _is_plain_key(key: str) -> bool:
    """Whether ``key`` is non-empty printable ASCII (remembered when it is, up to MAX_KNOWN_KEYS keys)."""
    if key.isascii() and key.isprintable() and key != "":
        if len(_known_keys) < MAX_KNOWN_KEYS:
            _known_keys.add(key)
        return True
    return False


def checked_point(key: object, epoch: object, value: object) -> tuple[str, int, int | float]:
    """The point as stored: ``(key, int epoch, int or float value)``.

    Raises
    ------
    MetricError
        For a key that is not a non-empty str of UTF-8-encodable text without
        NUL, an epoch that is not an integer within 64 bits, or a value that is
        not a real number (an integer of at most 2**53 in magnitude, or a
        number a float holds).
    """
    if not isinstance(key, str) or not key:
        raise MetricError(
            f"Metric name must be a non-empty str: invalid metric key {key!r}; use e.g. 'loss'"
        )
    _check_text(key)
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral):
        raise MetricError(f"invalid epoch {epoch!r} for metric {key!r}: use an integer")
    if not INT64_MIN <= int(epoch) <= INT64_MAX:
        raise MetricError(
            f"invalid epoch {epoch!r} for metric {key!r}: epochs are stored as 64-bit integers "
            f"(from {INT64_MIN} to {INT64_MAX})"
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise MetricError(
            f"invalid value {value!r} for metric {key!r}: use a real number (int, float, numpy scalar)"
        )
    if isinstance(value, numbers.Integral):
        if abs(int(value)) > EXACT_INTEGER_LIMIT:
            raise MetricError(
                f"invalid value {value!r} for metric {key!r}: integer values are stored exactly "
                f"up to 2**53 ({EXACT_INTEGER_LIMIT}) in magnitude; save float(value) for a "
                "larger number"
            )
        return key, int(epoch), int(value)
    try:
        return key, int(epoch), float(value)
    except (OverflowError, ValueError, TypeError) as exc:
        raise MetricError(
            f"invalid value {value!r} for metric {key!r}: it does not convert to a float ({exc})"
        ) from None


def _check_text(key: str) -> None:
    if "\0" in key:
        raise MetricError(f"invalid metric key {key!r}: it holds a NUL character; remove it")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MetricError(
            f"invalid metric key {key!r}: it holds a lone surrogate ({key[exc.start]!r}) that "
            "cannot be stored as UTF-8 text; decode the name properly (e.g. errors='replace')"
        ) from None
