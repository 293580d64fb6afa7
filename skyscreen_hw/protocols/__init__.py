"""Network pixel protocols as pure codecs: packet builders and parsers, no sockets (sans I/O).

* ``ddp``: the Distributed Display Protocol (3waylabs): pixels by byte offset, a push per frame.
* ``e131``: ANSI E1.31-2016 (sACN): DMX512 universes in ACN root / framing / DMP layers, with
  universe synchronization.
* ``artnet``: Art-Net 4: ArtDmx by 15-bit port-address, ArtSync, ArtPoll and ArtPollReply.

Each module builds single packets (for tests, tools and the rare packet) and parses any datagram into a
frozen dataclass, raising `ProtocolError` for what is not a valid packet of its kind. The outputs send
whole frames through `PacketRows`: one preallocated buffer per controller holding every packet of a
frame at a fixed stride, headers written once, so a frame costs a copy of the pixels and a few header
bytes, never a Python loop per packet or per LED.
"""

from __future__ import annotations

import numpy as np

from skyscreen_hw.errors import SkyscreenError

__all__ = ["PacketRows", "ProtocolError", "wire_order_index"]


WHITE = 3  # the white channel's index in wire_order_index


class ProtocolError(SkyscreenError):
    """A datagram is not a valid packet of the protocol asked for (the message says what is wrong)."""


def wire_order_index(order: str) -> np.ndarray:
    """For each wire channel, the RGB channel it carries: "GRB" -> [1, 0, 2]; W (white) is 3."""
    return np.array(["RGBW".index(c) for c in order.upper()], dtype=np.intp)


class PacketRows:
    """Every packet of one frame in one ``(rows, stride)`` uint8 buffer: row ``i`` is packet ``i``.

    Each packet is ``header_bytes`` of header followed by up to ``per`` LEDs of ``len(order)`` channels;
    the last packet holds the remaining LEDs and may be shorter (``last_length``); ``pad_to_even`` adds a
    zero byte to a data part of odd length (Art-Net). The rows are contiguous, so the packets from row
    ``a`` to the end are one run of ``stride``-byte segments ending with a shorter one: exactly what
    one UDP segmentation offload send takes. The caller writes the headers once (``buffer[:, :h]``,
    ``buffer[-1, :h]`` for the last); `fill` then writes the LEDs of each frame in the wire's colour order.
    """

    def __init__(self, count: int, per: int, order: str, header_bytes: int, *, pad_to_even: bool = False) -> None:
        if count < 1 or per < 1:
            raise ValueError(f"PacketRows needs at least one LED and one LED a packet, got {count}, {per}")
        self.count, self.per, self.order, self.header_bytes = count, per, order.upper(), header_bytes
        self.channels = len(self.order)
        self.rows = -(-count // per)
        self.full_rows = count // per
        self.last_leds = count - (self.rows - 1) * per
        data = per * self.channels
        self.data_bytes = data + (data % 2 if pad_to_even else 0)  # data bytes of a full packet
        last = self.last_leds * self.channels
        self.last_data_bytes = last + (last % 2 if pad_to_even else 0)
        self.stride = header_bytes + self.data_bytes
        self.last_length = header_bytes + self.last_data_bytes
        self.buffer = np.zeros((self.rows, self.stride), dtype=np.uint8)
        end = header_bytes + data
        self._full = self.buffer[: self.full_rows, header_bytes:end].reshape(self.full_rows, per, self.channels)
        rest = self.count - self.full_rows * per
        self._rest = self.buffer[self.rows - 1, header_bytes : header_bytes + rest * self.channels].reshape(
            rest, self.channels
        )
        self._sources = None if self.order == "RGB" else tuple(wire_order_index(self.order).tolist())
        self._white = np.zeros(count, dtype=np.uint8) if "W" in self.order else None
        self._rgb = np.zeros((count, 3), dtype=np.uint8) if "W" in self.order else None

    @property
    def total_bytes(self) -> int:
        """Bytes of all packets of a frame, as sent (the last one shorter)."""
        return (self.rows - 1) * self.stride + self.last_length

    def row_offset(self, row: int) -> int:
        """The first LED of packet ``row``."""
        return row * self.per

    def view(self, first_row: int = 0, end_row: int | None = None) -> memoryview:
        """Packets ``first_row`` .. ``end_row - 1`` as one contiguous run of bytes (the last may be short)."""
        end = self.rows if end_row is None else end_row
        flat = memoryview(self.buffer).cast("B")
        stop = (end - 1) * self.stride + (self.last_length if end == self.rows else self.stride)
        return flat[first_row * self.stride : stop]

    def packet(self, row: int) -> memoryview:
        """One packet, as sent."""
        return self.view(row, row + 1)

    def fill(self, leds: np.ndarray) -> None:
        """Write ``leds`` ((count, 3) uint8 RGB) into every packet, in the wire's colour order.

        RGBW orders take the white channel as the grey part of each colour (min(R, G, B)), as SK6812
        strips on the ws281x output do. No allocation: every step writes into buffers made once.
        """
        src = leds
        if self._white is not None and self._rgb is not None:
            np.minimum.reduce(leds, axis=1, out=self._white)
            np.subtract(leds, self._white[:, None], out=self._rgb)
            src = self._rgb
        n = self.full_rows * self.per
        full = src[:n].reshape(self.full_rows, self.per, 3)
        rest = src[n:]
        if self._sources is None:
            np.copyto(self._full, full)
            np.copyto(self._rest, rest)
            return
        for channel, source in enumerate(self._sources):
            if source == WHITE and self._white is not None:
                np.copyto(self._full[..., channel], self._white[:n].reshape(self.full_rows, self.per))
                np.copyto(self._rest[:, channel], self._white[n:])
            else:
                np.copyto(self._full[..., channel], full[..., source])
                np.copyto(self._rest[:, channel], rest[:, source])
