"""The live view: LiveView's publishing, the /live encoders, viewers on a real server, and a viewer that
never reads against a real dome daemon (the frame rate and the daemon's memory stay where they were)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import socket
import statistics
import textwrap
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, NegotiationError
from websockets.extensions.permessage_deflate import PerMessageDeflate

from skyscreen_hw import config as configuration
from skyscreen_hw import layouts
from skyscreen_hw.config import WebsocketConfig
from skyscreen_hw.net import web
from skyscreen_hw.outputs.base import Output
from skyscreen_hw.outputs.live import LivePicture, LiveView
from skyscreen_hw.sources.canvas import Canvas
from skyscreen_hw.sources.websocket import InstructionServer

LOG = logging.getLogger("skyscreen.test")


def matrix(height: int = 12, width: int = 16, serpentine: bool = True) -> layouts.Layout:
    cfg = configuration.parse(
        {"frame": {"height": height, "width": width}, "layout": {"type": "matrix", "serpentine": serpentine}}, "(t)"
    )
    return layouts.build(cfg)


def dome() -> layouts.Layout:
    return layouts.build(configuration.parse({"layout": {"serpentine": True}}, "(t)"))


class Named(Output):
    def __init__(self, name: str, kind: str) -> None:
        super().__init__(name)
        self.kind = kind

    def show(self, leds: np.ndarray) -> None:
        pass


def leds_of(layout: layouts.Layout, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (layout.count, 3), np.uint8)


# -- LiveView -------------------------------------------------------------------------------------------------


def test_liveview_publishes_only_changed_pictures_and_only_while_watched() -> None:
    layout = matrix()
    live = LiveView(layout, LOG)
    a, b = leds_of(layout, 1), leds_of(layout, 2)
    live.show(a)
    assert live.picture.leds == b""  # nobody watches: no copy at all
    live.viewers = 1
    live.show(a)
    first = live.picture
    assert first.leds == a.tobytes() and live.stats.frames_sent == 1
    a[0] = 0  # the caller reuses its array: the picture is a copy
    assert live.picture.leds == first.leds
    live.show(np.frombuffer(first.leds, np.uint8).reshape(-1, 3))  # the same picture again (keepalive)
    assert live.picture is first
    live.show(b)
    assert live.picture.version == first.version + 1 and live.picture.leds == b.tobytes()
    live.viewers = 0
    live.show(b)
    assert live.picture.leds == b""  # a later viewer never gets a stale picture


def test_liveview_follows_the_layout_and_lists_the_outputs_the_page_shows() -> None:
    layout = matrix()
    live = LiveView(layout, LOG)
    parts = [
        (slice(0, 100), Named("serial /dev/ttyACM0", "serial")),
        (slice(100, 192), Named("simulator", "simulator")),
        (slice(0, 192), Named("recording x.rgb", "record")),
        (slice(0, 192), live),
    ]
    live.follow(layout, parts)
    picture = live.picture
    assert picture.generation == 1
    assert [(o.name, o.first, o.count) for o in picture.outputs] == [
        ("serial /dev/ttyACM0", 0, 100),
        ("simulator", 100, 92),
    ]
    live.follow(layout, parts)
    assert live.picture is picture  # nothing changed
    other = matrix(6, 8)
    live.follow(other, parts[:1])
    assert live.picture.generation == 2 and live.picture.layout is other and live.name == "live view (48 LEDs)"


# -- encoders --------------------------------------------------------------------------------------------------


def unpacked(text: str) -> np.ndarray:
    """What the page does: base64, inflate, little-endian int32 differences summed."""
    return np.cumsum(np.frombuffer(zlib.decompress(base64.b64decode(text)), "<i4")).astype(np.int64)


@pytest.mark.parametrize("scale", [1, 3])
def test_the_layout_message_carries_positions_frame_pixels_and_outputs(scale: int) -> None:
    layout = matrix()
    parts = [(slice(0, 192), Named("serial x", "serial"))]
    live = LiveView(layout, LOG)
    live.follow(layout, parts)
    message = json.loads(web.layout_message(live.picture, scale))
    sent = np.arange(0, layout.count, scale)
    assert message["type"] == "layout" and message["kind"] == "matrix"
    assert (message["count"], message["leds"], message["scale"], message["frame"]) == (len(sent), 192, scale, [12, 16])
    steps = unpacked(message["positions"])
    xy = np.column_stack([steps[: len(sent)], steps[len(sent) :]]) / message["position_steps"]
    assert np.abs(xy - layout.normalized_positions()[sent]).max() <= 0.5 / web.POSITION_STEPS
    assert np.array_equal(unpacked(message["frame_index"]), layout.frame_index[sent])
    assert message["outputs"] == [{"name": "serial x", "kind": "serial", "first": 0, "count": 192}]
    assert message["canvas"]["size"] == Canvas.SIZE and message["canvas"]["cell"] == Canvas.CELL


def test_the_dome_layout_message_is_small() -> None:
    layout = dome()
    picture = LivePicture(layout, (), 1, 1, b"")
    message = web.layout_message(picture, 1)
    assert len(message) < 64_000  # 103,680 LEDs' positions and frame pixels
    assert np.array_equal(unpacked(json.loads(message)["frame_index"]), layout.frame_index)


def test_deflate_makes_one_permessage_deflate_payload() -> None:
    raw = bytes(range(256)) * 500
    packed = web.deflate(raw)
    assert isinstance(packed, web.Deflated) and len(packed) < len(raw) // 10
    assert zlib.decompressobj(-zlib.MAX_WBITS).decompress(packed + b"\x00\x00\xff\xff") == raw


def test_the_deflate_policy_skips_compression_for_a_while_after_it_did_not_pay() -> None:
    policy = web.DeflatePolicy(pays=0.75, retry=2.0)
    assert policy.worth_trying(0.0)
    assert policy.record(1000, 100, 0.0) and policy.worth_trying(0.1)
    assert not policy.record(1000, 900, 1.0)
    assert not policy.worth_trying(2.9) and policy.worth_trying(3.0)


def test_encodings_compress_each_picture_once_and_send_noise_raw() -> None:
    layout = matrix(48, 64)
    smooth = np.zeros((layout.count, 3), np.uint8)
    smooth[:, 0] = np.arange(layout.count) % 7
    picture = LivePicture(layout, (), 1, 1, smooth.tobytes())
    encodings = web.Encodings()
    first = encodings.message(picture, 1, True)
    assert isinstance(first, web.Deflated) and encodings.message(picture, 1, True) is first
    assert encodings.message(picture, 1, False) == picture.leds
    assert encodings.compressed == 1 and encodings.paid == 1
    quarter = encodings.message(picture, 4, False)
    assert quarter == smooth[::4].tobytes()
    noise = LivePicture(layout, (), 1, 2, leds_of(layout, 3).tobytes())
    sent = encodings.message(noise, 1, True)
    assert sent == noise.leds and not isinstance(sent, web.Deflated)
    assert encodings.compressed == 2 and encodings.paid == 1
    again = LivePicture(layout, (), 1, 3, smooth.tobytes())
    assert encodings.message(again, 1, True) == again.leds  # within the retry time: not even tried
    assert encodings.compressed == 2


def test_the_deflate_offer_is_accepted_without_context_takeover_or_declined() -> None:
    factory = web.SharedDeflateFactory()
    params, extension = factory.process_request_params([("client_max_window_bits", None)], [])
    assert params == [("server_no_context_takeover", None)] and isinstance(extension, web.SharedDeflate)
    for bad in ([("server_max_window_bits", "10")], [("x_unknown", None)]):
        with pytest.raises(NegotiationError):
            factory.process_request_params(bad, [])


# -- viewers on a real server ----------------------------------------------------------------------------------


class Server:
    """An InstructionServer with a LiveView on its own runtime; ``show`` plays the frame clock."""

    def __init__(self, layout: layouts.Layout) -> None:
        self.layout = layout
        self.live = LiveView(layout, LOG)
        self.live.follow(layout, [])
        self.server = InstructionServer(WebsocketConfig(port=0, max_connections=64), Canvas(), LOG, live=self.live)
        self.server.start()
        self.url = f"ws://127.0.0.1:{self.server.port}/live"

    def show(self, leds: np.ndarray) -> None:
        self.live.show(leds)

    def show_until(self, leds: np.ndarray, done: threading.Event) -> None:
        """Show ``leds`` every 10 ms until ``done`` (as the clock's keepalive would, and for viewers joining)."""
        while not done.wait(0.01):
            self.live.show(leds)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server(matrix(48, 64))
    try:
        yield s
    finally:
        s.server.stop()


def clock(server: Server, pictures: list[np.ndarray], period: float = 0.005) -> threading.Thread:
    """A thread showing each picture in turn, then the last one until the viewers have it."""

    def run() -> None:
        for leds in pictures:
            server.show(leds)
            time.sleep(period)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_viewer_gets_the_layout_then_what_the_outputs_get(server: Server) -> None:
    picture = leds_of(server.layout, 4)
    done = threading.Event()
    threading.Thread(target=server.show_until, args=(picture, done), daemon=True).start()

    async def view(**kwargs) -> tuple[dict, bytes, list]:
        async with connect(server.url + "?scale=1", **kwargs) as ws:
            layout = json.loads(await asyncio.wait_for(ws.recv(), 10))
            frame = await asyncio.wait_for(ws.recv(), 10)
            return layout, frame, ws.protocol.extensions

    try:
        layout, frame, extensions = asyncio.run(view())  # websockets offers deflate, as browsers do
        assert layout["count"] == server.layout.count and frame == picture.tobytes()
        assert [type(e) for e in extensions] == [PerMessageDeflate]
        _, frame, extensions = asyncio.run(view(compression=None))
        assert frame == picture.tobytes() and extensions == []
    finally:
        done.set()


def test_a_scaled_view_sends_every_nth_led_with_a_matching_layout(server: Server) -> None:
    picture = leds_of(server.layout, 5)
    done = threading.Event()
    threading.Thread(target=server.show_until, args=(picture, done), daemon=True).start()

    async def view() -> tuple[dict, bytes]:
        async with connect(server.url.replace("/live", "/live?scale=4")) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 10)), await asyncio.wait_for(ws.recv(), 10)

    try:
        layout, frame = asyncio.run(view())
    finally:
        done.set()
    assert layout["count"] == server.layout.count // 4 == len(frame) // 3
    assert frame == picture[::4].tobytes()


