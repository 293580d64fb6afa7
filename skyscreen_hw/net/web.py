"""The `/live` websocket: what the LEDs show, streamed to browsers. Pure encoders plus a thin asyncio shell.

A viewer gets the layout once as a JSON text message (``layout_message``), then each new picture as a
binary message of ``count * 3`` bytes, RGB, in wiring order (every ``scale``-th LED with ``?scale=``),
exactly what the outputs get. Per viewer there is never more than one frame in flight: the next send
starts when the previous one completed, with the newest picture, at most ``fps`` times a second; a slow
viewer simply gets fewer frames. Nothing is queued per viewer, and the frame clock never waits.

Per-message deflate, where it pays: a viewer whose browser offers permessage-deflate gets it with
``server_no_context_takeover``, so every message is compressed on its own and one compression of a
picture serves every viewer. Compression costs the daemon CPU (1.5 ms for a dome frame) and saves only
bandwidth, so a viewer gets compressed pictures only while its link is the bottleneck: after a send
that took more than ``BEHIND`` of its frame period, for ``BEHIND_HOLD`` seconds (a phone on Wi-Fi; a
browser on the same machine or a wired LAN keeps getting raw pictures). Each picture is compressed (zlib
level 1) at most once, when such a viewer is about to send it; when a compressed picture is not smaller
than ``DEFLATE_PAYS`` of the raw one (noise), pictures go uncompressed (RSV1 clear, as RFC 7692
allows) for ``DEFLATE_RETRY`` seconds before trying again. Numbers in docs/web.md.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
import zlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, NegotiationError, ProtocolError
from websockets.extensions.base import Extension, ServerExtensionFactory
from websockets.frames import Frame
from websockets.typing import ExtensionName, ExtensionParameter

from skyscreen_hw.net.http import LiveOptions
from skyscreen_hw.outputs.live import LivePicture, LiveView
from skyscreen_hw.sources.canvas import Canvas

LAYOUTS_KEPT = 8  # layout messages kept (per generation and scale)
MAX_VIEWERS = 16  # /live connections at once (each also counts in [websocket] max_connections)
DEFLATE_LEVEL = 1  # zlib level: 8x smaller than raw on the spiral demo in 1.1 ms; level 6 gains 10% for 2x
DEFLATE_PAYS = 0.75  # compressed / raw at most this, or pictures go raw for a while
DEFLATE_RETRY = 2.0  # seconds of raw pictures after compression did not pay
BEHIND = 0.5  # a send longer than this part of the viewer's frame period: its link is the bottleneck
BEHIND_HOLD = 5.0  # seconds a viewer that fell behind gets compressed pictures, before raw is tried again
POSITION_STEPS = 65535  # positions are sent quantised to this many steps across the unit square
CLOSE_UNSUPPORTED = 1003
_SYNC_TAIL = b"\x00\x00\xff\xff"


# -- the layout message --------------------------------------------------------------------------------------


def _packed(values: np.ndarray) -> str:
    """int32 differences (the first from 0), little-endian, zlib, base64: the page undoes it in that order."""
    diffs = np.diff(values.astype(np.int64), prepend=0).astype("<i4")
    return base64.b64encode(zlib.compress(diffs.tobytes(), 9)).decode()


def layout_message(picture: LivePicture, scale: int) -> str:
    """The JSON text a viewer gets first (and again after a reload changed the layout or outputs).

    ``positions``: x then y of each LED sent, in the unit square (aspect kept, as the layout drawing),
    as ``_packed`` integers of 1/65535; ``frame_index``: each LED's frame pixel (row * width + column),
    ``_packed``; ``dot``: the typical distance between neighbouring LEDs; ``canvas``: the instruction
    canvas's box in the same unit (it is stretched over the layout's bounding box), its size in pixels and
    cells; ``outputs``: which LEDs each output drives (full wiring indices).
    """
    layout = picture.layout
    sent = np.arange(0, layout.count, scale)
    unit = layout.normalized_positions()
    pos = unit[sent]
    steps = np.round(pos * POSITION_STEPS).astype(np.int64)
    gaps = np.hypot(*np.diff(pos, axis=0).T) if len(pos) > 1 else np.ones(1)
    gaps = gaps[gaps > 0]
    dot = float(np.median(gaps)) if gaps.size else 1.0
    lo, hi = unit.min(axis=0), unit.max(axis=0)
    message: dict[str, Any] = {
        "type": "layout",
        "kind": layout.kind,
        "count": len(sent),
        "leds": layout.count,
        "scale": scale,
        "frame": list(layout.frame_shape),
        "strands": layout.strands,
        "dot": round(dot, 6),
        "positions": _packed(np.concatenate([steps[:, 0], steps[:, 1]])),
        "position_steps": POSITION_STEPS,
        "frame_index": _packed(layout.frame_index[sent]),
        "encoding": "base64 of zlib of little-endian int32 differences",
        "canvas": {
            "box": [round(float(v), 6) for v in (lo[0], lo[1], hi[0], hi[1])],
            "size": Canvas.SIZE,
            "cell": Canvas.CELL,
        },
        "outputs": [{"name": o.name, "kind": o.kind, "first": o.first, "count": o.count} for o in picture.outputs],
    }
    return json.dumps(message, separators=(",", ":"))


# -- pictures as messages ------------------------------------------------------------------------------------


class Deflated(bytes):
    """A message payload already compressed for permessage-deflate (RSV1 is set when it is sent)."""


def deflate(data: bytes, level: int = DEFLATE_LEVEL) -> Deflated:
    """``data`` as one permessage-deflate message without context takeover (RFC 7692 section 7.2.1)."""
    packer = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    packed = packer.compress(data) + packer.flush(zlib.Z_SYNC_FLUSH)
    return Deflated(packed[: -len(_SYNC_TAIL)] if packed.endswith(_SYNC_TAIL) else packed)


class DeflatePolicy:
    """Whether compressing pictures pays: after one that did not, skip compression for ``retry`` seconds."""

    def __init__(self, pays: float = DEFLATE_PAYS, retry: float = DEFLATE_RETRY) -> None:
        self.pays = pays
        self.retry = retry
        self._skip_until = -float("inf")

    def worth_trying(self, now: float) -> bool:
        return now >= self._skip_until

    def record(self, raw: int, packed: int, now: float) -> bool:
        """Note one compression's sizes; whether it paid."""
        paid = packed <= self.pays * raw
        if not paid:
            self._skip_until = now + self.retry
        return paid


