"""The instruction display end to end: a real daemon, real `websockets` clients, the recording and the simulator.

The daemon shows a 256 x 256 matrix with gamma 1, so LED (row, col) is exactly canvas pixel (row, col):
the recording is the canvas picture drawn over the (black) shared frame.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from skyscreen_hw.sources import instructions as ins
from skyscreen_hw.sources.canvas import Canvas
from skyscreen_hw.sources.font import glyph_bitmaps

T = Canvas.SIZE  # 256
C = Canvas.CELL  # 8
GLYPHS = glyph_bitmaps(C)


def display_config(name: str, extra: str = "") -> str:
    return textwrap.dedent(
        f"""
        outputs = []
        [frame]
        name = "{name}"
        width = {T}
        height = {T}
        [layout]
        type = "matrix"
        [color]
        gamma = 1.0
        [display]
        fps = 30
        [websocket]
        port = 0
        max_connections = 64
        idle_timeout = 3.0
        """
    ) + textwrap.dedent(extra)


class Display:
    """A running daemon and what it recorded."""

    def __init__(self, daemon, record: Path) -> None:
        self.daemon = daemon
        self.record = record
        daemon.wait_for_log("running:")
        self.url = re.search(r"ws://[\d.]+:\d+", daemon.log).group(0)

    def picture(self) -> np.ndarray:
        """The last recorded frame as the (256, 256, 3) canvas picture."""
        size = T * T * 3
        with self.record.open("rb") as f:
            f.seek(0, os.SEEK_END)
            frames = f.tell() // size
            if not frames:
                return np.zeros((T, T, 3), np.uint8)
            f.seek((frames - 1) * size)
            return np.frombuffer(f.read(size), np.uint8).reshape(T, T, 3)

    def cell(self, x: int, y: int) -> np.ndarray:
        return self.picture()[y * C : (y + 1) * C, x * C : (x + 1) * C]

    def wait_cell(self, x: int, y: int, expected: np.ndarray, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if np.array_equal(self.cell(x, y), expected):
                return
            time.sleep(0.03)
        raise AssertionError(f"cell ({x},{y}) never showed the expected picture; it shows\n{self.cell(x, y)[..., 0]}")

    def log_lines(self, text: str) -> list[str]:
        return [line for line in self.daemon.log.splitlines() if text in line]


def solid(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (C, C, 3))


def glyph(ch: str, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.where(GLYPHS[ord(ch)][..., None], np.array(rgb, np.uint8), 0).astype(np.uint8)


BLACK = solid((0, 0, 0))


@pytest.fixture
def display(display_name: str, daemon_factory, tmp_path: Path) -> Display:
    record = tmp_path / "canvas.rgb"
    return Display(daemon_factory(display_config(display_name), "--record", str(record)), record)


def run(coro):  # a test helper: run one scenario on a fresh event loop
    return asyncio.run(coro)


async def send_and_close(url: str, *messages: bytes | str) -> tuple[int | None, str]:
    """Send messages on one connection, then wait for the server to close it (or close after a moment)."""
    async with connect(url) as ws:
        for m in messages:
            await ws.send(m)
        try:
            await asyncio.wait_for(ws.wait_closed(), 1.0)
        except TimeoutError:
            await ws.close()
        return ws.close_code, ws.close_reason


async def draw(ws: ClientConnection, *word_list: int) -> None:
    await ws.send(ins.pack(list(word_list)))


# -- every command -----------------------------------------------------------------------------------------


def test_every_command_is_shown_in_the_recording(display: Display) -> None:
    async def scenario() -> None:
        async with connect(display.url) as ws:
            await draw(ws, ins.pixel(1, 3, 15, 0, 0))
            await draw(ws, ins.char(2, 3, 0, 3, 0, "K"))
            await draw(ws, *ins.colour_block(4, 3, 5, 4, 0, 0, 15))
            await draw(ws, ins.block_start(), *ins.block_text("Hi\nyo", 3, 3, 0))  # block mode from (0,0)
            await draw(ws, *ins.block_text("!", 0, 3, 3))  # block mode lasts across messages
            await draw(ws, ins.QUIT, ins.pixel(9, 9, 15, 15, 15))  # leaves block mode, then a pixel
            await asyncio.sleep(0.5)

    run(scenario())
    display.wait_cell(1, 3, solid((255, 0, 0)))
    display.wait_cell(2, 3, glyph("K", (0, 255, 0)))
    for x, y in [(4, 3), (5, 3), (4, 4), (5, 4)]:
        display.wait_cell(x, y, solid((0, 0, 255)))
    display.wait_cell(0, 0, glyph("H", (255, 255, 0)))
    display.wait_cell(1, 0, glyph("i", (255, 255, 0)))
    display.wait_cell(0, 1, glyph("y", (255, 255, 0)))  # "\n" went to the next line
    display.wait_cell(2, 1, glyph("!", (0, 255, 255)))
    display.wait_cell(9, 9, solid((255, 255, 255)))
    assert display.cell(6, 3).sum() == 0 and display.cell(3, 5).sum() == 0  # undrawn: the black frame


def test_quit_clears_the_session_drawing_and_closes_normally(display: Display) -> None:
    async def scenario() -> tuple[int | None, str]:
        async with connect(display.url) as other:
            await draw(other, ins.pixel(20, 20, 0, 15, 0))
            async with connect(display.url) as ws:
                await draw(ws, ins.pixel(21, 20, 15, 0, 0))
                await asyncio.sleep(0.3)
                display.wait_cell(21, 20, solid((255, 0, 0)))
                await draw(ws, ins.QUIT)
                await asyncio.wait_for(ws.wait_closed(), 3)
                code = ws.close_code, ws.close_reason
            await draw(other, ins.pixel(22, 20, 0, 0, 15))  # the other client carries on
            await asyncio.sleep(0.3)
            return code

    assert run(scenario()) == (1000, "quit")
    display.wait_cell(21, 20, BLACK)  # transparent again: the frame shows through
    display.wait_cell(20, 20, solid((0, 255, 0)))
    display.wait_cell(22, 20, solid((0, 0, 255)))


def test_two_clients_drawing_at_once_share_one_canvas(display: Display) -> None:
    async def client(x0: int, colour: tuple[int, int, int]) -> None:
        async with connect(display.url) as ws:
            for y in range(32):
                await draw(ws, *[ins.pixel(x, y, *colour) for x in range(x0, x0 + 16)])

    async def both() -> None:
        await asyncio.gather(client(0, (15, 0, 0)), client(16, (0, 0, 15)))

    run(both())
    expected = np.zeros((T, T, 3), np.uint8)
    expected[:, : T // 2] = (255, 0, 0)
    expected[:, T // 2 :] = (0, 0, 255)
    deadline = time.monotonic() + 5
    while not np.array_equal(display.picture(), expected) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert np.array_equal(display.picture(), expected)


def test_a_message_is_applied_whole_never_half(display: Display) -> None:
    """Every frame of the recording shows all of a 1024-pixel message or none of it."""

    async def scenario() -> None:
        async with connect(display.url) as ws:
            for colour in [(15, 0, 0), (0, 15, 0), (0, 0, 15), (15, 15, 15)] * 3:
                await draw(ws, *[ins.pixel(x, y, *colour) for y in range(32) for x in range(32)])
                await asyncio.sleep(0.02)

    run(scenario())
    time.sleep(0.3)
    frames = np.fromfile(display.record, np.uint8).reshape(-1, T, T, 3)
    uniform = [len(np.unique(f.reshape(-1, 3), axis=0)) == 1 for f in frames]
    assert len(frames) >= 4 and all(uniform)
    assert tuple(frames[-1, 0, 0]) == (255, 255, 255)


# -- bad input: the connection is closed, nothing is applied, everyone else carries on ---------------------


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes(), r"^word \d+ = 0x[0-9A-F]{8}: "),
        (ins.pack([ins.pixel(3, 3, 1, 1, 1)]) + b"\x20\x20\x00", r"^word 1 = 0x202000: message length 7"),
        (ins.pack([ins.pixel(3, 3, 1, 1, 1), 0x80808080]), r"^word 1 = 0x80808080: unknown command tag 100"),
        (ins.pack([ins.pixel(3, 3, 1, 1, 1), 0x2020F000]), r"^word 1 = 0x2020F000: colour byte 0xF0 has its top"),
        (ins.pack([ins.pixel(3, 3, 1, 1, 1), 0xFF010F00]), r"^word 1 = 0xFF010F00: colour block without its rect"),
    ],
    ids=["random-bytes", "ragged-length", "wrong-tag", "colour-top-bits", "colour-block-without-rectangle"],
)
def test_malformed_messages_close_1007_and_nothing_of_them_is_applied(
    display: Display, message: bytes, reason: str
) -> None:
    async def scenario() -> tuple[int | None, str]:
        async with connect(display.url) as bystander:
            await draw(bystander, ins.pixel(3, 3, 0, 0, 15))  # blue, before
            await asyncio.sleep(0.3)
            result = await send_and_close(display.url, message)  # would paint (3,3) first, then fails
            await draw(bystander, ins.pixel(4, 3, 0, 15, 0))  # the bystander's connection is still open
            await asyncio.sleep(0.3)
            return result

    code, text = run(scenario())
    assert code == 1007 and re.search(reason, text), (code, text)
    display.wait_cell(3, 3, solid((0, 0, 255)))  # still blue: no part of the bad message was applied
    display.wait_cell(4, 3, solid((0, 255, 0)))
    assert len(display.log_lines("closing (1007)")) == 1
    assert display.daemon.proc.poll() is None


def test_messages_sent_without_waiting_are_applied_up_to_a_malformed_one(display: Display) -> None:
    """Messages that arrive together are taken together: those before the bad one are all applied, it and
    those after it are not, and the reason names its word."""
    good = [ins.pack([ins.pixel(x, 7, 15, 0, 0), ins.pixel(x, 8, 0, 15, 0)]) for x in range(20)]
    bad = ins.pack([ins.pixel(25, 7, 0, 0, 15), 0x2020F000])
    after = [ins.pack([ins.pixel(x, 9, 15, 15, 15)]) for x in range(20)]
    code, text = run(send_and_close(display.url, *good, bad, *after))
    assert code == 1007 and text.startswith("word 1 = 0x2020F000: colour byte 0xF0"), (code, text)
    display.wait_cell(19, 8, solid((0, 255, 0)))
    time.sleep(0.3)
    picture = display.picture()
    red = np.zeros((C, 20 * C, 3), np.uint8)
    red[..., 0] = 255
    assert np.array_equal(picture[7 * C : 8 * C, : 20 * C], red)
    assert not picture[7 * C : 8 * C, 25 * C : 26 * C].any()  # the bad message's pixel is not drawn
    assert not picture[9 * C : 10 * C].any()  # nothing after it
    assert len(display.log_lines("closing (1007)")) == 1


def test_text_frames_are_closed_with_1003(display: Display) -> None:
    code, text = run(send_and_close(display.url, "hello"))
    assert code == 1003 and "binary" in text
    assert len(display.log_lines("closing (1003)")) == 1
    run(send_and_close(display.url, ins.pack([ins.pixel(0, 31, 15, 15, 0)])))
    display.wait_cell(0, 31, solid((255, 255, 0)))


def test_oversized_messages_are_refused_and_the_server_carries_on(
    display_name: str, daemon_factory, tmp_path: Path
) -> None:
    record = tmp_path / "r.rgb"
    d = Display(
        daemon_factory(display_config(display_name, "max_message_bytes = 4096\n"), "--record", str(record)), record
    )
    code, _ = run(send_and_close(d.url, ins.pack([ins.pixel(1, 1, 1, 1, 1)] * 2000)))
    assert code == 1009  # message too big, from the websockets library
    run(send_and_close(d.url, ins.pack([ins.pixel(2, 2, 15, 0, 15)])))
    d.wait_cell(2, 2, solid((255, 0, 255)))


def test_a_flood_of_1000_connections_is_bounded_and_others_carry_on(display: Display) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))

    async def one() -> str:
        try:
            ws = await connect(display.url, open_timeout=20)
        except InvalidStatus as exc:
            return f"http {exc.response.status_code}"
        except (OSError, TimeoutError, ConnectionClosed) as exc:
            return f"failed {type(exc).__name__}"
        return ws  # type: ignore[return-value]

    async def scenario() -> list:
        async with connect(display.url) as bystander:
            results = await asyncio.gather(*[one() for _ in range(1000)])
            await draw(bystander, ins.pixel(30, 30, 15, 8, 0))
            await asyncio.sleep(0.3)
            opened = [r for r in results if not isinstance(r, str)]
            for ws in opened:
                await ws.close()
            return [r if isinstance(r, str) else "open" for r in results]

    outcomes = run(scenario())
    assert outcomes.count("open") == 63  # 64 connections at most, the bystander included
    assert outcomes.count("http 503") == 1000 - 63
    display.wait_cell(30, 30, solid((255, 136, 0)))
    run(send_and_close(display.url, ins.pack([ins.pixel(31, 30, 15, 15, 15)])))  # slots are free again
    display.wait_cell(31, 30, solid((255, 255, 255)))


def test_a_client_that_sends_nothing_is_closed_after_the_idle_time(display: Display) -> None:
    async def scenario() -> tuple[float, int | None, str]:
        async with connect(display.url) as silent, connect(display.url) as busy:
            start = time.monotonic()
            for _ in range(12):  # busy keeps talking for longer than the idle time
                await draw(busy, ins.pixel(10, 10, 15, 0, 0))
                await asyncio.sleep(0.4)
            await asyncio.wait_for(silent.wait_closed(), 5)
            busy_open = busy.state.name
            return time.monotonic() - start, silent.close_code, f"{silent.close_reason}; busy {busy_open}"

    elapsed, code, text = run(scenario())
    assert code == 1000 and "idle for 3 s" in text and "busy OPEN" in text
    assert elapsed >= 3.0


def test_a_raw_tcp_client_that_never_handshakes_is_dropped(display: Display) -> None:
    async def scenario() -> bytes:
        host, port = display.url.removeprefix("ws://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            return await asyncio.wait_for(reader.read(), 8)  # the server closes it: EOF
        finally:
            writer.close()

    assert run(scenario()) == b""


def test_a_token_is_required_when_configured(display_name: str, daemon_factory, tmp_path: Path) -> None:
    record = tmp_path / "r.rgb"
    extra = 'host = "0.0.0.0"\ntoken = "s3cret"\n'
    d = Display(daemon_factory(display_config(display_name, extra), "--record", str(record)), record)
    url = d.url.replace("0.0.0.0", "127.0.0.1")

    async def refused(u: str, headers: dict | None = None) -> int:
        with pytest.raises(InvalidStatus) as caught:
            await connect(u, additional_headers=headers)
        return caught.value.response.status_code

    assert run(refused(url)) == 401
    assert run(refused(url + "/?token=wrong")) == 401
    run(send_and_close(url + "/?token=s3cret", ins.pack([ins.pixel(0, 0, 15, 0, 0)])))
    d.wait_cell(0, 0, solid((255, 0, 0)))

    async def with_header() -> None:
        async with connect(url, additional_headers={"Authorization": "Bearer s3cret"}) as ws:
            await draw(ws, ins.pixel(1, 0, 0, 15, 0))
            await asyncio.sleep(0.2)

    run(with_header())
    d.wait_cell(1, 0, solid((0, 255, 0)))


# -- browser pages: the Origin header -------------------------------------------------------------------------


async def refused_status(url: str, **kwargs) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as caught:
        await connect(url, **kwargs)
    response = caught.value.response
    return response.status_code, response.body.decode()


async def draw_once(url: str, word: int, **kwargs) -> None:
    async with connect(url, **kwargs) as ws:
        await draw(ws, word)  # the server applies what came before the close


def test_a_page_from_a_foreign_origin_is_refused_403_and_others_carry_on(display: Display) -> None:
    async def scenario() -> list[tuple[int, str]]:
        async with connect(display.url) as bystander:
            await draw(bystander, ins.pixel(5, 6, 0, 0, 15))
            results = [
                await refused_status(display.url, origin="http://evil.example"),
                await refused_status(display.url, origin="http://127.0.0.1:1"),  # same host, another port
                await refused_status(display.url, origin="null"),  # a sandboxed frame or a file
            ]
            await draw(bystander, ins.pixel(6, 6, 0, 15, 0))  # still connected and drawing
            await asyncio.sleep(0.3)
            return results

    results = run(scenario())
    assert results == [
        (403, f"origin {origin} is not allowed: add it to [websocket] origins\n")
        for origin in ("http://evil.example", "http://127.0.0.1:1", "null")
    ]
    display.wait_cell(5, 6, solid((0, 0, 255)))
    display.wait_cell(6, 6, solid((0, 255, 0)))
    lines = display.log_lines("refused a page from origin")
    assert len(lines) == 3 and "origin http://evil.example (HTTP 403; allow it in [websocket] origins)" in lines[0]
    assert display.daemon.proc.poll() is None


def test_the_daemons_own_origin_and_no_origin_are_accepted(display: Display) -> None:
    own = display.url.replace("ws://", "http://")  # a page served from the daemon's own host:port
    run(draw_once(display.url, ins.pixel(1, 9, 15, 0, 0), origin=own))
    run(draw_once(display.url, ins.pixel(2, 9, 0, 15, 0)))  # scripts send no Origin
    display.wait_cell(1, 9, solid((255, 0, 0)))
    display.wait_cell(2, 9, solid((0, 255, 0)))
    assert display.log_lines("refused") == []


def test_listed_origins_are_accepted(display_name: str, daemon_factory, tmp_path: Path) -> None:
    record = tmp_path / "r.rgb"
    extra = 'origins = ["http://mypi.local:8080", "https://Studio.example"]\n'
    d = Display(daemon_factory(display_config(display_name, extra), "--record", str(record)), record)
    run(draw_once(d.url, ins.pixel(3, 9, 15, 0, 0), origin="http://mypi.local:8080"))
    run(draw_once(d.url, ins.pixel(4, 9, 0, 15, 0), origin="https://studio.example:443"))  # the same origin
    d.wait_cell(3, 9, solid((255, 0, 0)))
    d.wait_cell(4, 9, solid((0, 255, 0)))
    assert run(refused_status(d.url, origin="http://mypi.local:8081"))[0] == 403
    assert run(refused_status(d.url, origin="http://studio.example"))[0] == 403  # http is not https


def test_an_origins_entry_that_is_no_origin_is_a_start_up_error(
    display_name: str, daemon_factory, tmp_path: Path
) -> None:
    d = daemon_factory(display_config(display_name, 'origins = ["mypi.local:8080"]\n'))
    assert d.proc.wait(30) == 1
    assert d.log.strip().splitlines()[-1] == (
        f"skyscreen-hw: error: {d.config_path}: [websocket] origins: 'mypi.local:8080' is not an origin:"
        " write it as a browser"
        ' sends it, scheme://host[:port] (e.g. "http://mypi.local:8080"), or "null"'
    )


# -- listeners without a token: only on loopback, socket activation too --------------------------------------


def activated_daemon(listening: socket.socket, config: Path, log: Path, *args: str) -> subprocess.Popen:
    """The daemon as skyscreen.socket starts it: `listening` as fd 3, LISTEN_PID and LISTEN_FDS set."""
    fd = listening.fileno()
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                "sh",
                "-c",
                'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -m skyscreen_hw "$@"',
                sys.executable,
                "--config",
                str(config),
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=(fd, 3),  # 3: the dup made in the child, kept open for the daemon
            preexec_fn=lambda: os.dup2(fd, 3),
        )


@pytest.mark.parametrize(("family", "wildcard"), [(socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")])
def test_an_activated_socket_on_all_interfaces_needs_a_token(
    display_name: str, tmp_path: Path, family: int, wildcard: str
) -> None:
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.bind((wildcard, 0))
    listening.listen(16)
    port = listening.getsockname()[1]
    shown = f"[{wildcard}]:{port}" if ":" in wildcard else f"{wildcard}:{port}"
    config, log = tmp_path / "open.toml", tmp_path / "open.log"
    config.write_text(display_config(display_name))  # host 127.0.0.1 in the file: the socket decides
    proc = activated_daemon(listening, config, log)
    try:
        assert proc.wait(30) == 1
    finally:
        proc.kill()
    lines = log.read_text().strip().splitlines()
    assert lines[-1] == (
        f"skyscreen-hw: error: [websocket] token: required: the websocket listens on {shown}, which is not a"
        " loopback address; set [websocket] token, or listen on 127.0.0.1 ([websocket] host, or ListenStream="
        " in skyscreen.socket)"
    ), lines
    assert "running:" not in log.read_text()

    config.write_text(display_config(display_name, 'token = "s3cret"\n'))  # with a token it starts
    record = tmp_path / "open.rgb"
    proc = activated_daemon(listening, config, log, "--record", str(record))
    listening.close()
    try:
        deadline = time.monotonic() + 15
        while "running:" not in log.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert "running:" in log.read_text(), log.read_text()
        loopback = "[::1]" if family == socket.AF_INET6 else "127.0.0.1"
        assert run(refused_status(f"ws://{loopback}:{port}"))[0] == 401
        run(draw_once(f"ws://{loopback}:{port}/?token=s3cret", ins.pixel(7, 1, 15, 15, 15)))
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    frames = np.fromfile(record, np.uint8).reshape(-1, T, T, 3)
    assert any((f[1 * C : 2 * C, 7 * C : 8 * C] == 255).all() for f in frames)  # the last one is black


# -- skyscreen-hw send ---------------------------------------------------------------------------------------


def send_cli(url: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "skyscreen_hw", "send", "--url", url, *args],
        input=stdin,
        capture_output=True,
        timeout=30,
    )


def test_send_cli_draws_text_pixels_rectangles_and_raw_words(display: Display) -> None:
    for args in (
        ["text", "3", "5", "Go!", "--color", "00ff00"],
        ["pixel", "7", "7", "--color", "f00"],
        ["rect", "8", "8", "9", "9", "--color", "blue"],
        ["words", "3F2F0F00", "0xFF010F0F", "2A2A2B2B"],
    ):
        result = send_cli(display.url, *args)
        assert result.returncode == 0, result.stderr
    display.wait_cell(3, 5, glyph("G", (0, 255, 0)))
    display.wait_cell(5, 5, glyph("!", (0, 255, 0)))
    display.wait_cell(7, 7, solid((255, 0, 0)))
    display.wait_cell(9, 9, solid((0, 0, 255)))
    display.wait_cell(31, 15, solid((255, 0, 0)))  # 3F2F0F00: pixel (31, 15), R 15 G 0 B 0
    display.wait_cell(10, 10, solid((255, 0, 255)))  # FF010F0F 2A2A2B2B: colour block (10,10)-(11,11)
    display.wait_cell(11, 11, solid((255, 0, 255)))


def test_send_cli_reads_words_from_stdin_and_block_text(display: Display) -> None:
    assert send_cli(display.url, "words", "-", stdin=b"3A2A0F0F\n3B2A0F0F\n").returncode == 0
    display.wait_cell(26, 10, solid((255, 0, 255)))
    display.wait_cell(27, 10, solid((255, 0, 255)))
    binary = ins.pack([ins.pixel(28, 10, 15, 0, 0)])
    assert send_cli(display.url, "words", "-", "--binary", stdin=binary).returncode == 0
    display.wait_cell(28, 10, solid((255, 0, 0)))
    assert send_cli(display.url, "text", "--block", "ab\\ncd", "--color", "white").returncode == 0
    display.wait_cell(0, 1, glyph("c", (255, 255, 255)))


def test_send_cli_reports_the_servers_rejection_and_an_unreachable_daemon(display: Display) -> None:
    result = send_cli(display.url, "words", "12345678")
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        f"skyscreen-hw: error: {display.url} closed the connection: 1007 word 0 = 0x12345678: "
        "unknown command tag 000 (001 pixel, 010 character, 0xFF block commands)"
    )
    result = send_cli("ws://127.0.0.1:9", "pixel", "1", "1")
    assert result.returncode == 1 and "cannot reach ws://127.0.0.1:9" in result.stderr.decode()
    assert len(result.stderr.decode().strip().splitlines()) == 1


# -- the simulator -------------------------------------------------------------------------------------------


def test_the_canvas_shows_in_the_simulator_snapshot(display_name: str, daemon_factory, tmp_path: Path) -> None:
    import pygame

    from skyscreen_hw import config, layouts
    from skyscreen_hw.outputs.simulator import pixel_positions

    snapshot = tmp_path / "snap.png"
    text = display_config(display_name).replace("outputs = []", "")
    d = daemon_factory(text, "--simulate", "--snapshot", str(snapshot))
    d.wait_for_log("running:")
    url = re.search(r"ws://[\d.]+:\d+", d.log).group(0)
    message = [
        ins.block_start(),
        *ins.block_text("\n" * 20 + " " * 18 + "Ok", 3, 3, 0),  # write block: "Ok" at (18, 20) and (19, 20)
        ins.QUIT,  # leaves block mode
        *ins.colour_block(0, 0, 15, 31, 15, 0, 0),  # colour block: the left half red (over the spaces)
        ins.char(20, 4, 0, 3, 0, "#"),  # write character
        ins.pixel(25, 10, 0, 0, 15),  # colour pixel
    ]
    run(send_and_close(url, ins.pack(message)))
    time.sleep(0.5)
    assert d.stop() == 0
    image = pygame.surfarray.array3d(pygame.image.load(str(snapshot))).transpose(1, 0, 2)  # (y, x, 3)
    layout = layouts.build(config.parse({"frame": {"width": T, "height": T}, "layout": {"type": "matrix"}}))
    px = pixel_positions(layout, image.shape[0])
    leds = image[px[:, 1], px[:, 0]].reshape(T, T, 3)

    def cell(x: int, y: int) -> np.ndarray:
        return leds[y * C : (y + 1) * C, x * C : (x + 1) * C]

    assert (leds[:, : T // 2] == (255, 0, 0)).all()
    assert np.array_equal(cell(20, 4), glyph("#", (0, 255, 0)))
    assert np.array_equal(cell(25, 10), solid((0, 0, 255)))
    assert np.array_equal(cell(18, 20), glyph("O", (255, 255, 0)))
    assert np.array_equal(cell(19, 20), glyph("k", (255, 255, 0)))
    drawn = sum(int(cell(x, y).sum()) for x, y in [(20, 4), (25, 10), (18, 20), (19, 20)])
    assert int(leds[:, T // 2 :].sum()) == drawn  # nothing else lit on the right half
