"""Turning Python values into stored data, and back, without ever running code from a store.

Plain data is stored as data, readable from any language and by no code:
``None``, ``bool``, ``int`` (any size), ``float`` (NaN and infinities too),
``str``, ``bytes``, ``datetime.datetime`` (naive or UTC), ``datetime.date``,
lists, tuples and dicts of those (any keys), numpy scalars and numpy arrays
of a dtype without objects. Its form is a JSON tree: JSON's own values, and
one-key objects tagged ``"@…"`` for what JSON lacks::

    {"@tuple": [1, 2]}   {"@int": "0x1fffffffffffffffff"}   {"@float": "nan"}
    {"@bytes": BASE64}   {"@datetime": "2024-01-02T03:04:05"}   {"@date": "2024-01-02"}
    {"@numpy": "float32", "value": 0.5}   {"@numpy": "<c16", "npy": BASE64}
    {"@ndarray": BASE64 of the .npy file}   {"@dict": [[key, value], ...]}

(a dict whose keys are not all strings, or has an empty key or one starting
with ``@`` or ``$``, is stored as ``@dict`` pairs). Any other value — a DataFrame, a model, an
instance of your class — is pickled (cloudpickle when pickle refuses it) and
signed with HMAC-SHA256 (see :mod:`daskperiment.signing`)::

    {"@pickle": BASE64, "type": "pandas.DataFrame", "hmac": HEX}

A pickle is loaded only when its signature verifies with this process's key
and the reading context trusts signed pickles (:func:`trusting`); otherwise it
reads as an :class:`UnreadableValue` naming its type and why. Pickles of
stores written before values were signed read through an unpickler that
imports and calls nothing but a few plain types (:data:`OLD_PICKLE_TYPES`);
anything else in them is an :class:`UnreadableValue` until the store is
migrated (``daskperiment migrate``).

Values stored as bytes of their own (persisted outputs, cached outputs, spool
files) are :func:`dumps`: ``DPK1`` followed by ``J`` and the JSON text, ``N``
and a ``.npy`` file (a top-level array), or ``P``, the 32-byte signature, the
type name (2-byte length first) and the pickle.
"""

from __future__ import annotations

import base64
import contextvars
import datetime
import enum
import io
import json
import math
import pickle
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import cloudpickle

from daskperiment import signing
from daskperiment.errors import SigningKeyError, UnreadableValueError

PROTOCOL = 5
MAGIC = b"DPK1"
_DATA, _NUMPY, _PICKLE = b"J", b"N", b"P"
_HEADER = len(MAGIC) + 1
_TAG = "@"
_ESCAPED = "@$"  # dicts with keys starting so are stored as pairs (MongoDB refuses "$" keys); so is ""
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MAX_TYPE_NAME = 1000
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})
_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
_DECODER = json.JSONDecoder()
_OLD_PICKLE = b"\x80"  # the PROTO opcode every pickle of protocol 2 or later starts with

OLD_PICKLE_TYPES = frozenset(
    {
        ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"),
        ("builtins", "bytearray"), ("datetime", "datetime"), ("datetime", "date"),
        ("datetime", "time"), ("datetime", "timedelta"), ("datetime", "timezone"),
        ("numpy", "dtype"), ("numpy", "ndarray"),
        *((f"numpy.{core}.multiarray", name) for core in ("core", "_core") for name in ("scalar", "_reconstruct")),
        *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
    }
)
"""Globals a pickle of an older store may use and still be read without migration (all plain data)."""

WRONG_KEY = (
    "signed with another key. Set DASKPERIMENT_SIGNING_KEY (or DASKPERIMENT_SIGNING_KEY_FILE) "
    "to the key of the process that wrote it"
)
UNSIGNED = "a pickle without a valid signature, never loaded: it was not written by daskperiment, or was altered"
OLD_UNSIGNED = (
    "an unsigned pickle written by an earlier daskperiment, not loaded. If you trust this store, "
    "run `daskperiment migrate ID --backend STORE --trust-old-pickles` to sign its values"
)


class Trust(enum.Enum):
    """Which pickles a read may load (see :func:`trusting`)."""

    NONE = "none"
    """No pickle at all: pickled values read as ``<pickled TYPE>`` (the CLI and the dashboard)."""
    SIGNED = "signed"
    """Pickles signed with this process's key (the default)."""
    OLD_PICKLES = "old pickles"
    """Also the unsigned pickles of stores written by an earlier daskperiment (``daskperiment migrate``)."""


