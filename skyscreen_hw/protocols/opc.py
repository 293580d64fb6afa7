"""OpenPixelControl (http://openpixelcontrol.org): the message format and a sans-I/O stream decoder.

A message is ``channel`` (1 byte), ``command`` (1 byte), ``length`` (2 bytes, big-endian) and ``length``
bytes of data. Command 0 sets pixels: the data are RGB triplets from pixel 0 on. Channel 0 is every
channel; this display is channel 1 (the only one), so other channels are someone else's and ignored.
Command 255 is system-exclusive (vendor extensions): ignored. The decoder is fed whatever TCP hands over
and returns whole messages; it holds at most one message (64 KiB) whatever a client sends.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = 4
MAX_DATA = 0xFFFF  # the length field's limit
BROADCAST, OUR_CHANNEL = 0, 1
SET_PIXELS, SYSTEM_EXCLUSIVE = 0, 255

# what the decoder reports besides pixels; the input counts each kind
IGNORED_CHANNEL = "other channel"
IGNORED_COMMAND = "other command"
SYSEX = "system exclusive"


@dataclass(frozen=True)
class Message:
    channel: int
    command: int
    data: bytes


def message(data: bytes, channel: int = BROADCAST, command: int = SET_PIXELS) -> bytes:
    """One OPC message (what a client sends); ValueError past 65,535 data bytes."""
    if len(data) > MAX_DATA:
        raise ValueError(f"an OPC message carries at most {MAX_DATA} bytes, got {len(data)}")
    return struct.pack(">BBH", channel, command, len(data)) + data


class OpcDecoder:
    """Whole messages out of a byte stream; bounded: it buffers at most one message."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._need = HEADER  # bytes the current part (header or body) still needs in total

    @property
    def partial(self) -> bool:
        """A message has begun but is not whole yet (a slow client holds one)."""
        return len(self._buffer) > 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        """The messages ``data`` completes, in order."""
        out: list[Message] = []
        view = memoryview(data)
        while view:
            take = min(len(view), self._need - len(self._buffer))
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) < self._need:
                break
            if self._need == HEADER:
                length = (self._buffer[2] << 8) | self._buffer[3]
                if length:
                    self._need = HEADER + length
                    continue
            buf = self._buffer
            out.append(Message(buf[0], buf[1], bytes(buf[HEADER:])))
            self._buffer = bytearray()
            self._need = HEADER
        return out


def classify(msg: Message) -> str | None:
    """None when ``msg`` sets this display's pixels, else which kind of ignored message it is."""
    if msg.command == SYSTEM_EXCLUSIVE:
        return SYSEX
    if msg.command != SET_PIXELS:
        return IGNORED_COMMAND
    if msg.channel not in (BROADCAST, OUR_CHANNEL):
        return IGNORED_CHANNEL
    return None
