"""Server URIs: checking them, and showing them without their password."""

from __future__ import annotations

from urllib.parse import SplitResult, parse_qsl, unquote_plus, urlsplit

from daskperiment.errors import BackendURIError

REDIS_SCHEMES = ("redis", "rediss")
MONGO_SCHEMES = ("mongodb", "mongodb+srv")
HIDDEN = "***"


def scheme_of(uri: str) -> str:
    """The lower-case scheme of ``uri`` (``""`` when it has none)."""
    head, separator, _ = uri.partition("://")
    return head.lower() if separator else ""


def split(uri: str, schemes: tuple[str, ...], example: str) -> SplitResult:
    """Split ``uri`` after checking that its scheme is one of ``schemes`` and it names a host.

    Raises
    ------
    BackendURIError
        For another scheme, a missing host, or a URI Python cannot parse.
    """
    shown = redact(uri)
    if scheme_of(uri) not in schemes:
        raise BackendURIError(
            f"wrong scheme in {shown!r}: expected {' or '.join(s + '://' for s in schemes)}, "
            f"e.g. {example!r}"
        )
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError as exc:
        raise BackendURIError(f"malformed URI {shown!r}: {exc}; expected e.g. {example!r}") from None
    if not host:
        raise BackendURIError(f"malformed URI {shown!r}: it names no host; expected e.g. {example!r}")
    return parts


def redact(uri: str) -> str:
    """``uri`` with its password (if any) replaced by ``***``, safe to show and log."""
    head, separator, rest = uri.partition("://")
    if not separator:
        return uri
    authority, slash, tail = rest.partition("/")
    credentials, at, hosts = authority.rpartition("@")
    if not at:
        return uri
    user, colon, _ = credentials.partition(":")
    shown = f"{user}:{HIDDEN}" if colon else user
    return f"{head}://{shown}@{hosts}{slash}{tail}"


def without_credentials(uri: str) -> str:
    """``uri`` without user name and password: names the server, whoever connects."""
    head, separator, rest = uri.partition("://")
    if not separator:
        return uri
    authority, slash, tail = rest.partition("/")
    return f"{head}://{authority.rpartition('@')[2]}{slash}{tail}"


def query_options(parts: SplitResult) -> dict[str, str]:
    """The query options of a split URI, keys in lower case."""
    return {key.lower(): value for key, value in parse_qsl(parts.query)}


def pop_option(uri: str, name: str) -> tuple[str, str | None]:
    """``uri`` without its query option ``name`` (in any case), and that option's value.

    The other options are kept as they are written. The value is None when
    ``uri`` has no such option.
    """
    base, separator, query = uri.partition("?")
    if not separator:
        return uri, None
    kept, value = [], None
    for part in query.split("&"):
        key, _, text = part.partition("=")
        if unquote_plus(key).lower() == name.lower():
            value = unquote_plus(text)
        else:
            kept.append(part)
    return base + ("?" + "&".join(kept) if kept else ""), value
