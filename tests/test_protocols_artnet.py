"""Art-Net 4 codec: packets laid out by hand from the specification's tables, both ways."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from skyscreen_hw.protocols import ProtocolError, artnet


def spec_dmx(seq: int, physical: int, port_address: int, data: bytes) -> bytes:
    """ArtDmx written out: ID, OpCode 0x5000 low byte first, ProtVer 0 14, Sequence, Physical, SubUni, Net,
    LengthHi, Length, data."""
    return (
        b"Art-Net\0\x00\x50\x00\x0e"
        + bytes([seq, physical, port_address & 0xFF, port_address >> 8])
        + len(data).to_bytes(2, "big")
        + data
    )


def test_artdmx_is_the_specifications_layout() -> None:
    data = bytes(range(10))
    assert artnet.dmx_packet(0x1234, data, sequence=9, physical=1) == spec_dmx(9, 1, 0x1234, data)
    assert artnet.dmx_header(32767, 512) == spec_dmx(0, 0, 32767, b"")[:16] + b"\x02\x00"


def test_odd_and_tiny_data_are_padded_to_even_lengths_of_at_least_two() -> None:
    assert artnet.dmx_packet(0, b"\x01\x02\x03")[16:] == b"\x00\x04\x01\x02\x03\x00"
    assert artnet.dmx_packet(0, b"\x07")[16:] == b"\x00\x02\x07\x00"


def test_artsync_and_artpoll_bytes() -> None:
    assert artnet.sync_packet() == b"Art-Net\0\x00\x52\x00\x0e\x00\x00"
    assert artnet.poll_packet(0x02) == b"Art-Net\0\x00\x20\x00\x0e\x02\x00"


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda: artnet.dmx_header(32768, 2), "port-address"),
        (lambda: artnet.dmx_header(0, 511), "even"),
        (lambda: artnet.dmx_header(0, 514), "even"),
    ],
)
def test_out_of_range_fields_are_refused(call: Callable[[], object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        call()


def test_parse_every_kind() -> None:
    assert artnet.parse(spec_dmx(3, 0, 0x0101, b"\x05\x06")) == artnet.Dmx(3, 0, 0x0101, b"\x05\x06")
    assert artnet.parse(artnet.sync_packet()) == artnet.Sync()
    assert artnet.parse(artnet.poll_packet(6, 0x10)) == artnet.Poll(6, 0x10)
    assert artnet.parse(b"Art-Net\0\x00\x20\x00\x0e\x02") == artnet.Poll(2, 0)  # Art-Net 3 polls are shorter
    assert artnet.opcode(artnet.sync_packet()) == artnet.OP_SYNC and artnet.opcode(b"garbage...") is None


def test_a_poll_reply_has_the_layout_ola_and_consoles_read() -> None:
    ports = [artnet.Port(0x0121, True), artnet.Port(0x0123, False)]
    (reply,) = artnet.poll_replies("10.1.2.3", ports, short_name="dome", long_name="the dome")
    assert len(reply) == 239
    assert reply[:10] == b"Art-Net\0\x00\x21"
    assert reply[10:14] == bytes([10, 1, 2, 3]) and reply[14:16] == b"\x36\x19"  # port 0x1936, low byte first
    assert (reply[18], reply[19]) == (0x01, 0x02)  # NetSwitch, SubSwitch
    assert reply[26:30] == b"dome" and reply[43] == 0 and reply[44:52] == b"the dome"
    assert reply[172:174] == b"\x00\x02"  # NumPorts
    assert list(reply[174:176]) == [0x80, 0x40]  # an output port (takes ArtDmx), an input port (sends it)
    assert reply[190] == 0x1 and reply[187] == 0x3  # SwOut[0], SwIn[1]: the universe nibbles
    assert reply[207:211] == bytes([10, 1, 2, 3]) and reply[211] == 1 and reply[212] & 0x08  # BindIp, BindIndex
    parsed = artnet.parse(reply)
    assert isinstance(parsed, artnet.PollReply)
    assert (parsed.ip, parsed.port, parsed.net, parsed.sub_net, parsed.short_name) == ("10.1.2.3", 6454, 1, 2, "dome")
    assert set(parsed.ports) == set(ports)


def test_many_ports_take_several_replies_one_net_and_subnet_each() -> None:
    ports = [artnet.Port(u, False) for u in range(0, 21)]  # 16 in sub-net 0, 5 in sub-net 1
    replies = artnet.poll_replies("127.0.0.1", ports)
    assert [r[211] for r in replies] == [1, 2, 3, 4, 5, 6]
    seen = [p for r in replies for p in artnet.parse(r).ports]  # type: ignore[union-attr]
    assert sorted(p.port_address for p in seen) == list(range(21))
    assert len(artnet.poll_replies("127.0.0.1", [])) == 1


@pytest.mark.parametrize(
    ("datagram", "problem"),
    [
        (b"Art-Net", "no 'Art-Net'"),
        (spec_dmx(1, 0, 1, b"\x01\x02")[:19], "cut short"),
        (spec_dmx(1, 0, 1, b"\x01\x02" * 4)[:-2], "says 8 channels"),
        (b"Art-Net\0\x00\x50\x00\x0d" + bytes(8), "version 13"),
        (b"Art-Net\0\x00\x21" + bytes(100), "ArtPollReply of 110 bytes"),
        (b"Art-Net\0\x00\x99\x00\x0e", "OpCode 0x9900"),
    ],
)
def test_broken_datagrams_are_protocol_errors(datagram: bytes, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        artnet.parse(datagram)
