"""Art-Net 4: ArtDmx, ArtSync, ArtPoll and ArtPollReply, on UDP port 6454.

Every packet starts with ``"Art-Net\\0"`` and a 16-bit little-endian OpCode; most then carry the protocol
version (14) big-endian. Multi-byte fields are big-endian except the OpCode, ArtDmx's port-address and
ArtPollReply's port.

* ArtDmx (0x5000, 18 bytes + data): sequence (1-255, 0 = off), physical port, SubUni (the port-address's
  low 8 bits: sub-net and universe), Net (its high 7 bits), length (2-512, even), the channels.
* ArtSync (0x5200, 14 bytes): nodes show the ArtDmx data they hold when it arrives.
* ArtPoll (0x2000, 14 bytes or more): a controller asks who is there; every node answers with
* ArtPollReply (0x2100, 239 bytes): its address, names, and up to four ports of one Net and Sub-Net
  (more ports: more replies, told apart by BindIndex).

A 15-bit port-address is Net (7 bits) : Sub-Net (4 bits) : Universe (4 bits).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from skyscreen_hw.protocols import ProtocolError

PORT = 6454
ID = b"Art-Net\x00"
PROTOCOL_VERSION = 14

OP_POLL = 0x2000
OP_POLL_REPLY = 0x2100
OP_DMX = 0x5000
OP_SYNC = 0x5200

DMX_HEADER_BYTES = 18
SYNC_BYTES = 14
POLL_BYTES = 14  # Art-Net 4 adds optional target and manufacturer fields after these
POLL_REPLY_BYTES = 239
MIN_POLL_REPLY_BYTES = 207  # older nodes stop before BindIp

MAX_PORT_ADDRESS = 0x7FFF
MIN_DMX_LENGTH, MAX_DMX_LENGTH = 2, 512
SEQUENCE_MAX = 255  # 1..255, 0 = sequence not used
PORTS_PER_REPLY = 4

OFFSET_SEQUENCE = 12  # in ArtDmx

# ArtPollReply port types and Style
PORT_OUTPUT = 0x80  # the node outputs DMX512 taken from Art-Net: it receives ArtDmx
PORT_INPUT = 0x40  # the node inputs DMX512 onto Art-Net: it sends ArtDmx
STYLE_NODE = 0x00
STYLE_CONTROLLER = 0x01
GOOD_OUTPUT_TRANSMITTING = 0x80
GOOD_INPUT_RECEIVED = 0x80
STATUS1_NORMAL = 0xD0  # indicators normal, port-addresses set by the front panel (our configuration)
STATUS2_PORT_ADDRESS_15 = 0x08  # the node takes 15-bit port-addresses (Art-Net 3 and 4)
ESTA_PROTOTYPE = 0x7FF0  # the ESTA manufacturer code reserved for prototypes
OEM_UNKNOWN = 0x00FF
SHORT_NAME_BYTES, LONG_NAME_BYTES, REPORT_BYTES = 18, 64, 64

_OPCODE = struct.Struct("<H")
_VERSION = struct.Struct(">H")


def split_port_address(port_address: int) -> tuple[int, int, int]:
    """(net, sub-net, universe) of a 15-bit port-address."""
    if not 0 <= port_address <= MAX_PORT_ADDRESS:
        raise ValueError(f"Art-Net port-address {port_address} out of range 0..{MAX_PORT_ADDRESS}")
    return port_address >> 8, (port_address >> 4) & 0x0F, port_address & 0x0F


def _start(opcode: int) -> bytes:
    return ID + _OPCODE.pack(opcode)


def dmx_header(port_address: int, length: int, *, sequence: int = 0, physical: int = 0) -> bytes:
    """The 18-byte ArtDmx header for ``length`` channels (an even number, 2-512) of ``port_address``."""
    split_port_address(port_address)
    if not MIN_DMX_LENGTH <= length <= MAX_DMX_LENGTH or length % 2:
        raise ValueError(f"ArtDmx length must be even and {MIN_DMX_LENGTH}..{MAX_DMX_LENGTH}, got {length}")
    return (
        _start(OP_DMX)
        + _VERSION.pack(PROTOCOL_VERSION)
        + bytes([sequence & 0xFF, physical & 0xFF, port_address & 0xFF, port_address >> 8])
        + length.to_bytes(2, "big")
    )


def dmx_packet(port_address: int, data: bytes, *, sequence: int = 0, physical: int = 0) -> bytes:
    """One ArtDmx packet; data of odd length is padded with a zero channel (lengths are even)."""
    data = bytes(data) + b"\x00" * (len(data) % 2)
    if len(data) < MIN_DMX_LENGTH:
        data = data.ljust(MIN_DMX_LENGTH, b"\x00")
    return dmx_header(port_address, len(data), sequence=sequence, physical=physical) + data


def sync_packet() -> bytes:
    """ArtSync: show the ArtDmx data held."""
    return _start(OP_SYNC) + _VERSION.pack(PROTOCOL_VERSION) + b"\x00\x00"


def poll_packet(flags: int = 0, diag_priority: int = 0) -> bytes:
    """ArtPoll, as a controller sends it."""
    return _start(OP_POLL) + _VERSION.pack(PROTOCOL_VERSION) + bytes([flags, diag_priority])


@dataclass(frozen=True)
class Port:
    """One port in an ArtPollReply: its 15-bit port-address and whether the node sends or receives it."""

    port_address: int
    receives: bool  # True: an output port (takes ArtDmx); False: an input port (sends ArtDmx)


def _text(value: str, size: int) -> bytes:
    return value.encode("ascii", errors="replace")[: size - 1].ljust(size, b"\x00")


def poll_replies(
    ip: str,
    ports: Sequence[Port],
    *,
    short_name: str = "skyscreen-hw",
    long_name: str = "skyscreen-hw LED display",
    report: str = "#0001 [0000] ok",
    style: int = STYLE_NODE,
    port: int = PORT,
) -> list[bytes]:
    """The ArtPollReplies a node with ``ports`` sends: one per group of up to four ports sharing a Net and
    Sub-Net (BindIndex 1, 2, ...; at most 255); a node without ports sends one reply with none."""
    groups: dict[tuple[int, int], list[Port]] = {}
    for p in ports:
        net, sub, _ = split_port_address(p.port_address)
        groups.setdefault((net, sub), []).append(p)
    chunks = [
        (key, group[i : i + PORTS_PER_REPLY])
        for key, group in groups.items()
        for i in range(0, len(group), PORTS_PER_REPLY)
    ]
    chunks = chunks[:255] or [((0, 0), [])]
    address = ipaddress.IPv4Address(ip).packed
    replies = []
    for bind_index, ((net, sub), chunk) in enumerate(chunks, 1):
        port_types, good_in, good_out, sw_in, sw_out = [bytearray(4) for _ in range(5)]
        for i, p in enumerate(chunk):
            universe = p.port_address & 0x0F
            if p.receives:
                port_types[i] = PORT_OUTPUT
                good_out[i] = GOOD_OUTPUT_TRANSMITTING
                sw_out[i] = universe
            else:
                port_types[i] = PORT_INPUT
                good_in[i] = GOOD_INPUT_RECEIVED
                sw_in[i] = universe
        body = (
            _start(OP_POLL_REPLY)
            + address
            + port.to_bytes(2, "little")
            + b"\x00\x01"  # firmware version
            + bytes([net, sub])
            + OEM_UNKNOWN.to_bytes(2, "big")
            + b"\x00"  # UBEA version
            + bytes([STATUS1_NORMAL])
            + ESTA_PROTOTYPE.to_bytes(2, "little")
            + _text(short_name, SHORT_NAME_BYTES)
            + _text(long_name, LONG_NAME_BYTES)
            + _text(report, REPORT_BYTES)
            + len(chunk).to_bytes(2, "big")
            + bytes(port_types + good_in + good_out + sw_in + sw_out)
            + b"\x00\x00\x00"  # AcnPriority, SwMacro, SwRemote
            + b"\x00\x00\x00"  # spare
            + bytes([style])
            + b"\x00" * 6  # MAC: not known here
            + address  # BindIp
            + bytes([bind_index, STATUS2_PORT_ADDRESS_15])
        )
        replies.append(body.ljust(POLL_REPLY_BYTES, b"\x00"))
    return replies


@dataclass(frozen=True)
class Dmx:
    """A parsed ArtDmx."""

    sequence: int
    physical: int
    port_address: int
    data: bytes


@dataclass(frozen=True)
class Sync:
    """A parsed ArtSync."""


@dataclass(frozen=True)
class Poll:
    """A parsed ArtPoll."""

    flags: int
    diag_priority: int


@dataclass(frozen=True)
class PollReply:
    """A parsed ArtPollReply (the fields a controller uses to find nodes)."""

    ip: str
    port: int
    net: int
    sub_net: int
    short_name: str
    long_name: str
    ports: tuple[Port, ...]
    style: int
    bind_index: int


Packet = Dmx | Sync | Poll | PollReply


def opcode(datagram: bytes | bytearray | memoryview) -> int | None:
    """The OpCode of an Art-Net packet, None when the datagram is not Art-Net."""
    raw = bytes(datagram[:10])
    if len(raw) < 10 or raw[:8] != ID:
        return None
    return int(_OPCODE.unpack_from(raw, 8)[0])


def _version(raw: bytes, what: str) -> None:
    version = _VERSION.unpack_from(raw, 10)[0]
    if version < PROTOCOL_VERSION:
        raise ProtocolError(f"Art-Net: {what} of protocol version {version}, older than {PROTOCOL_VERSION}")


def _name(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("ascii", errors="replace")


def parse(datagram: bytes | bytearray | memoryview) -> Packet:
    """ArtDmx, ArtSync, ArtPoll or ArtPollReply from one UDP datagram; ProtocolError for anything else."""
    raw = bytes(datagram)
    op = opcode(raw)
    if op is None:
        raise ProtocolError("Art-Net: no 'Art-Net' identifier")
    if op == OP_DMX:
        if len(raw) < DMX_HEADER_BYTES + MIN_DMX_LENGTH:
            raise ProtocolError(f"Art-Net: ArtDmx of {len(raw)} bytes is cut short")
        _version(raw, "ArtDmx")
        sequence, physical, sub_uni, net = raw[12], raw[13], raw[14], raw[15]
        length = int.from_bytes(raw[16:18], "big")
        if not MIN_DMX_LENGTH <= length <= MAX_DMX_LENGTH:
            raise ProtocolError(f"Art-Net: ArtDmx length {length} out of range {MIN_DMX_LENGTH}..{MAX_DMX_LENGTH}")
        if len(raw) < DMX_HEADER_BYTES + length:
            raise ProtocolError(f"Art-Net: ArtDmx says {length} channels, carries {len(raw) - DMX_HEADER_BYTES}")
        port_address = ((net & 0x7F) << 8) | sub_uni
        return Dmx(sequence, physical, port_address, raw[DMX_HEADER_BYTES : DMX_HEADER_BYTES + length])
    if op == OP_SYNC:
        if len(raw) < SYNC_BYTES:
            raise ProtocolError(f"Art-Net: ArtSync of {len(raw)} bytes is cut short")
        _version(raw, "ArtSync")
        return Sync()
    if op == OP_POLL:
        if len(raw) < POLL_BYTES - 2:  # Art-Net 3 and older polls end after the flags
            raise ProtocolError(f"Art-Net: ArtPoll of {len(raw)} bytes is cut short")
        _version(raw, "ArtPoll")
        return Poll(raw[12], raw[13] if len(raw) > 13 else 0)
    if op == OP_POLL_REPLY:
        if len(raw) < MIN_POLL_REPLY_BYTES:
            raise ProtocolError(f"Art-Net: ArtPollReply of {len(raw)} bytes is cut short")
        net, sub = raw[18] & 0x7F, raw[19] & 0x0F
        count = min(int.from_bytes(raw[172:174], "big"), PORTS_PER_REPLY)
        ports = []
        for i in range(count):
            kind = raw[174 + i]
            if kind & PORT_OUTPUT:
                ports.append(Port((net << 8) | (sub << 4) | (raw[190 + i] & 0x0F), True))
            if kind & PORT_INPUT:
                ports.append(Port((net << 8) | (sub << 4) | (raw[186 + i] & 0x0F), False))
        return PollReply(
            ip=str(ipaddress.IPv4Address(raw[10:14])),
            port=int.from_bytes(raw[14:16], "little"),
            net=net,
            sub_net=sub,
            short_name=_name(raw[26:44]),
            long_name=_name(raw[44:108]),
            ports=tuple(ports),
            style=raw[200],
            bind_index=raw[211] if len(raw) > 211 else 0,
        )
    raise ProtocolError(f"Art-Net: OpCode 0x{op:04x} is not parsed here")
