"""Turning Python values into bytes for storage, and back."""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle

PROTOCOL = 5


def dumps(value: Any) -> bytes:
    """Serialize ``value``; objects plain pickle refuses (lambdas, local classes) use cloudpickle.

    Raises
    ------
    TypeError
        When neither pickle nor cloudpickle can serialize the value.
    """
    try:
        return pickle.dumps(value, protocol=PROTOCOL)
    except Exception:
        try:
            return cloudpickle.dumps(value, protocol=PROTOCOL)
        except Exception as exc:
            raise TypeError(
                f"cannot serialize a value of type {type(value).__module__}."
                f"{type(value).__qualname__}: {type(exc).__name__}({exc})"
            ) from exc


def loads(payload: bytes) -> Any:
    """Deserialize bytes written by :func:`dumps`."""
    return pickle.loads(payload)


def type_name(value: Any) -> str:
    """Qualified name of the type of ``value``, e.g. ``numpy.ndarray`` or ``int``."""
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"
