"""The daemon's HTTP side, pure: which request goes where, and the responses. No sockets here.

One port serves everything (the websocket's `[websocket] host` and `port`):

* ``GET /``: the page (skyscreen_hw/web/index.html), with a strict Content-Security-Policy whose
  script and style hashes are computed when the page is loaded;
* ``GET /status``: the daemon's report as JSON (docs/status.schema.json);
* a websocket handshake on ``/``: the instruction stream (docs/instructions.md);
* a websocket handshake on ``/live``: what the LEDs show (``?fps=``, ``?scale=``; docs/web.md);
* anything else: 404. Nothing here changes the configuration.

The checks before any of these (Origin, token, the Host of a server without a token) live here too; the
asyncio shell (skyscreen_hw.sources.websocket) applies them in this order: Host, Origin, token, route.
"""

from __future__ import annotations

import base64
import email.utils
import enum
import functools
import hashlib
import ipaddress
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from skyscreen_hw.errors import SkyscreenError
from skyscreen_hw.origins import OriginKey, host_key

PAGE_RESOURCE = "web/index.html"  # package data of skyscreen_hw

LIVE_FPS_DEFAULT = 30.0
LIVE_FPS_MIN, LIVE_FPS_MAX = 0.1, 60.0
LIVE_SCALE_MAX = 1024

# on every response: never cached, never sniffed, never framed, and no Referer (the page's URL holds the token)
COMMON_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
PLAIN_CSP = "default-src 'none'; frame-ancestors 'none'"  # for everything that is not the page
_HOST_CHARS = re.compile(r"^[a-z0-9.-]+$|^[0-9a-f:.]+$")  # a host name, an IPv4 or a bracket-less IPv6


class Route(enum.Enum):
    PAGE = "page"
    STATUS = "status"
    INSTRUCTIONS = "instructions"
    LIVE = "live"


class HttpError(SkyscreenError):
    """A request answered with an error status (400, 404): ``status`` and one line for the client."""

    def __init__(self, status: HTTPStatus, text: str) -> None:
        self.status = status
        super().__init__(text)


@dataclass(frozen=True)
class LiveOptions:
    """What a `/live` viewer asked for: at most ``fps`` frames a second, every ``scale``-th LED."""

    fps: float = LIVE_FPS_DEFAULT
    scale: int = 1


# -- routing -------------------------------------------------------------------------------------------------


def is_websocket(request: Request) -> bool:
    """Whether the request asks for a websocket (Upgrade: websocket); the handshake checks the rest."""
    return any("websocket" in v.lower() for v in request.headers.get_all("Upgrade"))


def route(request: Request) -> tuple[Route, LiveOptions | None]:
    """Where a request goes, with the `/live` options; HttpError 404 (unknown path) or 400 (bad option)."""
    parts = urlsplit(request.path)
    path = parts.path or "/"
    if is_websocket(request):
        if path == "/":
            return Route.INSTRUCTIONS, None
        if path == "/live":
            return Route.LIVE, live_options(parts.query)
    elif path == "/":
        return Route.PAGE, None
    elif path == "/status":
        return Route.STATUS, None
    elif path == "/live":
        raise HttpError(HTTPStatus.UPGRADE_REQUIRED, "/live is a websocket: open it with new WebSocket(...)")
    raise HttpError(HTTPStatus.NOT_FOUND, f"{path[:100]}: not found (the page is /, its status /status)")


def live_options(query: str) -> LiveOptions:
    """`?fps=` (0.1..60, default 30) and `?scale=` (1..1024, every n-th LED); HttpError 400 naming the bad one."""
    values = parse_qs(query)
    fps = _one(values, "fps", LIVE_FPS_DEFAULT, float, LIVE_FPS_MIN, LIVE_FPS_MAX)
    scale = _one(values, "scale", 1, int, 1, LIVE_SCALE_MAX)
    return LiveOptions(float(fps), int(scale))


def _one(values: dict[str, list[str]], key: str, default: float, kind: type, lo: float, hi: float) -> float:
    if key not in values:
        return default
    text = values[key][-1]
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:  # NaN fails the comparison too
        shown = text[:20]
        raise HttpError(HTTPStatus.BAD_REQUEST, f"/live?{key}={shown}: must be a number from {lo:g} to {hi:g}")
    return value