def test_a_viewer_gets_at_most_its_fps_and_always_the_newest_picture(server: Server) -> None:
    pictures = [np.full((server.layout.count, 3), i, np.uint8) for i in range(1, 121)]  # 120 pictures, ~0.6 s

    async def view() -> tuple[list[int], float]:
        async with connect(server.url.replace("/live", "/live?fps=5")) as ws:
            await asyncio.wait_for(ws.recv(), 10)  # the layout, at once
            start = time.monotonic()
            thread = clock(server, pictures)
            seen: list[int] = []
            while not seen or seen[-1] != 120:
                seen.append((await asyncio.wait_for(ws.recv(), 10))[0])
            thread.join()
            return seen, time.monotonic() - start

    seen, elapsed = asyncio.run(view())
    assert len(seen) <= 5 * elapsed + 2 and len(seen) < 60  # paced, not one message per picture shown
    assert seen == sorted(seen) and seen[-1] == 120  # in order, ending with the newest


def test_a_viewer_that_sends_something_is_closed(server: Server) -> None:
    async def view(**kwargs) -> tuple[int | None, str]:
        async with connect(server.url, **kwargs) as ws:
            await ws.send("hello")
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            return ws.close_code, ws.close_reason

    assert asyncio.run(view(compression=None)) == (1003, "the live view takes no messages")
    assert asyncio.run(view()) == (1002, "the live view takes no messages")  # compressed: refused unread