_TRUST: contextvars.ContextVar[Trust] = contextvars.ContextVar("daskperiment_trust", default=Trust.SIGNED)


@contextmanager
def trusting(trust: Trust) -> Iterator[None]:
    """Read values with ``trust`` in this thread (or task) until the block ends."""
    token = _TRUST.set(trust)
    try:
        yield
    finally:
        _TRUST.reset(token)


class UnreadableValue:
    """A stored value this process cannot (or may not) load, shown in its place.

    Parameters
    ----------
    type_name : str
        Qualified name of the stored value's type, e.g. ``pandas.DataFrame``.
    reason : str or None
        Why it cannot be loaded, and how to fix it; None for a signed pickle a
        reader that loads no pickles (the CLI, the dashboard) shows as ``<pickled TYPE>``.
    """

    __slots__ = ("type_name", "reason")

    def __init__(self, type_name: str, reason: str | None) -> None:
        self.type_name = type_name
        self.reason = reason

    def __repr__(self) -> str:
        if self.reason is None:
            return f"<pickled {self.type_name}>"
        return f"<unreadable {self.type_name}: {self.reason}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UnreadableValue):
            return NotImplemented
        return (self.type_name, self.reason) == (other.type_name, other.reason)

    def __hash__(self) -> int:
        return hash((self.type_name, self.reason))

    def __getstate__(self) -> tuple[str, str | None]:
        return self.type_name, self.reason

    def __setstate__(self, state: tuple[str, str | None]) -> None:
        self.type_name, self.reason = state


class StoredData:
    """A value kept as the data tree its store holds, never loaded (see :func:`keeping_data`).

    :func:`to_data` writes the tree back as it is: moving an experiment
    between stores copies its values (signed pickles included, with their
    signatures) without loading any of them.
    """

    __slots__ = ("tree",)

    def __init__(self, tree: Any) -> None:
        self.tree = tree

    def __repr__(self) -> str:
        return f"StoredData({self.tree!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoredData) and self.tree == other.tree

    __hash__ = None  # type: ignore[assignment]


_KEEP: contextvars.ContextVar[bool] = contextvars.ContextVar("daskperiment_keep_data", default=False)


@contextmanager
def keeping_data() -> Iterator[None]:
    """Read values as their stored data in this thread (or task) until the block ends.

    :func:`from_data` and :func:`from_text` then give a :class:`StoredData`
    for each value (a dict of them for a dict of plain keys, so that a
    trial's parameters stay a dict), which :func:`to_data` writes back
    unchanged. Values of stores written before data trees (pickles of an
    earlier daskperiment) are read as usual.
    """
    token = _KEEP.set(True)
    try:
        yield
    finally:
        _KEEP.reset(token)


def _kept(tree: Any) -> Any:
    if type(tree) is dict and not any(key.startswith(_TAG) for key in tree):
        return {key: StoredData(item) for key, item in tree.items()}
    return StoredData(tree)