class Encodings:
    """Each picture as a message, made once and shared by every viewer: per scale, raw and compressed."""

    def __init__(self, policy: DeflatePolicy | None = None) -> None:
        self.policy = policy or DeflatePolicy()
        self._version = -1
        self._raw: dict[int, bytes] = {}
        self._packed: dict[int, bytes] = {}
        self.compressed = 0  # pictures compressed, and how many of them paid
        self.paid = 0

    def message(self, picture: LivePicture, scale: int, deflating: bool) -> bytes:
        """The message for this picture and scale: a Deflated payload when ``deflating`` and it pays."""
        if picture.version != self._version:
            self._version = picture.version
            self._raw.clear()
            self._packed.clear()
        raw = self._raw.get(scale)
        if raw is None:
            leds = np.frombuffer(picture.leds, np.uint8).reshape(-1, 3)
            raw = picture.leds if scale == 1 else leds[::scale].tobytes()
            self._raw[scale] = raw
        if not deflating:
            return raw
        packed = self._packed.get(scale)
        if packed is None:
            now = time.monotonic()
            if not self.policy.worth_trying(now):
                return raw
            candidate = deflate(raw)
            self.compressed += 1
            if self.policy.record(len(raw), len(candidate), now):
                self.paid += 1
                packed = candidate
            else:
                packed = raw
            self._packed[scale] = packed
        return packed


class SharedDeflate(Extension):
    """permessage-deflate for `/live`: sends pre-compressed ``Deflated`` payloads with RSV1, others as they are.

    The viewer sends no data on `/live` (the handler closes a connection that does), so a compressed
    message from it is a protocol error rather than something to inflate.
    """

    name = ExtensionName("permessage-deflate")

    def encode(self, frame: Frame) -> Frame:
        if isinstance(frame.data, Deflated):
            return replace(frame, rsv1=True)
        return frame

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        if frame.rsv1:
            raise ProtocolError("the live view takes no messages")
        return frame