def test_viewers_are_limited_and_a_new_layout_reaches_the_open_ones(server: Server) -> None:
    async def scenario() -> tuple[int, str]:
        opened = [await connect(server.url) for _ in range(web.MAX_VIEWERS)]
        try:
            with pytest.raises(InvalidStatus) as caught:
                await connect(server.url)
            refused = caught.value.response
            await asyncio.wait_for(opened[0].recv(), 10)  # the first layout, before any picture
            other = matrix(6, 8)
            server.live.follow(other, [])
            server.show(leds_of(other, 6))
            layout = json.loads(await asyncio.wait_for(opened[0].recv(), 10))
            frame = await asyncio.wait_for(opened[0].recv(), 10)
            assert layout["count"] == 48 and len(frame) == 48 * 3
            return refused.status_code, refused.body.decode()
        finally:
            for ws in opened:
                await ws.close()

    assert asyncio.run(scenario()) == (503, f"too many live views (limit {web.MAX_VIEWERS})\n")


# -- a viewer that never reads, against a real dome daemon ------------------------------------------------------


def rss_kib(pid: int) -> int:
    return int(re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1))


def status(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
        return json.loads(r.read())


def fps_samples(port: int, seconds: int) -> list[float]:
    samples = []
    for _ in range(seconds):
        time.sleep(1.0)
        samples.append(status(port)["fps"])
    return samples


def stuck_viewer(port: int) -> socket.socket:
    """A raw client: the /live handshake, then it never reads again (its receive buffer kept small)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(b"0123456789abcdef").decode()
    sock.sendall(
        (
            f"GET /live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: read nothing past the handshake
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_a_viewer_that_never_reads_slows_nothing_and_holds_no_memory(
    display_name: str, daemon_factory, tmp_path: Path
) -> None:
    import subprocess
    import sys

    text = textwrap.dedent(
        f"""
        outputs = []
        [frame]
        name = "{display_name}"
        [layout]
        serpentine = true
        [display]
        fps = 30
        [websocket]
        port = 0
        """
    )
    daemon = daemon_factory(text)
    daemon.wait_for_log("running:")
    port = int(re.search(r"ws://[\d.]+:(\d+)", daemon.log).group(1))
    cfg = str(daemon.config_path)
    demo = subprocess.Popen([sys.executable, "-m", "skyscreen_hw", "--config", cfg, "demo", "spiral", "--fps", "30"])
    try:

        async def watch_once() -> None:  # a well-behaved viewer first: the layout message is made and kept
            async with connect(f"ws://127.0.0.1:{port}/live", max_size=None) as ws:
                await asyncio.wait_for(ws.recv(), 10)
                for _ in range(10):
                    await asyncio.wait_for(ws.recv(), 10)

        asyncio.run(watch_once())
        before = fps_samples(port, 4)
        rss_before = rss_kib(daemon.proc.pid)
        sock = stuck_viewer(port)
        try:
            during = fps_samples(port, 10)
            rss_after = rss_kib(daemon.proc.pid)
            live = next(o for o in status(port)["outputs"] if o["kind"] == "live view")
        finally:
            sock.close()
    finally:
        demo.terminate()
        demo.wait(10)
    assert statistics.median(during) >= 0.9 * statistics.median(before), (before, during)
    assert min(during) >= 0.75 * statistics.median(before), (before, during)
    assert rss_after - rss_before < 4096, f"VmRSS grew by {rss_after - rss_before} KiB"
    assert live["frames_sent"] > 200  # the clock kept publishing while the viewer sat there


def test_a_viewer_whose_link_cannot_keep_up_gets_compressed_pictures() -> None:
    s = Server(matrix(360, 288))
    try:
        base = np.zeros((s.layout.count, 3), np.uint8)
        base[:, 0] = np.arange(s.layout.count) % 200  # compressible, like a pattern
        stop = threading.Event()

        def clock() -> None:
            k = 0
            while not stop.wait(1 / 60):
                k += 1
                base[:, 1] = k % 256
                s.show(base)

        thread = threading.Thread(target=clock, daemon=True)
        thread.start()

        async def slow_viewer() -> list[bytes]:
            frames = []
            # offers deflate, as browsers do; reads nothing ahead of the test, through a small window
            async with connect(s.url, max_size=None, max_queue=1, close_timeout=1) as ws:
                ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
                await asyncio.wait_for(ws.recv(), 10)
                for _ in range(6):
                    await asyncio.sleep(0.3)  # a link far slower than 9 MB/s
                    frames.append(await asyncio.wait_for(ws.recv(), 10))
            return frames

        try:
            frames = asyncio.run(slow_viewer())
        finally:
            stop.set()
            thread.join()
        encodings = s.server._streams.encodings
        assert encodings.compressed >= 1 and encodings.paid >= 1
        assert all(len(f) == s.layout.count * 3 for f in frames)  # inflated by the client: the same pictures
    finally:
        s.server.stop()


def test_a_reload_that_changes_the_layout_sends_viewers_the_new_one(display_name: str, daemon_factory) -> None:
    import os
    import signal

    text = textwrap.dedent(
        f"""
        outputs = []
        [frame]
        name = "{display_name}"
        width = 16
        height = 12
        [layout]
        type = "matrix"
        [websocket]
        port = 0
        """
    )
    daemon = daemon_factory(text)
    daemon.wait_for_log("running:")
    port = int(re.search(r"ws://[\d.]+:(\d+)", daemon.log).group(1))

    async def watch() -> tuple[dict, dict, bytes]:
        async with connect(f"ws://127.0.0.1:{port}/live") as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            daemon.config_path.write_text(text.replace('type = "matrix"', 'type = "matrix"\nwidth = 8\nheight = 6'))
            os.kill(daemon.proc.pid, signal.SIGHUP)
            while True:
                message = await asyncio.wait_for(ws.recv(), 10)
                if isinstance(message, str):
                    second = json.loads(message)
                    return first, second, await asyncio.wait_for(ws.recv(), 10)

    first, second, frame = asyncio.run(watch())
    assert (first["count"], second["count"], len(frame)) == (192, 48, 48 * 3)
    assert status(port)["leds"] == 48
    assert [o["leds"] for o in status(port)["outputs"] if o["kind"] == "live view"] == [48]