# -- writing ---------------------------------------------------------------------------
def to_data(value: Any) -> Any:
    """``value`` as a JSON tree (see the module's documentation); other objects pickled and signed.

    Every dict of the tree has string keys, none starting with ``@`` or ``$``
    but those of tags, so the tree is valid JSON and BSON as it is.

    Raises
    ------
    TypeError
        When a value is neither plain data nor picklable by pickle or cloudpickle.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else {"@float": repr(value)}
    if kind is int:
        return value if _INT64_MIN <= value <= _INT64_MAX else {"@int": hex(value)}
    if kind is dict:
        for key in value:
            if type(key) is not str or key[:1] in _ESCAPED:
                return {"@dict": [[to_data(k), to_data(v)] for k, v in value.items()]}
        return {key: to_data(item) for key, item in value.items()}
    if kind is list:
        return [to_data(item) for item in value]
    if kind is tuple:
        return {"@tuple": [to_data(item) for item in value]}
    return _other_data(value, kind)


def _other_data(value: Any, kind: type) -> Any:
    if kind is bytes:
        return {"@bytes": _text(value)}
    if kind is datetime.datetime and value.fold == 0 and value.tzinfo in (None, datetime.timezone.utc):
        return {"@datetime": value.isoformat()}
    if kind is datetime.date:
        return {"@date": value.isoformat()}
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, (numpy.ndarray, numpy.generic)) and not value.dtype.hasobject:
        if kind is numpy.ndarray:
            return {"@ndarray": _text(_npy(value))}
        if isinstance(value, numpy.generic):
            dtype = value.dtype
            if dtype.kind in "biuf" and dtype.itemsize <= 8:
                return {"@numpy": dtype.name, "value": to_data(value.item())}
            return {"@numpy": dtype.str, "npy": _text(_npy(numpy.asarray(value)))}
    if kind is StoredData:
        return value.tree
    if kind is UnreadableValue:
        raise TypeError(f"cannot serialize {value!r}: a value that was not loaded cannot be stored again")
    name, signature, payload = _signed_pickle(value)
    return {"@pickle": _text(payload), "type": name, "hmac": signature.hex()}


def to_text(value: Any) -> str:
    """``value`` as the JSON text of :func:`to_data` (ASCII).

    Raises
    ------
    TypeError
        When a value is neither plain data nor picklable.
    """
    return _JSON.encode(to_data(value))


def dumps(value: Any) -> bytes:
    """``value`` as bytes: its data (JSON text), its ``.npy`` file, or its signed pickle.

    Raises
    ------
    TypeError
        When the value is neither plain data nor picklable by pickle or cloudpickle.
    """
    kind = type(value)
    numpy = sys.modules.get("numpy")
    if numpy is not None and kind is numpy.ndarray and not value.dtype.hasobject:
        return _npy(value, MAGIC + _NUMPY)
    if kind in _DATA_KINDS or (numpy is not None and isinstance(value, numpy.generic)):
        return MAGIC + _DATA + _JSON.encode(to_data(value)).encode("ascii")
    return signed_pickle(value)


_DATA_KINDS = frozenset({str, bool, type(None), int, float, dict, list, tuple, bytes, datetime.datetime, datetime.date})


def signed_pickle(value: Any) -> bytes:
    """``value`` pickled and signed, as :func:`loads` reads it (whatever its type).

    Raises
    ------
    TypeError
        When neither pickle nor cloudpickle can serialize it.
    """
    name, signature, payload = _signed_pickle(value)
    encoded = name.encode("utf-8")
    return b"".join((MAGIC, _PICKLE, signature, len(encoded).to_bytes(2, "big"), encoded, payload))


def _signed_pickle(value: Any) -> tuple[str, bytes, bytes]:
    """Type name, signature and pickle of ``value`` (the signature covers name and pickle).

    A key that cannot be had is a ``TypeError`` as an unpicklable value is: a
    trial whose result cannot be stored is recorded with its repr.
    """
    payload = _pickle(value)
    name = type_name(value)[:_MAX_TYPE_NAME]
    try:
        signature = signing.sign(name.encode("utf-8"), b"\0", payload)
    except SigningKeyError as exc:
        raise TypeError(f"cannot sign the pickle of a value of type {name}: {exc}") from exc
    return name, signature, payload


def _pickle(value: Any) -> bytes:
    """Serialize ``value``; objects plain pickle refuses (lambdas, local classes) use cloudpickle."""
    try:
        return pickle.dumps(value, protocol=PROTOCOL)
    except Exception:
        try:
            return cloudpickle.dumps(value, protocol=PROTOCOL)
        except Exception as exc:
            raise TypeError(
                f"cannot serialize a value of type {type_name(value)}: {type(exc).__name__}({exc})"
            ) from exc


def _npy(array: Any, prefix: bytes = b"") -> bytes:
    import numpy

    buffer = io.BytesIO()
    buffer.write(prefix)
    numpy.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _text(content: bytes) -> str:
    return base64.b64encode(content).decode("ascii")


def type_name(value: Any) -> str:
    """Qualified name of the type of ``value``, e.g. ``numpy.ndarray`` or ``int``."""
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


# -- reading ---------------------------------------------------------------------------
def from_data(tree: Any, *, strict: bool = False) -> Any:
    """The value a :func:`to_data` tree describes; ``bytes`` are the pickle of an older store.

    Parameters
    ----------
    tree : object
        A JSON tree, or the unsigned pickle an earlier daskperiment stored.
    strict : bool, default False
        Raise :class:`~daskperiment.errors.UnreadableValueError` instead of
        giving an :class:`UnreadableValue` for what cannot be loaded.
    """
    if isinstance(tree, (bytes, bytearray, memoryview)):
        return loads(tree, strict=strict)
    if _KEEP.get():
        return _kept(tree)
    return _Reader(_TRUST.get(), strict).value(tree)


def from_text(text: str | bytes, *, strict: bool = False) -> Any:
    """The value of a :func:`to_text` text (``bytes``: the pickle an earlier daskperiment stored)."""
    if isinstance(text, str):
        try:
            tree = _DECODER.decode(text)
        except ValueError as exc:
            return _Reader(_TRUST.get(), strict).damaged(f"malformed data ({exc})")
        if _KEEP.get():
            return _kept(tree)
        return tree if is_plain_text(text) else _Reader(_TRUST.get(), strict).value(tree)
    return from_data(text, strict=strict)


def from_texts(texts: Sequence[str | bytes]) -> list[Any]:
    """The values of many :func:`to_text` texts: what ``[from_text(t) for t in texts]`` gives, decoded at once.

    The texts are parsed as one JSON array (one parse instead of one per
    text: several times faster for a history of 100,000 trials), and only
    those holding a tagged value are walked. Texts are read one by one when
    some are pickles of an earlier daskperiment (``bytes``), or when the
    array does not parse into one value per text (damaged texts).
    """
    if _KEEP.get() or not all(type(text) is str for text in texts):
        return [from_text(text) for text in texts]
    joined = "[" + ",".join(texts) + "]"  # type: ignore[arg-type]  # every text is a str
    try:
        trees = _DECODER.decode(joined)
    except ValueError:
        trees = None
    if trees is None or len(trees) != len(texts):
        return [from_text(text) for text in texts]
    if is_plain_text(joined):
        return trees
    reader = _Reader(_TRUST.get(), False)
    return [tree if is_plain_text(text) else reader.value(tree) for tree, text in zip(trees, texts)]


def is_plain_text(text: str | bytes) -> bool:
    """Whether the JSON ``text`` holds no tagged value: its tree *is* its value (no walk needed).

    A tag is an object key starting with ``@``, written ``"@`` (or, escaped, ``"\\u0040``).
    """
    if isinstance(text, str):  # @ and backslashes are rare: one fast scan for each rules most texts out
        return ("@" not in text or '"@' not in text) and ("\\" not in text or '"\\u0040' not in text)
    return (b"@" not in text or b'"@' not in text) and (b"\\" not in text or b'"\\u0040' not in text)


def loads(payload: bytes | memoryview, *, strict: bool = False) -> Any:
    """The value of bytes written by :func:`dumps` or :func:`signed_pickle` (see :func:`from_data`)."""
    reader = _Reader(_TRUST.get(), strict)
    view = memoryview(payload)
    if view[: len(MAGIC)] != MAGIC:
        if view[:1] == _OLD_PICKLE:
            return reader.old_pickle(view)
        return reader.damaged("not a value stored by daskperiment")
    kind, body = view[len(MAGIC) : _HEADER], view[_HEADER:]
    try:
        if kind == _DATA:
            return reader.value(json.loads(bytes(body)))
        if kind == _NUMPY:
            return _load_npy(body)
        if kind == _PICKLE:
            size = signing.SIGNATURE_SIZE
            length = int.from_bytes(body[size : size + 2], "big")
            name = bytes(body[size + 2 : size + 2 + length]).decode("utf-8", "replace")
            return reader.pickled(name, body[:size], body[size + 2 + length :])
    except UnreadableValueError:
        raise
    except Exception as exc:  # damaged or forged bytes
        return reader.damaged(f"malformed data ({type(exc).__name__}: {exc})")
    return reader.unreadable("unknown", "written by a newer daskperiment; upgrade to read it")


def is_current(payload: bytes | memoryview) -> bool:
    """Whether ``payload`` was written by :func:`dumps` (not a pickle of an earlier daskperiment)."""
    return bytes(payload[: len(MAGIC)]) == MAGIC


def load_value(payload: bytes | memoryview) -> Any:
    """:func:`loads` that raises instead of giving placeholders.

    Raises
    ------
    UnreadableValueError
        When the value may not be loaded here (a pickle signed with another
        key, unsigned, of an older store) or its class cannot be imported.
    ValueError
        When the bytes are damaged (cut short, not written by daskperiment).
    """
    return loads(payload, strict=True)


def _load_npy(body: memoryview) -> Any:
    import numpy

    return numpy.load(io.BytesIO(body), allow_pickle=False)


class _Reader:
    """Decoding of one stored value with one trust level."""

    __slots__ = ("trust", "strict")

    def __init__(self, trust: Trust, strict: bool) -> None:
        self.trust = trust
        self.strict = strict

    def value(self, tree: Any) -> Any:
        kind = type(tree)
        if kind is dict:
            for key in tree:
                if key.startswith(_TAG):
                    return self.tagged(key, tree)
                break
            return {key: self.value(item) for key, item in tree.items()}
        if kind is list:
            return [self.value(item) for item in tree]
        if kind in _JSON_SCALARS:
            return tree
        if isinstance(tree, int):  # a server client's int type, e.g. bson.int64.Int64
            return int(tree)
        return tree

    def tagged(self, tag: str, tree: dict[str, Any]) -> Any:
        try:
            content = tree[tag]
            if tag == "@tuple":
                return tuple(self.value(item) for item in content)
            if tag == "@dict":
                return {self.value(key): self.value(item) for key, item in content}
            if tag == "@pickle":
                return self.pickled(str(tree.get("type")), bytes.fromhex(tree["hmac"]), base64.b64decode(content))
            return _scalar(tag, content, tree)
        except UnreadableValueError:
            raise
        except Exception as exc:  # damaged or forged data
            return self.damaged(f"malformed data ({type(exc).__name__}: {exc})", tag[1:])

    def pickled(self, name: str, signature: bytes | memoryview, payload: bytes | memoryview) -> Any:
        if self.trust is Trust.NONE:
            return UnreadableValue(name, None)
        if len(signature) != signing.SIGNATURE_SIZE:
            return self.unreadable(name, UNSIGNED)
        if not signing.verify(signature, name.encode("utf-8"), b"\0", payload):
            return self.unreadable(name, WRONG_KEY)
        try:
            return pickle.loads(payload)
        except Exception as exc:
            return self.unreadable(
                name,
                f"it cannot be loaded here ({type(exc).__name__}: {exc}); load it where its "
                "class can be imported (a class defined in a script run as __main__ is not)",
            )

    def old_pickle(self, payload: bytes | memoryview) -> Any:
        try:
            if self.trust is Trust.OLD_PICKLES:
                return pickle.loads(payload)
            return _PlainUnpickler(io.BytesIO(payload)).load()
        except _RefusedGlobal as refused:
            return self.unreadable(refused.name, OLD_UNSIGNED)
        except Exception as exc:
            return self.damaged(f"an earlier daskperiment's pickle that cannot be loaded ({type(exc).__name__}: {exc})")

    def unreadable(self, name: str, reason: str) -> UnreadableValue:
        """The placeholder of a value that may not be loaded here; raised when strict."""
        if self.strict:
            raise UnreadableValueError(f"the stored value (a {name}) cannot be loaded: {reason}")
        return UnreadableValue(name, reason)

    def damaged(self, reason: str, name: str = "unknown") -> UnreadableValue:
        """The placeholder of damaged or forged bytes; a ``ValueError`` when strict."""
        if self.strict:
            raise ValueError(f"the stored value is damaged: {reason}")
        return UnreadableValue(name, reason)


def _scalar(tag: str, content: Any, tree: dict[str, Any]) -> Any:
    if tag == "@int":
        return int(content, 16)
    if tag == "@float":
        return float(content)
    if tag == "@bytes":
        return base64.b64decode(content)
    if tag == "@datetime":
        return datetime.datetime.fromisoformat(content)
    if tag == "@date":
        return datetime.date.fromisoformat(content)
    if tag in ("@numpy", "@ndarray"):
        import numpy

        if tag == "@ndarray":
            return numpy.load(io.BytesIO(base64.b64decode(content)), allow_pickle=False)
        if "npy" in tree:
            return numpy.load(io.BytesIO(base64.b64decode(tree["npy"])), allow_pickle=False)[()]
        return numpy.dtype(content).type(_Reader(Trust.NONE, True).value(tree["value"]))
    raise ValueError(f"unknown tag {tag!r}: written by a newer daskperiment? Upgrade to read it")


class _RefusedGlobal(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _PlainUnpickler(pickle.Unpickler):
    """Loads pickles of plain data only: any global but :data:`OLD_PICKLE_TYPES` is refused.

    Nothing can be called but those constructors, so no code of the pickle's
    author runs (the restriction the ``pickle`` documentation recommends).
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in OLD_PICKLE_TYPES:
            return super().find_class(module, name)
        raise _RefusedGlobal(f"{module}.{name}")
