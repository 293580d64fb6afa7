"""Browser Origins: which pages may open the daemon's websockets. Pure: strings in, answers out.

A page is allowed when it comes from the daemon's own host:port (its ``Origin`` matches the request's
``Host``), or from an origin listed in ``[websocket] origins``. Clients that send no Origin (scripts)
are not browsers and are not asked.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from urllib.parse import urlsplit

from skyscreen_hw.errors import ConfigError

DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}

# (scheme, host, port) of an Origin; ("null", "", None) and the like for opaque origins
OriginKey = tuple[str, str, int | None]


def origin_key(origin: str) -> OriginKey:
    """An Origin compared by scheme, host and port (the scheme's default port filled in), case-blind.

    Opaque origins ("null", from sandboxed frames and files) and anything unparsable compare as text.
    """
    text = origin.strip().lower().rstrip("/")
    try:
        parts = urlsplit(text)
        host, port = parts.hostname, parts.port
    except ValueError:
        return (text, "", None)
    if not parts.scheme or not host or parts.path or parts.query:
        return (text, "", None)
    return (parts.scheme, host, port or DEFAULT_PORTS.get(parts.scheme))


def host_key(host_header: str) -> tuple[str, int] | None:
    """The request's `Host: name[:port]` as (name, port); port 80 when absent (the server speaks plain ws)."""
    try:
        parts = urlsplit("//" + host_header.strip().lower())
        return (parts.hostname, parts.port or 80) if parts.hostname else None
    except ValueError:
        return None


def origin_allowed(origin: str, host_header: str | None, allowed: Collection[OriginKey]) -> bool:
    """Whether a browser page from `origin` may connect: the daemon's own host:port, or one listed."""
    key = origin_key(origin)
    if key in allowed:
        return True
    own = host_key(host_header) if host_header else None
    return bool(key[1]) and own is not None and (key[1], key[2]) == own


def check_origins(origins: Iterable[str]) -> frozenset[OriginKey]:
    """The `[websocket] origins` entries as keys; SkyscreenError naming a bad one and the fix."""
    keys = set()
    for entry in origins:
        key = origin_key(entry)
        if not key[1] and key[0] != "null":
            raise ConfigError(
                f"[websocket] origins: {entry!r} is not an origin: write it as a browser sends it,"
                ' scheme://host[:port] (e.g. "http://mypi.local:8080"), or "null"'
            )
        keys.add(key)
    return frozenset(keys)