class SharedDeflateFactory(ServerExtensionFactory):
    """Accepts a permessage-deflate offer with ``server_no_context_takeover`` (one compression for all).

    An offer that limits the server's window below 15 bits is declined: the viewer then gets raw frames.
    """

    name = ExtensionName("permessage-deflate")

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], Extension]:
        if any(ext.name == self.name for ext in accepted_extensions):
            raise NegotiationError("permessage-deflate is already accepted")
        for name, value in params:
            if name == "server_max_window_bits" and value not in (None, "15"):
                raise NegotiationError("the live view compresses with a 15-bit window")
            if name not in (
                "server_no_context_takeover",
                "client_no_context_takeover",
                "server_max_window_bits",
                "client_max_window_bits",
            ):
                raise NegotiationError(f"unknown permessage-deflate parameter {name}")
        return [("server_no_context_takeover", None)], SharedDeflate()


LIVE_EXTENSIONS = [SharedDeflateFactory()]


def deflating(ws: ServerConnection) -> bool:
    return any(isinstance(ext, SharedDeflate) for ext in ws.protocol.extensions)


# -- the asyncio shell ---------------------------------------------------------------------------------------


class LiveStreams:
    """The `/live` viewers of one LiveView, on the network runtime's loop."""

    def __init__(self, live: LiveView, log: logging.Logger) -> None:
        self.live = live
        self.log = log
        self.encodings = Encodings()
        self._layouts: dict[tuple[int, int], asyncio.Future[str]] = {}
        self.frames_sent = 0

    @property
    def viewers(self) -> int:
        return self.live.viewers

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.live.attach(loop)

    async def serve(self, ws: ServerConnection, options: LiveOptions) -> None:
        """One viewer: stream until it goes; a message from it closes the connection (1003)."""
        self.live.viewers += 1
        stream = asyncio.get_running_loop().create_task(self._stream(ws, options))
        try:
            async for _ in ws:
                await ws.close(CLOSE_UNSUPPORTED, "the live view takes no messages")
                break
        except ConnectionClosed:
            pass
        finally:
            self.live.viewers -= 1
            stream.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await stream

    async def _stream(self, ws: ServerConnection, options: LiveOptions) -> None:
        loop = asyncio.get_running_loop()
        can_compress = deflating(ws)
        behind_until = -float("inf")
        period = 1.0 / options.fps
        seen, generation = -1, self.live.picture.generation
        await ws.send(await self._layout(self.live.picture, options))  # at once: the page draws the LEDs dark
        due = loop.time()
        while True:
            now = loop.time()
            if now < due:  # the viewer's rate first, then the newest picture: a viewer slower than the
                await asyncio.sleep(due - now)  # clock finds one at once and the clock never wakes the loop
            picture = await self.live.changed(seen)
            if picture.generation != generation:
                await ws.send(await self._layout(picture, options))
                generation = picture.generation
            start = loop.time()
            compress = can_compress and start < behind_until
            await ws.send(self.encodings.message(picture, options.scale, compress))  # returns once written out
            took = loop.time() - start
            if can_compress and took > BEHIND * period:
                behind_until = loop.time() + BEHIND_HOLD
            self.frames_sent += 1
            seen = picture.version
            due = max(due + period, start)

    async def _layout(self, picture: LivePicture, options: LiveOptions) -> str:
        """The layout message, made once per generation and scale in a worker thread (the dome: ~50 ms)."""
        key = (picture.generation, options.scale)
        future = self._layouts.get(key)
        if future is None:
            kept = [(k, f) for k, f in self._layouts.items() if k[0] == picture.generation]
            self._layouts = dict(kept[-(LAYOUTS_KEPT - 1) :])
            future = asyncio.ensure_future(asyncio.to_thread(layout_message, picture, options.scale))
            self._layouts[key] = future
        return await asyncio.shield(future)
