"""`skyscreen-hw status`: what a running daemon reports at `/status`, readable in a terminal.

    skyscreen-hw status                 the daemon of the configuration (--config PATH, else the default file)
    skyscreen-hw status --json          the JSON as the daemon sent it (docs/status.schema.json)
    skyscreen-hw status --url http://mypi:8765/ --token SECRET

Like `send`, the URL and token come from the configuration's `[websocket]`; `--url` and `--token` win.
The token goes in an `Authorization: Bearer` header, never in the URL.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from skyscreen_hw.errors import SkyscreenError
from skyscreen_hw.send import load_config, url_for

TIMEOUT = 5.0  # seconds for the whole request
MAX_BYTES = 1 << 20  # a status larger than this is not the daemon's


def status_url(url: str) -> str:
    """The `/status` URL for a daemon URL given as http(s):// or ws(s)://, with or without a path."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https", "http": "http", "https": "https"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise SkyscreenError(f"--url {url}: give the daemon as http://HOST:PORT/ (or its ws:// URL)")
    return urlunsplit((scheme, parts.netloc, "/status", "", ""))


def fetch(url: str, token: str = "", timeout: float = TIMEOUT) -> bytes:
    """GET `url` (a /status URL); the body, or SkyscreenError saying what went wrong and what to try."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # http(s) only: see status_url
            return response.read(MAX_BYTES)
    except urllib.error.HTTPError as exc:
        body = exc.read(300).decode(errors="replace").strip()
        hint = " (give --token, or set [websocket] token in the configuration)" if exc.code == 401 else ""
        raise SkyscreenError(f"{url}: HTTP {exc.code} {body}{hint}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SkyscreenError(
            f"cannot reach {url}: {reason or 'timed out'} (is skyscreen-hw running with [websocket] enabled?)"
        ) from None


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 86400:
        return f"{s // 86400} d {s % 86400 // 3600} h"
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{seconds:.1f} s"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def describe(r: dict[str, Any]) -> str:
    """The report as a few lines for a terminal."""
    lines = [
        f"skyscreen-hw {r['version']}, up {_duration(r['uptime'])}",
        f"{r['fps']:.1f} fps (configured {r['fps_configured']:g}), {r['leds']} LEDs ({r['layout']})",
        f"frames: {r['frames_shown']} shown, {r['frames_dropped']} dropped (wire rate), {r['frames_failed']} failed,"
        f" {r['torn_frames_skipped']} torn skipped",
    ]
    if r["power_scale"] < 1.0:
        lines.append(f"power limit: scaling to {r['power_scale']:.0%}")
    ws = r.get("websocket")
    lines.append(f"websocket: {ws['clients']} clients, {ws['refused']} refused" if ws else "websocket: off")
    if r["sources"]:
        lines.append("sources:")
        rows = [
            [
                s["name"],
                s["kind"],
                f"priority {s['priority']}",
                ("live" if s["live"] else "idle") + (", showing" if s["showing"] else ""),
                f"{s['frames']} frames",
            ]
            for s in r["sources"]
        ]
        lines += _table(["name", "kind", "priority", "state", "frames"], rows)[1:]
    if r["outputs"]:
        lines.append("outputs:")
        rows = [
            [
                o["name"],
                f"{o['leds']} LEDs",
                ("STALLED: " if o["stalled"] else "") + o["health"],
                f"sent {o['frames_sent']}",
                f"dropped {o['frames_dropped']}",
                f"failed {o['frames_failed']}",
            ]
            for o in r["outputs"]
        ]
        lines += _table(["name", "leds", "health", "sent", "dropped", "failed"], rows)[1:]
    return "\n".join(lines)


def add_parser(sub: Any) -> None:
    status = sub.add_parser("status", help="what a running daemon reports (fps, frames, sources, outputs)")
    status.add_argument("--url", help="the daemon, http://HOST:PORT/ (default: from the configuration's [websocket])")
    status.add_argument("--token", help="the daemon's [websocket] token (default: the configuration's)")
    status.add_argument("--json", action="store_true", help="print the JSON as the daemon sent it")


def run(args: argparse.Namespace) -> int:
    config = load_config(getattr(args, "config", None))
    url = status_url(args.url or url_for(config))
    token = config.websocket.token if args.token is None else args.token
    body = fetch(url, token)
    if args.json:
        sys.stdout.write(body.decode(errors="replace").rstrip("\n") + "\n")
        return 0
    try:
        report = json.loads(body)
        print(describe(report))
    except (ValueError, KeyError, TypeError) as exc:
        raise SkyscreenError(f"{url}: not a skyscreen-hw status ({exc}); --json shows what came") from None
    return 0
