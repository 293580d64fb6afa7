"""E1.31 (sACN, ANSI E1.31-2016): DMX512 universes over UDP in ACN root, framing and DMP layers.

A data packet (126 bytes of headers, then up to 512 channels)::

    root layer     0   preamble size 0x0010, post-amble size 0x0000, "ASC-E1.17\\0\\0\\0"
                   16  flags & length (0x7000 | bytes from here on), vector 4 (E1.31 data), CID (16 bytes)
    framing layer  38  flags & length, vector 2 (data packet), source name (64 bytes, UTF-8, NUL-padded),
                   108 priority (0-200), 109 synchronization address, 111 sequence number,
                   112 options (bit 7 preview data, bit 6 stream terminated, bit 5 force synchronization),
                   113 universe (1-63999)
    DMP layer      115 flags & length, vector 2 (set property), 0xA1 (address and data type),
                   first property address 0, address increment 1, property value count (1 + channels),
                   125 the DMX start code (0), 126.. the channels

A synchronization packet (49 bytes): the root layer with vector 8 (E1.31 extended), a framing layer with
vector 1 (synchronization), sequence number, the synchronization address, two reserved bytes. Receivers
hold data packets that name a synchronization address until a synchronization packet for it arrives.

Multi-byte fields are big-endian. Universe ``u`` is multicast to 239.255.(u >> 8).(u & 0xFF).
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from skyscreen_hw.protocols import ProtocolError

PORT = 5568
ACN_IDENTIFIER = b"ASC-E1.17\x00\x00\x00"
PREAMBLE_SIZE = 0x0010
POSTAMBLE_SIZE = 0x0000
FLAGS = 0x7000  # the high nibble of every flags & length field
LENGTH_MASK = 0x0FFF

VECTOR_ROOT_DATA = 0x00000004
VECTOR_ROOT_EXTENDED = 0x00000008
VECTOR_FRAMING_DATA = 0x00000002
VECTOR_EXTENDED_SYNCHRONIZATION = 0x00000001
VECTOR_EXTENDED_DISCOVERY = 0x00000002
VECTOR_DMP_SET_PROPERTY = 0x02
DMP_ADDRESS_TYPE = 0xA1

OPTION_PREVIEW = 0x80
OPTION_TERMINATED = 0x40  # bit 6: the source stops sending this universe
OPTION_FORCE_SYNC = 0x20

MIN_UNIVERSE, MAX_UNIVERSE = 1, 63999
MAX_PRIORITY = 200
DEFAULT_PRIORITY = 100
MAX_CHANNELS = 512
SOURCE_NAME_BYTES = 64
CID_BYTES = 16
TERMINATION_PACKETS = 3  # a source stopping sends three stream-terminated packets (E1.31 6.2.6)

ROOT_BYTES = 38  # where the framing layer starts
HEADER_BYTES = 126  # where the channels start (after the start code)
SYNC_BYTES = 49

# offsets of the fields that change between frames, or per universe
OFFSET_ROOT_LENGTH = 16
OFFSET_FRAMING_LENGTH = 38
OFFSET_PRIORITY = 108
OFFSET_SYNC_ADDRESS = 109
OFFSET_SEQUENCE = 111
OFFSET_OPTIONS = 112
OFFSET_UNIVERSE = 113
OFFSET_DMP_LENGTH = 115
OFFSET_START_CODE = 125
OFFSET_SYNC_SEQUENCE = 44

_ROOT = struct.Struct(">HH12sHI16s")  # preamble, post-amble, identifier, flags & length, vector, CID
_DATA_FRAMING = struct.Struct(">HI64sBHBBH")  # flags & length, vector, name, priority, sync, seq, options, universe
_DMP = struct.Struct(">HBBHHHB")  # flags & length, vector, address type, first, increment, count, start code
_SYNC_FRAMING = struct.Struct(">HIBHH")  # flags & length, vector, sequence, sync address, reserved


def _cid_bytes(cid: uuid.UUID | bytes) -> bytes:
    raw = cid.bytes if isinstance(cid, uuid.UUID) else bytes(cid)
    if len(raw) != CID_BYTES:
        raise ValueError(f"an E1.31 CID is {CID_BYTES} bytes, not {len(raw)}")
    return raw


def source_name_bytes(name: str) -> bytes:
    """The source name as UTF-8, cut to 63 bytes (at a character boundary) and NUL-padded to 64."""
    raw = name.encode("utf-8")[: SOURCE_NAME_BYTES - 1]
    raw = raw.decode("utf-8", errors="ignore").encode("utf-8")
    return raw.ljust(SOURCE_NAME_BYTES, b"\x00")


def multicast_group(universe: int) -> str:
    """The IPv4 multicast address of a universe (or of a synchronization address): 239.255.hi.lo."""
    if not MIN_UNIVERSE <= universe <= MAX_UNIVERSE:
        raise ValueError(f"E1.31 universe {universe} out of range {MIN_UNIVERSE}..{MAX_UNIVERSE}")
    return f"239.255.{universe >> 8}.{universe & 0xFF}"


def data_header(
    cid: uuid.UUID | bytes,
    source_name: str,
    universe: int,
    channels: int,
    *,
    priority: int = DEFAULT_PRIORITY,
    sync_universe: int = 0,
    sequence: int = 0,
    options: int = 0,
    start_code: int = 0,
) -> bytes:
    """The 126 bytes in front of ``channels`` DMX channels of ``universe``."""
    if not MIN_UNIVERSE <= universe <= MAX_UNIVERSE:
        raise ValueError(f"E1.31 universe {universe} out of range {MIN_UNIVERSE}..{MAX_UNIVERSE}")
    if not 0 <= channels <= MAX_CHANNELS:
        raise ValueError(f"E1.31 carries 0..{MAX_CHANNELS} channels a universe, not {channels}")
    if not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f"E1.31 priority {priority} out of range 0..{MAX_PRIORITY}")
    if not (sync_universe == 0 or MIN_UNIVERSE <= sync_universe <= MAX_UNIVERSE):
        raise ValueError(f"E1.31 synchronization address {sync_universe} out of range (0 = none, 1..63999)")
    total = HEADER_BYTES + channels
    root = _ROOT.pack(
        PREAMBLE_SIZE, POSTAMBLE_SIZE, ACN_IDENTIFIER, FLAGS | (total - 16), VECTOR_ROOT_DATA, _cid_bytes(cid)
    )
    framing = _DATA_FRAMING.pack(
        FLAGS | (total - ROOT_BYTES),
        VECTOR_FRAMING_DATA,
        source_name_bytes(source_name),
        priority,
        sync_universe,
        sequence & 0xFF,
        options,
        universe,
    )
    dmp = _DMP.pack(
        FLAGS | (total - OFFSET_DMP_LENGTH), VECTOR_DMP_SET_PROPERTY, DMP_ADDRESS_TYPE, 0, 1, channels + 1, start_code
    )
    return root + framing + dmp


def data_packet(
    cid: uuid.UUID | bytes,
    source_name: str,
    universe: int,
    data: bytes,
    *,
    priority: int = DEFAULT_PRIORITY,
    sync_universe: int = 0,
    sequence: int = 0,
    options: int = 0,
) -> bytes:
    """One whole data packet."""
    head = data_header(
        cid,
        source_name,
        universe,
        len(data),
        priority=priority,
        sync_universe=sync_universe,
        sequence=sequence,
        options=options,
    )
    return head + bytes(data)


def sync_packet(cid: uuid.UUID | bytes, sync_universe: int, sequence: int = 0) -> bytes:
    """The 49-byte synchronization packet for ``sync_universe``."""
    if not MIN_UNIVERSE <= sync_universe <= MAX_UNIVERSE:
        raise ValueError(f"E1.31 synchronization address {sync_universe} out of range {MIN_UNIVERSE}..{MAX_UNIVERSE}")
    root = _ROOT.pack(
        PREAMBLE_SIZE,
        POSTAMBLE_SIZE,
        ACN_IDENTIFIER,
        FLAGS | (SYNC_BYTES - 16),
        VECTOR_ROOT_EXTENDED,
        _cid_bytes(cid),
    )
    framing = _SYNC_FRAMING.pack(
        FLAGS | (SYNC_BYTES - ROOT_BYTES), VECTOR_EXTENDED_SYNCHRONIZATION, sequence & 0xFF, sync_universe, 0
    )
    return root + framing


@dataclass(frozen=True)
class DataPacket:
    """A parsed E1.31 data packet."""

    cid: uuid.UUID
    source_name: str
    priority: int
    sync_universe: int
    sequence: int
    options: int
    universe: int
    start_code: int
    data: bytes

    @property
    def preview(self) -> bool:
        return bool(self.options & OPTION_PREVIEW)

    @property
    def terminated(self) -> bool:
        return bool(self.options & OPTION_TERMINATED)

    @property
    def force_sync(self) -> bool:
        return bool(self.options & OPTION_FORCE_SYNC)


@dataclass(frozen=True)
class SyncPacket:
    """A parsed E1.31 synchronization packet."""

    cid: uuid.UUID
    sequence: int
    sync_universe: int


def _length(raw: bytes, at: int, where: str) -> int:
    value = int.from_bytes(raw[at : at + 2], "big")
    if value & 0xF000 != FLAGS:
        raise ProtocolError(f"E1.31: {where} flags are 0x{value >> 12:x}, not 0x7")
    return value & LENGTH_MASK


def parse(datagram: bytes | bytearray | memoryview) -> DataPacket | SyncPacket:
    """An E1.31 data or synchronization packet from one UDP datagram; ProtocolError for anything else
    (another ACN packet, universe discovery, a length that does not match the datagram)."""
    raw = bytes(datagram)
    if len(raw) < ROOT_BYTES:
        raise ProtocolError(f"E1.31: {len(raw)} bytes is shorter than the {ROOT_BYTES}-byte root layer")
    preamble, postamble, identifier, _, vector, cid = _ROOT.unpack_from(raw)
    if (preamble, postamble, identifier) != (PREAMBLE_SIZE, POSTAMBLE_SIZE, ACN_IDENTIFIER):
        raise ProtocolError("E1.31: not an ACN packet (preamble or packet identifier)")
    if _length(raw, OFFSET_ROOT_LENGTH, "root layer") != len(raw) - 16:
        raise ProtocolError(f"E1.31: the root layer length does not match the {len(raw)}-byte datagram")
    if vector == VECTOR_ROOT_EXTENDED:
        if len(raw) < SYNC_BYTES:
            raise ProtocolError(f"E1.31: an extended packet of {len(raw)} bytes is cut short")
        _length(raw, OFFSET_FRAMING_LENGTH, "framing layer")
        _, framing_vector, sequence, sync_universe, _ = _SYNC_FRAMING.unpack_from(raw, ROOT_BYTES)
        if framing_vector == VECTOR_EXTENDED_DISCOVERY:
            raise ProtocolError("E1.31: universe discovery packets are not parsed here")
        if framing_vector != VECTOR_EXTENDED_SYNCHRONIZATION:
            raise ProtocolError(f"E1.31: unknown extended vector 0x{framing_vector:08x}")
        return SyncPacket(uuid.UUID(bytes=cid), sequence, sync_universe)
    if vector != VECTOR_ROOT_DATA:
        raise ProtocolError(f"E1.31: unknown root vector 0x{vector:08x}")
    if len(raw) < HEADER_BYTES:
        raise ProtocolError(f"E1.31: a data packet of {len(raw)} bytes is shorter than its {HEADER_BYTES}-byte header")
    if _length(raw, OFFSET_FRAMING_LENGTH, "framing layer") != len(raw) - ROOT_BYTES:
        raise ProtocolError("E1.31: the framing layer length does not match the datagram")
    _, framing_vector, name, priority, sync_universe, sequence, options, universe = _DATA_FRAMING.unpack_from(
        raw, ROOT_BYTES
    )
    if framing_vector != VECTOR_FRAMING_DATA:
        raise ProtocolError(f"E1.31: unknown framing vector 0x{framing_vector:08x}")
    _, dmp_vector, address_type, first, increment, count, start_code = _DMP.unpack_from(raw, OFFSET_DMP_LENGTH)
    if _length(raw, OFFSET_DMP_LENGTH, "DMP layer") != len(raw) - OFFSET_DMP_LENGTH:
        raise ProtocolError("E1.31: the DMP layer length does not match the datagram")
    if (dmp_vector, address_type, first, increment) != (VECTOR_DMP_SET_PROPERTY, DMP_ADDRESS_TYPE, 0, 1):
        raise ProtocolError("E1.31: the DMP layer is not a DMX set-property message")
    if count != len(raw) - OFFSET_START_CODE or count > MAX_CHANNELS + 1:
        raise ProtocolError(f"E1.31: property value count {count} does not match the datagram")
    if not MIN_UNIVERSE <= universe <= MAX_UNIVERSE:
        raise ProtocolError(f"E1.31: universe {universe} out of range {MIN_UNIVERSE}..{MAX_UNIVERSE}")
    return DataPacket(
        uuid.UUID(bytes=cid),
        name.split(b"\x00", 1)[0].decode("utf-8", errors="replace"),
        priority,
        sync_universe,
        sequence,
        options,
        universe,
        start_code,
        raw[HEADER_BYTES:],
    )
