"""`skyscreen-hw send`: draw on the websocket canvas from a shell or a script.

    skyscreen-hw send text 2 3 "HELLO" --color ff8000
    skyscreen-hw send text --block "two\\nlines"
    skyscreen-hw send pixel 5 5 --color red
    skyscreen-hw send rect 0 0 31 3 --color 0000ff
    skyscreen-hw send words 3F2F0F00 ...          (raw hex words, one message)
    producer | skyscreen-hw send words -          (hex words from stdin; --binary for raw bytes)

Everything one invocation sends is one message, so it shows at once. The drawing stays on the canvas
after `send` exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import Any

from skyscreen_hw.errors import SkyscreenError
from skyscreen_hw.sources import instructions as ins

NAMED = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "orange": (255, 136, 0),
}


def parse_colour(text: str) -> tuple[int, int, int]:
    """A colour name, RRGGBB or RGB hex (with or without '#') -> 8-bit (r, g, b)."""
    value = text.strip().lower().lstrip("#")
    if value in NAMED:
        return NAMED[value]
    try:
        if len(value) == 6:
            return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
        if len(value) == 3:
            return int(value[0], 16) * 17, int(value[1], 16) * 17, int(value[2], 16) * 17
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"colour {text!r}: use a name ({', '.join(NAMED)}), RRGGBB or RGB hex")


def _depth(rgb: tuple[int, int, int], levels: int) -> tuple[int, int, int]:
    """8-bit channels -> the nearest of `levels` steps (16 for pixels, 4 for characters)."""
    step = 255 / (levels - 1)
    r, g, b = (round(v / step) for v in rgb)
    return r, g, b


def text_words(x: int, y: int, text: str, rgb: tuple[int, int, int]) -> list[int]:
    """Write-character words from cell (x, y), wrapping at the right edge and at '\\n'."""
    words = []
    col, row = x, y
    for ch in text:
        if ch == "\n":
            col, row = x, (row + 1) % ins.CELLS
            continue
        words.append(ins.char(col, row, *_depth(rgb, 4), ch))
        col += 1
        if col == ins.CELLS:
            col, row = 0, (row + 1) % ins.CELLS
    return words


def _hex_words(tokens: list[str]) -> list[int]:
    words = []
    for token in tokens:
        value = token.strip().removeprefix("0x").removeprefix("0X").replace("_", "")
        if len(value) != 8:
            raise SkyscreenError(f"send words: {token!r} is not a 32-bit word of 8 hex digits")
        try:
            words.append(int(value, 16))
        except ValueError:
            raise SkyscreenError(f"send words: {token!r} is not hex") from None
    return words


def message_for(args: argparse.Namespace) -> bytes:
    """The one binary message a `send` invocation stands for."""
    if args.what == "text":
        if args.block:
            words = [ins.block_start(), *ins.block_text(args.text, *_depth(args.color, 4)), ins.QUIT]
        else:
            words = text_words(args.x, args.y, args.text, args.color)
        return ins.pack(words)
    if args.what == "pixel":
        return ins.pack([ins.pixel(args.x, args.y, *_depth(args.color, 16))])
    if args.what == "rect":
        return ins.pack(ins.colour_block(args.left, args.top, args.right, args.bottom, *_depth(args.color, 16)))
    if args.binary:
        return sys.stdin.buffer.read()
    tokens = sys.stdin.read().split() if args.words == ["-"] else args.words
    return ins.pack(_hex_words(tokens))


async def send_message(url: str, message: bytes, token: str = "", timeout: float = 5.0, grace: float = 0.2) -> None:
    """Connect, send one binary message, close normally; SkyscreenError with the server's reason otherwise.

    The protocol is one-way, so the server only speaks when it closes: wait `grace` seconds for a
    rejection (1003 / 1007) before closing normally ourselves.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        async with asyncio.timeout(timeout):
            async with connect(url, additional_headers=headers, open_timeout=timeout) as ws:
                await ws.send(message)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ws.wait_closed(), grace)
                await ws.close()
                code, reason = ws.close_code, ws.close_reason
    except InvalidStatus as exc:
        body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
        raise SkyscreenError(f"{url} refused the connection: HTTP {exc.response.status_code} {body}") from None
    except InvalidURI as exc:
        raise SkyscreenError(f"{url}: not a websocket URL ({exc})") from None
    except (OSError, TimeoutError) as exc:
        raise SkyscreenError(
            f"cannot reach {url}: {exc or 'timed out'} (is skyscreen-hw running with [websocket] enabled?)"
        ) from None
    except ConnectionClosed as exc:
        code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (1006, "connection lost")
    if code not in (1000, None):
        raise SkyscreenError(f"{url} closed the connection: {code} {reason}")


def add_parser(sub: Any) -> None:
    """The `send` subcommand and its own subcommands."""
    send = sub.add_parser("send", help="draw on the websocket canvas (text, pixel, rect, raw words)")
    send.add_argument("--url", default="ws://127.0.0.1:8765", help="the daemon's websocket (default %(default)s)")
    send.add_argument("--token", default="", help="token, when the daemon's [websocket] token is set")
    what = send.add_subparsers(dest="what", metavar="WHAT", required=True)

    def cell(p: argparse.ArgumentParser, *names: str) -> None:
        for name in names:
            p.add_argument(name, type=_cell, help="cell 0..31")

    def colour(p: argparse.ArgumentParser, default: str) -> None:
        p.add_argument("--color", "--colour", type=parse_colour, default=parse_colour(default), help="name or hex")

    text = what.add_parser("text", help="text at a cell (write character), or --block (write block from 0,0)")
    text.add_argument("x", type=_cell, nargs="?", default=0)
    text.add_argument("y", type=_cell, nargs="?", default=0)
    text.add_argument("text", help="ASCII text; \\n starts a new line")
    text.add_argument("--block", action="store_true", help="send it as a write block from cell (0,0)")
    colour(text, "white")
    pixel = what.add_parser("pixel", help="fill one cell")
    cell(pixel, "x", "y")
    colour(pixel, "white")
    rect = what.add_parser("rect", help="fill a rectangle of cells (colour block), edges included")
    cell(rect, "left", "top", "right", "bottom")
    colour(rect, "white")
    words = what.add_parser("words", help="raw 32-bit words in hex, or '-' to read them from stdin")
    words.add_argument("words", nargs="+", help="hex words like 3F2F0F00, or '-'")
    words.add_argument("--binary", action="store_true", help="with '-': stdin is the raw message bytes")


def _cell(text: str) -> int:
    value = int(text)
    if not 0 <= value < ins.CELLS:
        raise argparse.ArgumentTypeError(f"cell must be 0..{ins.CELLS - 1}, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    if args.what == "text":
        args.text = args.text.replace("\\n", "\n")
        bad = sorted({c for c in args.text if ord(c) >= 0x80})
        if bad:
            raise SkyscreenError(f"send text: {''.join(bad)!r} is not ASCII; the display has glyphs for ASCII only")
    asyncio.run(send_message(args.url, message_for(args), args.token))
    return 0
