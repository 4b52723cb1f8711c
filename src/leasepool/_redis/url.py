"""Redis URLs: validation and password redaction.

Nothing leasepool prints, raises or logs may contain a password, so every URL
goes through :func:`redact_url` before it is formatted into a message, and
every error text from redis-py goes through :func:`scrub`.

A password of :data:`SHORT_SECRET` characters or fewer is scrubbed only where
it stands alone (not inside a longer run of letters and digits): replacing a
one-letter password everywhere would mangle every word of the message while
hiding nothing. Longer passwords are scrubbed wherever they occur, in plain
and in percent-encoded form.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import SplitResult, quote, unquote, urlsplit

SCHEMES = ("redis", "rediss", "unix")
REDACTED = "***"
SHORT_SECRET = 5


def _split(url: str) -> SplitResult:
    return urlsplit(url)


def redact_url(url: str) -> str:
    """``url`` with its password (and any ``password=`` query value) replaced by ``***``."""
    try:
        parts = _split(url)
    except ValueError:
        return "<unparseable redis url>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{hostport}" if sep else f"{REDACTED}@{hostport}"
    query = "&".join(
        f"{k}={REDACTED}" if k.lower() == "password" else f"{k}{eq}{v}"
        for k, eq, v in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return parts._replace(netloc=netloc, query=query).geturl()


def url_password(url: str) -> str | None:
    """The password in ``url`` (for scrubbing it out of error messages), if any."""
    try:
        parts = _split(url)
    except ValueError:
        return None
    if parts.password:
        return unquote(parts.password)
    for item in parts.query.split("&"):
        key, _, value = item.partition("=")
        if key.lower() == "password" and value:
            return unquote(value)
    return None


def check_url(url: object) -> str:
    """A Redis URL: ``redis://``, ``rediss://`` (TLS) or ``unix://``, with a valid port and db."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    shown = redact_url(url)
    try:
        parts = _split(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"url is not a valid Redis URL: {shown!r} ({exc})") from None
    if parts.scheme not in SCHEMES:
        raise ValueError(f"url must start with redis://, rediss:// or unix://, got {shown!r}")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"url needs a socket path, got {shown!r}")
        return url
    if not parts.hostname:
        raise ValueError(f"url needs a host, got {shown!r}")
    if port is not None and port == 0:
        raise ValueError(f"url has an invalid port, got {shown!r}")
    path = parts.path.lstrip("/")
    if path and not path.isdigit():
        raise ValueError(f"url path must be a database number, got {shown!r}")
    return url


def _scheme(pool: Any) -> str:
    # redis-py picks SSLConnection for rediss:// URLs and ssl=True clients.
    connection_class = getattr(pool, "connection_class", None)
    name = getattr(connection_class, "__name__", "")
    return "rediss" if "SSL" in name else "redis"


def describe_client(client: Any) -> str:
    """A password-free ``redis[s]://host:port/db`` description of a client's target."""
    pool = getattr(client, "connection_pool", None)
    kwargs: dict[str, Any] = {}
    if pool is not None:
        kwargs = dict(getattr(pool, "connection_kwargs", {}) or {})
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    host = kwargs.get("host")
    port = kwargs.get("port")
    if host is None:
        nodes = getattr(client, "startup_nodes", None) or []
        if nodes:
            first = nodes[0]
            return f"redis cluster {getattr(first, 'host', '?')}:{getattr(first, 'port', '?')}"
        name = getattr(pool, "service_name", None)
        if name is not None:
            return f"redis sentinel service {name!r}"
        return "redis"
    db = kwargs.get("db", 0)
    return f"{_scheme(pool)}://{host}:{port}/{db}"


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` with every secret in ``secrets`` replaced by ``***``."""
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, quote(secret, safe="")}:
            if len(form) > SHORT_SECRET:
                text = text.replace(form, REDACTED)
            else:
                standalone = rf"(?<![A-Za-z0-9]){re.escape(form)}(?![A-Za-z0-9])"
                text = re.sub(standalone, REDACTED, text)
    return text
