"""`skyscreen-hw send`: draw on the websocket canvas from a shell or a script.

    skyscreen-hw send text 2 3 "HELLO" --color ff8000
    skyscreen-hw send text --block "two\\nlines"
    skyscreen-hw send pixel 5 5 --color red
    skyscreen-hw send rect 0 0 31 3 --color 0000ff
    skyscreen-hw send words 3F2F0F00 ...          (raw hex words, one message)
    producer | skyscreen-hw send words -          (hex words from stdin; --binary for raw bytes)

Everything one invocation sends is one message, so it shows at once. The drawing stays on the canvas
after `send` exits.

The daemon's URL and token come from the configuration (`skyscreen-hw --config PATH send ...`, else
/etc/skyscreen/skyscreen.toml if it exists, else the defaults); `--url` and `--token` win over it. When
nothing drawn falls on an LED of the configured layout (corner cells lie outside a dome), `send` says so
on stderr: the canvas is stretched over the layout's bounding box.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import Any

import numpy as np

from skyscreen_hw import config as configuration
from skyscreen_hw.config import Config
from skyscreen_hw.errors import ConfigError, SkyscreenError
from skyscreen_hw.layouts import Layout
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


# -- where to send, and whether it will show ---------------------------------------------------------------


def load_config(path: str | None) -> Config:
    """The configuration `send` reads: PATH, else the default file if it exists, else the defaults."""
    try:
        return configuration.load(path)
    except ConfigError as exc:
        if path is not None:
            raise
        raise ConfigError(
            f"{exc} (send reads it for the daemon's URL, token and layout: get read access to it,"
            " or name another file with skyscreen-hw --config PATH send ...)"
        ) from None


def url_for(config: Config) -> str:
    """The daemon's websocket URL from `[websocket] host` and `port` (a wildcard host means this machine)."""
    ws = config.websocket
    if not ws.enabled:
        raise SkyscreenError(
            f"{config.source}: [websocket] enabled = false: the daemon has no websocket to draw on"
            " (set enabled = true, or give --url ws://HOST:PORT)"
        )
    if ws.port == 0:
        raise SkyscreenError(
            f"{config.source}: [websocket] port = 0: the daemon picks a free port at each start"
            " (its log's 'running:' line names it): give --url ws://HOST:PORT"
        )
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(ws.host, ws.host)
    return f"ws://[{host}]:{ws.port}" if ":" in host else f"ws://{host}:{ws.port}"


def visible_cells(layout: Layout) -> np.ndarray:
    """(CELLS, CELLS) bool, [y, x]: the canvas cells at least one LED of `layout` samples.

    The compositor's own mapping: the canvas stretched over the layout's bounding box, pixel =
    round((position - min) * (SIZE - 1) / span), across each LED's footprint where it has one.
    """
    from skyscreen_hw.compositor import canvas_samples
    from skyscreen_hw.sources.canvas import Canvas

    size, cell = Canvas.SIZE, Canvas.CELL
    sampled = np.zeros(size * size, dtype=bool)
    for index in canvas_samples(layout, size):
        sampled[index] = True
    return sampled.reshape(ins.CELLS, cell, ins.CELLS, cell).any(axis=(1, 3))


def drawn_cells(message: bytes) -> np.ndarray:
    """(CELLS, CELLS) bool, [y, x]: the cells `message` draws on a fresh connection (none if malformed)."""
    from skyscreen_hw.sources.canvas import UNDRAWN, Canvas

    canvas = Canvas()
    with contextlib.suppress(ins.InstructionError):  # the daemon refuses it, and send reports that
        canvas.apply(1, ins.decode(message, ins.SessionState()))
    return (canvas.glyph != UNDRAWN).reshape(ins.CELLS, ins.CELLS)


def _span(values: np.ndarray) -> str:
    lo, hi = int(values.min()), int(values.max())
    return str(lo) if lo == hi else f"{lo}..{hi}"


def _runs(columns: np.ndarray) -> str:
    """Sorted column numbers as runs: 0..14, 17..31."""
    breaks = np.flatnonzero(np.diff(columns) != 1) + 1
    return ", ".join(_span(run) for run in np.split(columns, breaks))


def unseen_warning(drawn: np.ndarray, visible: np.ndarray, config: Config, kind: str) -> str | None:
    """One line when something is drawn but none of it falls on an LED; None otherwise."""
    if not drawn.any() or (drawn & visible).any():
        return None
    ys, xs = np.nonzero(drawn)
    row = int(ys[0])
    shown = np.flatnonzero(visible[row])
    hint = f"row {row} shows columns {_runs(shown)}" if shown.size else f"nothing in row {row} shows"
    layout = f"the default {kind} layout" if config.source == Config.source else f"the {kind} layout of {config.source}"
    return (
        f"skyscreen-hw send: warning: nothing drawn, in cells ({_span(xs)}, {_span(ys)}), falls on an LED of"
        f" {layout} (the 32 x 32 canvas is stretched over its bounding box); {hint}"
    )


def add_parser(sub: Any) -> None:
    """The `send` subcommand and its own subcommands."""
    send = sub.add_parser("send", help="draw on the websocket canvas (text, pixel, rect, raw words)")
    send.add_argument("--url", help="the daemon's websocket (default: from the configuration's [websocket])")
    send.add_argument("--token", help="the daemon's [websocket] token (default: the configuration's)")
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
    config = load_config(getattr(args, "config", None))
    url = args.url or url_for(config)
    token = config.websocket.token if args.token is None else args.token
    message = message_for(args)
    asyncio.run(send_message(url, message, token))
    warning = _check_visible(message, config)
    if warning:
        print(warning, file=sys.stderr)
    return 0


def _check_visible(message: bytes, config: Config) -> str | None:
    drawn = drawn_cells(message)
    if not drawn.any():
        return None
    from skyscreen_hw import layouts

    try:
        layout = layouts.build(config)
    except SkyscreenError:
        return None  # the daemon reports a layout it cannot build; this is only a hint
    return unseen_warning(drawn, visible_cells(layout), config, layout.kind)