# -- who may ask ---------------------------------------------------------------------------------------------


def token_from(request: Request) -> str:
    """The client's token: `?token=...` in the URL, or an `Authorization: Bearer ...` header."""
    query = parse_qs(urlsplit(request.path).query)
    if query.get("token"):
        return query["token"][0]
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


def host_allowed(host_header: str | None, origins: Collection[OriginKey], local_names: Collection[str] = ()) -> bool:
    """Whether a server without a token may answer a request for this `Host` (against DNS rebinding).

    Such a server listens on loopback only, so a browser reaches it by a loopback name or address
    (localhost, 127.0.0.1, [::1], through an SSH tunnel too), by this machine's own name (``local_names``:
    Debian resolves it to 127.0.1.1) or by the host of a listed origin; a page whose own name merely
    resolves to 127.0.0.1 gets a 403. Clients that send no Host are not browsers.
    """
    if host_header is None:
        return True
    key = host_key(host_header)
    if key is None:
        return False
    name = key[0]
    if name in ("localhost", *local_names) or name.endswith(".localhost") or any(name == o[1] for o in origins):
        return True
    try:
        ip = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


# -- responses -----------------------------------------------------------------------------------------------


def response(status: HTTPStatus, body: bytes, content_type: str, csp: str = PLAIN_CSP) -> Response:
    """A complete response that closes the connection, with the common security headers."""
    headers = Headers()
    headers["Date"] = email.utils.formatdate(usegmt=True)
    headers["Connection"] = "close"
    headers["Content-Length"] = str(len(body))
    headers["Content-Type"] = content_type
    headers["Content-Security-Policy"] = csp
    for name, value in COMMON_HEADERS:
        headers[name] = value
    return Response(status.value, status.phrase, headers, body)


def text_response(status: HTTPStatus, text: str) -> Response:
    return response(status, (text.rstrip("\n") + "\n").encode(), "text/plain; charset=utf-8")


def json_response(value: Any) -> Response:
    return response(HTTPStatus.OK, json.dumps(value, separators=(",", ":")).encode(), "application/json")


@dataclass(frozen=True)
class Page:
    """The page's bytes and the hashes of its inline script and style, for its Content-Security-Policy."""

    html: bytes
    script_hashes: tuple[str, ...]
    style_hashes: tuple[str, ...]

    def csp(self, host_header: str | None = None) -> str:
        """The page's policy: its own inline script and style by hash, websockets to this host only."""
        connect = ["'self'"]
        key = host_key(host_header) if host_header else None
        if key is not None and _HOST_CHARS.match(key[0]):
            where = f"[{key[0]}]:{key[1]}" if ":" in key[0] else f"{key[0]}:{key[1]}"
            connect += [f"ws://{where}", f"wss://{where}"]
        scripts = " ".join(f"'sha256-{h}'" for h in self.script_hashes) or "'none'"
        styles = " ".join(f"'sha256-{h}'" for h in self.style_hashes) or "'none'"
        return (
            f"default-src 'self'; script-src {scripts}; style-src {styles}; connect-src {' '.join(connect)};"
            " img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )


def inline_hashes(html: str, tag: str) -> tuple[str, ...]:
    """Base64 SHA-256 of each inline ``<tag>...</tag>`` block's text, as CSP source expressions want it."""
    blocks = re.findall(rf"<{tag}(?:\s[^>]*)?>(.*?)</{tag}>", html, flags=re.DOTALL | re.IGNORECASE)
    return tuple(base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() for b in blocks)


@functools.cache
def page() -> Page:
    """The page from the package data, loaded once."""
    text = resources.files("skyscreen_hw").joinpath(PAGE_RESOURCE).read_text(encoding="utf-8")
    return Page(text.encode(), inline_hashes(text, "script"), inline_hashes(text, "style"))


def page_response(host_header: str | None) -> Response:
    p = page()
    return response(HTTPStatus.OK, p.html, "text/html; charset=utf-8", p.csp(host_header))
