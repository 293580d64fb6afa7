"""DDP, the Distributed Display Protocol (3waylabs), version 1: pixel data by byte offset, shown on push.

A packet is a 10-byte header (14 with a timecode), then data::

    byte 0     flags: V V x T S R Q P  (version 01 = 0x40, T timecode, S storage, R reply, Q query, P push)
    byte 1     x x x x n n n n: sequence number 1-15 in the low nibble (0 = not used)
    byte 2     data type: C R TTT SSS (TTT 001 RGB, 011 RGBW; SSS 011 = 8 bits a channel): 0x0B, 0x1B
    byte 3     destination ID: 1 = the default output device (the display)
    bytes 4-7  data offset in bytes, 32-bit big-endian
    bytes 8-9  data length in bytes, 16-bit big-endian
    (bytes 10-13: timecode, when T is set)

A frame is sent as packets of at most ``packet_bytes`` data each; the last one has the push flag, and a
receiver shows what it has when the push arrives. A header-only packet with the push flag (length 0)
is a push alone.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from skyscreen_hw.protocols import ProtocolError

PORT = 4048
HEADER_BYTES = 10
TIMECODE_BYTES = 4

VERSION_MASK = 0xC0
VERSION_1 = 0x40
FLAG_TIMECODE = 0x10
FLAG_STORAGE = 0x08
FLAG_REPLY = 0x04
FLAG_QUERY = 0x02
FLAG_PUSH = 0x01

SEQUENCE_MASK = 0x0F
SEQUENCE_MAX = 15  # sequence numbers run 1..15; 0 means "not used"

TYPE_RGB8 = 0x0B  # 00 001 011: RGB, 8 bits a channel
TYPE_RGBW8 = 0x1B  # 00 011 011: RGBW, 8 bits a channel

DESTINATION_DISPLAY = 1
DESTINATION_ALL = 255

DEFAULT_PACKET_BYTES = 1440  # 480 RGB or 360 RGBW LEDs: what WLED, ESPixelStick and xLights send
MAX_LENGTH = 0xFFFF
MAX_OFFSET = 0xFFFFFFFF

OFFSET_SEQUENCE, OFFSET_LENGTH = 1, 8  # where the per-frame fields are in the header

_HEADER = struct.Struct(">BBBBIH")


def data_type(channels: int) -> int:
    """The data type byte for 3 (RGB) or 4 (RGBW) 8-bit channels a pixel."""
    if channels == 3:
        return TYPE_RGB8
    if channels == 4:
        return TYPE_RGBW8
    raise ValueError(f"DDP carries 3 (RGB) or 4 (RGBW) channels a pixel here, not {channels}")


def header(
    offset: int,
    length: int,
    *,
    sequence: int = 0,
    push: bool = False,
    kind: int = TYPE_RGB8,
    destination: int = DESTINATION_DISPLAY,
) -> bytes:
    """The 10-byte header of a data packet carrying ``length`` bytes for byte ``offset`` of the display."""
    if not 0 <= offset <= MAX_OFFSET:
        raise ValueError(f"DDP offset {offset} out of range 0..{MAX_OFFSET}")
    if not 0 <= length <= MAX_LENGTH:
        raise ValueError(f"DDP length {length} out of range 0..{MAX_LENGTH}")
    if not 0 <= sequence <= SEQUENCE_MAX:
        raise ValueError(f"DDP sequence {sequence} out of range 0..{SEQUENCE_MAX}")
    flags = VERSION_1 | (FLAG_PUSH if push else 0)
    return _HEADER.pack(flags, sequence, kind, destination, offset, length)


def packet(data: bytes, offset: int = 0, *, sequence: int = 0, push: bool = False, kind: int = TYPE_RGB8) -> bytes:
    """One whole data packet."""
    return header(offset, len(data), sequence=sequence, push=push, kind=kind) + bytes(data)


@dataclass(frozen=True)
class DdpPacket:
    """A parsed DDP packet."""

    flags: int
    sequence: int
    data_type: int
    destination: int
    offset: int
    data: bytes
    timecode: int | None = None

    @property
    def version(self) -> int:
        return (self.flags & VERSION_MASK) >> 6

    @property
    def push(self) -> bool:
        return bool(self.flags & FLAG_PUSH)

    @property
    def query(self) -> bool:
        return bool(self.flags & FLAG_QUERY)

    @property
    def reply(self) -> bool:
        return bool(self.flags & FLAG_REPLY)

    @property
    def storage(self) -> bool:
        return bool(self.flags & FLAG_STORAGE)

    @property
    def channels(self) -> int:
        """Bytes a pixel by the data type: 4 for RGBW, else 3 (legacy and undefined types are RGB)."""
        return 4 if (self.data_type >> 3) & 0b111 == 0b011 else 3


def parse(datagram: bytes | bytearray | memoryview) -> DdpPacket:
    """A DDP packet from one UDP datagram; ProtocolError when it is not a version 1 packet or is cut short."""
    raw = bytes(datagram)
    if len(raw) < HEADER_BYTES:
        raise ProtocolError(f"DDP: {len(raw)} bytes is shorter than the {HEADER_BYTES}-byte header")
    flags, sequence, kind, destination, offset, length = _HEADER.unpack_from(raw)
    if flags & VERSION_MASK != VERSION_1:
        raise ProtocolError(f"DDP: version {(flags & VERSION_MASK) >> 6}, not 1 (flags 0x{flags:02x})")
    start, timecode = HEADER_BYTES, None
    if flags & FLAG_TIMECODE:
        if len(raw) < HEADER_BYTES + TIMECODE_BYTES:
            raise ProtocolError("DDP: the timecode flag is set but the header is cut short")
        timecode = int.from_bytes(raw[HEADER_BYTES : HEADER_BYTES + TIMECODE_BYTES], "big")
        start += TIMECODE_BYTES
    if len(raw) < start + length:
        raise ProtocolError(f"DDP: the header says {length} data bytes, the packet has {len(raw) - start}")
    return DdpPacket(flags, sequence & SEQUENCE_MASK, kind, destination, offset, raw[start : start + length], timecode)
