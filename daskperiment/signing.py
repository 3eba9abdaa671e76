"""The key that signs pickled values, and HMAC-SHA256 signatures made with it.

A store holds plain data as data; any other value is pickled and signed (see
:mod:`daskperiment.serialization`). A pickle is only ever loaded when its
signature verifies with this process's key, so whoever can write to a shared
store cannot make its readers run code without also holding the key.

The key is, in order:

1. ``$DASKPERIMENT_SIGNING_KEY`` (a passphrase, at least :data:`MIN_KEY_LENGTH` characters);
2. the content of the file ``$DASKPERIMENT_SIGNING_KEY_FILE`` names;
3. a key generated on first use in the user's config folder
   (``platformdirs.user_config_dir("daskperiment")/signing.key``, mode 0600),
   so one user's processes share it without any set-up.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
from pathlib import Path

import platformdirs

from daskperiment.errors import SigningKeyError

KEY_ENV = "DASKPERIMENT_SIGNING_KEY"
KEY_FILE_ENV = "DASKPERIMENT_SIGNING_KEY_FILE"
KEY_FILE_NAME = "signing.key"
MIN_KEY_LENGTH = 16
SIGNATURE_SIZE = hashlib.sha256().digest_size


def default_key_path() -> Path:
    """The per-user key file, created on first use: ``<user config dir>/daskperiment/signing.key``."""
    return Path(platformdirs.user_config_dir("daskperiment")) / KEY_FILE_NAME


def signing_key() -> bytes:
    """The key of this process (see the module's documentation for where it comes from).

    Raises
    ------
    SigningKeyError
        When the key given is too short, or its file cannot be read or created.
    """
    return _key(os.environ.get(KEY_ENV), os.environ.get(KEY_FILE_ENV), os.environ.get("XDG_CONFIG_HOME"))


def sign(*parts: bytes | memoryview) -> bytes:
    """The HMAC-SHA256 of ``parts`` (concatenated) with :func:`signing_key`."""
    mac = hmac.new(signing_key(), digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def verify(signature: bytes | memoryview, *parts: bytes | memoryview) -> bool:
    """Whether ``signature`` is :func:`sign` of ``parts`` (compared in constant time)."""
    return hmac.compare_digest(bytes(signature), sign(*parts))


@functools.lru_cache(maxsize=8)
def _key(passphrase: str | None, key_file: str | None, config_home: str | None) -> bytes:
    """The key for these settings (cached: the environment is read, the file opened, once)."""
    if passphrase is not None:
        return _checked(passphrase.encode("utf-8"), f"${KEY_ENV}")
    if key_file is not None:
        try:
            return _checked(Path(key_file).read_bytes().strip(), f"the key file {key_file}")
        except OSError as exc:
            raise SigningKeyError(
                f"cannot read the signing key file ${KEY_FILE_ENV}={key_file!r}: {exc}"
            ) from None
    return _default_key(default_key_path())


def _checked(key: bytes, origin: str) -> bytes:
    if len(key) < MIN_KEY_LENGTH:
        raise SigningKeyError(
            f"the signing key of {origin} is {len(key)} bytes long: use at least "
            f"{MIN_KEY_LENGTH}, e.g. the output of `python -c \"import secrets; print(secrets.token_hex(32))\"`"
        )
    return key


def _default_key(path: Path) -> bytes:
    """The key in ``path``, made (64 hex digits, mode 0600) by the first process that needs it."""
    try:
        return _checked(path.read_bytes().strip(), f"the key file {path}")
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise SigningKeyError(f"cannot read the signing key file {path}: {exc}") from None
    partial = path.with_name(f".{KEY_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(secrets.token_hex(32).encode("ascii") + b"\n")
        try:
            os.link(partial, path)  # fails if another process made the key first: use theirs
        except FileExistsError:
            pass
        return _checked(path.read_bytes().strip(), f"the key file {path}")
    except OSError as exc:
        raise SigningKeyError(
            f"cannot create the signing key file {path}: {exc}. Set ${KEY_ENV} or "
            f"${KEY_FILE_ENV} instead"
        ) from None
    finally:
        partial.unlink(missing_ok=True)
