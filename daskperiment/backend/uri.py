"""Server URIs: checking them, and showing them without their secrets."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, unquote, unquote_plus, urlsplit

from daskperiment.errors import BackendURIError

REDIS_SCHEMES = ("redis", "rediss")
MONGO_SCHEMES = ("mongodb", "mongodb+srv")
HIDDEN = "***"
TOKEN_USER_SCHEMES = ("http", "https")
"""Schemes whose user name alone is often a secret (``https://<token>@github.com/…``)."""
_SECRET_OPTION = re.compile(
    r"pass|pwd|token|secret|signature|credential|api_?key|authmechanismproperties", re.IGNORECASE
)
"""Query options whose values are secrets (``password=``, ``access_token=``, ``X-Amz-Signature=``, ...)."""
_OPTION = re.compile(r"(?P<name>[^&;=#]+)=(?P<value>[^&;#]*)")
_AUTHORITY_END = re.compile(r"[/?#]")
_RESERVED = "/?#@:[]"


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
    if _misplaced_password(uri):
        raise malformed(uri, None, example)
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError as exc:
        raise malformed(uri, exc, example) from None
    if not host:
        raise BackendURIError(f"malformed URI {shown!r}: it names no host; expected e.g. {example!r}")
    return parts


def malformed(uri: str, error: BaseException | None, example: str) -> BackendURIError:
    """The error for a URI a parser refused, naming it without its secrets.

    A parser's message may quote any piece of the URI, a piece of a password
    included, so it is shown only for a URI holding no secret.
    """
    shown = redact(uri)
    if any(character in _RESERVED for character in _password(uri)):
        detail = (
            "its password holds a character reserved in URIs (one of / ? # @ : [ ]); "
            "percent-encode the password, e.g. urllib.parse.quote(password, safe='')"
        )
    elif error is None or secrets(uri):
        detail = "check its user name, password, host, port and options"
    else:
        detail = str(error)
    return BackendURIError(f"malformed URI {shown!r}: {detail}; expected e.g. {example!r}")


def redact(uri: str) -> str:
    """``uri`` with its secrets replaced by ``***``, safe to show and log.

    The secrets are the password (also one holding unescaped reserved
    characters such as ``/`` or ``#``), the user name of an ``http(s)`` URI
    (often a token), and the values of query options such as ``password=``,
    ``access_token=`` or ``X-Amz-Signature=``.
    """
    return _hide(uri)[0]


def secrets(uri: str) -> list[str]:
    """The secrets :func:`redact` hides in ``uri``, as written in it."""
    return _hide(uri)[1]


def scrub(text: str, uri: str) -> str:
    """``text`` (e.g. a client library's error message) with the secrets of ``uri`` hidden.

    Each secret is hidden as written in the URI and percent-decoded, as a
    client library would show it.
    """
    forms = {form for secret in secrets(uri) for form in (secret, unquote(secret), unquote_plus(secret))}
    for form in sorted(filter(None, forms), key=len, reverse=True):
        text = text.replace(form, HIDDEN)
    return text


def without_credentials(uri: str) -> str:
    """``uri`` without user name and password: names the server, whoever connects."""
    head, separator, rest = uri.partition("://")
    if not separator:
        return uri
    found = _user_info(rest)
    return f"{head}://{found[1] if found else rest}"


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


def _user_info(rest: str) -> tuple[str, str] | None:
    """The user info of ``rest`` (a URI after ``scheme://``) and what follows its ``@``.

    The user info normally ends at the last ``@`` before the first ``/``,
    ``?`` or ``#``. A password holding one of those unescaped (``user:pa/ss@host``)
    ends it at a later ``@``: taken as such when a ``:`` comes before them.
    """
    authority = _AUTHORITY_END.split(rest, maxsplit=1)[0]
    if "@" in authority:
        at = authority.rindex("@")
    else:
        at = rest.rfind("@")
        if at < 0 or ":" not in _AUTHORITY_END.split(rest[:at], maxsplit=1)[0]:
            return None
    return rest[:at], rest[at + 1 :]


def _password(uri: str) -> str:
    """The password of ``uri`` as written in it (``""`` when it has none)."""
    _, separator, rest = uri.partition("://")
    found = _user_info(rest) if separator else None
    return found[0].partition(":")[2] if found else ""


def _misplaced_password(uri: str) -> bool:
    """Whether the password of ``uri`` holds unescaped characters that end a URI's authority."""
    return _AUTHORITY_END.search(_password(uri)) is not None


def _hide(uri: str) -> tuple[str, list[str]]:
    """``uri`` with its secrets replaced by :data:`HIDDEN`, and those secrets."""
    head, separator, rest = uri.partition("://")
    if not separator:
        return uri, []
    hidden: list[str] = []
    found = _user_info(rest)
    login = ""
    if found is not None:
        user_info, rest = found
        user, colon, password = user_info.partition(":")
        if colon:
            hidden.append(password)
            login = f"{user}:{HIDDEN}@"
        elif head.lower() in TOKEN_USER_SCHEMES and user:
            hidden.append(user)
            login = f"{HIDDEN}@"
        else:
            login = f"{user}@"
    address, question, query = rest.partition("?")
    if question:
        query, hash_, fragment = query.partition("#")

        def hide_option(match: re.Match[str]) -> str:
            if not _SECRET_OPTION.search(unquote_plus(match["name"])) or not match["value"]:
                return match[0]
            hidden.append(match["value"])
            return f"{match['name']}={HIDDEN}"

        rest = f"{address}?{_OPTION.sub(hide_option, query)}{hash_}{fragment}"
    return f"{head}://{login}{rest}", hidden
