"""DDP codec: packets built from the 3waylabs header layout by hand, parsed; built, checked byte by byte."""

from __future__ import annotations

import numpy as np
import pytest

from skyscreen_hw.protocols import PacketRows, ProtocolError, ddp


def spec_header(flags: int, seq: int, kind: int, dest: int, offset: int, length: int) -> bytes:
    """The header as the specification draws it, written out without the codec."""
    return bytes([flags, seq, kind, dest]) + offset.to_bytes(4, "big") + length.to_bytes(2, "big")


def test_a_header_is_the_specifications_ten_bytes() -> None:
    assert ddp.header(1440, 1440, sequence=3) == spec_header(0x40, 3, 0x0B, 1, 1440, 1440)
    assert ddp.header(0, 9, sequence=15, push=True) == spec_header(0x41, 15, 0x0B, 1, 0, 9)
    assert ddp.header(4, 8, kind=ddp.data_type(4)) == spec_header(0x40, 0, 0x1B, 1, 4, 8)
    assert ddp.header(0x01020304, 0) == spec_header(0x40, 0, 0x0B, 1, 0x01020304, 0)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"offset": -1, "length": 3}, "offset"),
        ({"offset": 0, "length": 70000}, "length"),
        ({"offset": 0, "length": 3, "sequence": 16}, "sequence"),
    ],
)
def test_out_of_range_fields_are_refused(kwargs: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ddp.header(**kwargs)


def test_parse_reads_every_field() -> None:
    p = ddp.parse(spec_header(0x41, 7, 0x0B, 1, 960, 6) + b"abcdef" + b"trailing")
    assert (p.version, p.push, p.sequence, p.data_type, p.destination, p.offset, p.data) == (
        1,
        True,
        7,
        0x0B,
        1,
        960,
        b"abcdef",
    )
    assert p.channels == 3 and not p.query and not p.reply and p.timecode is None
    rgbw = ddp.parse(spec_header(0x40, 0, 0x1B, 1, 0, 4) + b"wxyz")
    assert rgbw.channels == 4 and not rgbw.push


def test_parse_skips_a_timecode() -> None:
    p = ddp.parse(bytes([0x51, 1, 0x0B, 1]) + (12).to_bytes(4, "big") + (3).to_bytes(2, "big") + b"\0\0\1\0" + b"RGB")
    assert p.timecode == 256 and p.data == b"RGB" and p.push


@pytest.mark.parametrize(
    ("datagram", "problem"),
    [
        (b"\x41\x01\x0b", "shorter than the 10-byte header"),
        (spec_header(0x80, 1, 0x0B, 1, 0, 3) + b"abc", "version 2"),
        (spec_header(0x40, 1, 0x0B, 1, 0, 30) + b"abc", "says 30 data bytes"),
        (bytes([0x50, 1, 0x0B, 1, 0, 0, 0, 0, 0, 3]) + b"ab", "timecode"),
    ],
)
def test_broken_datagrams_are_protocol_errors(datagram: bytes, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        ddp.parse(datagram)


def test_packet_round_trips() -> None:
    raw = ddp.packet(b"\x01\x02\x03", 6, sequence=2, push=True)
    assert ddp.parse(raw) == ddp.DdpPacket(0x41, 2, 0x0B, 1, 6, b"\x01\x02\x03")


# -- PacketRows: a frame's packets in one buffer (shared by the three protocols) ---------------------------


def test_rows_hold_every_led_once_in_wire_order() -> None:
    leds = np.arange(7 * 3, dtype=np.uint8).reshape(7, 3)
    rows = PacketRows(7, 3, "GRB", 10)
    assert (rows.rows, rows.stride, rows.last_length, rows.total_bytes) == (3, 19, 13, 19 * 2 + 13)
    rows.fill(leds)
    data = [bytes(rows.packet(r))[10:] for r in range(rows.rows)]
    assert b"".join(data) == leds[:, [1, 0, 2]].tobytes()
    assert bytes(rows.view()) == b"".join(bytes(rows.packet(r)) for r in range(3))
    assert bytes(rows.view(1)) == bytes(rows.packet(1)) + bytes(rows.packet(2))
    assert bytes(rows.view(0, 2)) == bytes(rows.packet(0)) + bytes(rows.packet(1))


def test_rgb_rows_are_a_plain_copy_and_rgbw_takes_the_grey_as_white() -> None:
    leds = np.array([[10, 20, 30], [200, 100, 50], [7, 7, 7]], dtype=np.uint8)
    rgb = PacketRows(3, 2, "RGB", 0)
    rgb.fill(leds)
    assert bytes(rgb.view()) == leds.tobytes()
    rgbw = PacketRows(3, 2, "GRBW", 0)
    rgbw.fill(leds)
    assert bytes(rgbw.view()) == bytes([10, 0, 20, 10, 50, 150, 0, 50, 0, 0, 0, 7])


def test_odd_data_is_padded_to_even_lengths() -> None:
    rows = PacketRows(5, 3, "RGB", 18, pad_to_even=True)  # 9 channels, then 6
    assert (rows.data_bytes, rows.last_data_bytes, rows.stride, rows.last_length) == (10, 6, 28, 24)
    leds = np.full((5, 3), 9, dtype=np.uint8)
    rows.fill(leds)
    assert bytes(rows.packet(0))[18:] == b"\x09" * 9 + b"\x00"


def test_fill_allocates_nothing_and_reuses_its_buffer() -> None:
    rows = PacketRows(1000, 170, "BGR", 126)
    before = rows.buffer.__array_interface__["data"][0]
    rows.fill(np.random.default_rng(1).integers(0, 256, (1000, 3), dtype=np.uint8))
    assert rows.buffer.__array_interface__["data"][0] == before
