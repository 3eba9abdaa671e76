"""Content hashes of step calls: plain values hashed as they are, other values by dask's ``tokenize``.

Hashing a call's inputs is on the path of every trial; a parameter value that
is a plain number or string needs no normalization, so it is hashed from its
``repr`` (exact for these types), and only other objects go through
:func:`dask.base.tokenize`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from dask.base import tokenize

_PLAIN_TYPES = frozenset({int, float, complex, str, bytes, bool, type(None)})
_SEPARATOR = "\x1f"  # never in a token: reprs escape it, tokenize gives hex


def value_token(value: Any, deterministic: bool = True) -> str:
    """A token of ``value``, equal for equal values of the same type.

    Raises
    ------
    ValueError
        When ``deterministic`` and dask can hash the value only per process.
    """
    if type(value) in _PLAIN_TYPES:
        return f"{type(value).__name__}:{value!r}"
    return tokenize(value, ensure_deterministic=deterministic)


def combine(parts: Iterable[str]) -> str:
    """One hash of ``parts`` (tokens, keys), in order."""
    return hashlib.blake2b(_SEPARATOR.join(parts).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
