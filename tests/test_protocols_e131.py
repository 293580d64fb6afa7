"""E1.31 codec against an independent implementation: the `sacn` package builds and parses the same packets."""

from __future__ import annotations

import uuid

import pytest
from sacn.messages.data_packet import DataPacket as SacnData
from sacn.messages.sync_packet import SyncPacket as SacnSync

from skyscreen_hw.protocols import ProtocolError, e131

CID = uuid.UUID("6f1c7d2a-4b1e-4c8e-9a0b-0123456789ab")


def test_a_full_universe_is_byte_for_byte_what_sacn_builds() -> None:
    data = bytes((i * 7) & 0xFF for i in range(512))
    ours = e131.data_packet(CID, "skyscreen dome", 4242, data, priority=150, sync_universe=7, sequence=200)
    theirs = SacnData(
        tuple(CID.bytes), "skyscreen dome", 4242, tuple(data), priority=150, sequence=200, sync_universe=7
    )
    assert ours == bytes(theirs.getBytes())
    assert len(ours) == 638


def test_sacn_parses_what_we_build() -> None:
    data = bytes(range(200)) + bytes(310)
    raw = e131.data_packet(
        CID, "dome", 9, data, priority=42, sync_universe=63999, sequence=17, options=e131.OPTION_TERMINATED
    )
    p = SacnData.make_data_packet(raw)
    assert (p.universe, p.priority, p.syncAddr, p.sequence, p.sourceName) == (9, 42, 63999, 17, "dome")
    assert p.option_StreamTerminated and not p.option_PreviewData and not p.option_ForceSync
    assert bytes(p.dmxData[: len(data)]) == data and bytes(p.cid) == CID.bytes


def test_we_parse_what_sacn_builds() -> None:
    theirs = SacnData(
        tuple(CID.bytes),
        "theirs",
        1,
        tuple(range(0, 256, 2)) * 4,
        priority=99,
        sequence=3,
        streamTerminated=True,
        sync_universe=2,
    )
    p = e131.parse(bytes(theirs.getBytes()))
    assert isinstance(p, e131.DataPacket)
    assert (p.cid, p.source_name, p.universe, p.priority, p.sequence, p.sync_universe) == (CID, "theirs", 1, 99, 3, 2)
    assert p.terminated and not p.preview and p.start_code == 0 and p.data == bytes(range(0, 256, 2)) * 4


def test_sync_packets_agree_with_sacn_both_ways() -> None:
    ours = e131.sync_packet(CID, 1000, sequence=5)
    assert len(ours) == e131.SYNC_BYTES == 49
    assert ours == bytes(SacnSync(tuple(CID.bytes), 1000, 5).getBytes())
    back = SacnSync.make_sync_packet(ours)
    assert (back.syncAddr, back.sequence) == (1000, 5)
    assert e131.parse(ours) == e131.SyncPacket(CID, 5, 1000)


def test_a_short_universe_has_consistent_layer_lengths() -> None:
    raw = e131.data_packet(CID, "x", 1, b"\x01\x02\x03")
    assert len(raw) == 129
    assert int.from_bytes(raw[16:18], "big") == 0x7000 | (129 - 16)
    assert int.from_bytes(raw[38:40], "big") == 0x7000 | (129 - 38)
    assert int.from_bytes(raw[115:117], "big") == 0x7000 | (129 - 115)
    assert int.from_bytes(raw[123:125], "big") == 4  # start code + 3 channels
    assert e131.parse(raw).data == b"\x01\x02\x03"


def test_the_source_name_is_cut_at_a_character_and_nul_terminated() -> None:
    name = e131.source_name_bytes("é" * 40)  # 80 bytes of UTF-8
    assert len(name) == 64 and name[-1] == 0 and name.rstrip(b"\0").decode() == "é" * 31


def test_multicast_groups() -> None:
    assert e131.multicast_group(1) == "239.255.0.1"
    assert e131.multicast_group(63999) == "239.255.249.255"
    with pytest.raises(ValueError, match="63999"):
        e131.multicast_group(64000)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"universe": 0}, "universe 0"),
        ({"universe": 64000}, "universe 64000"),
        ({"priority": 201}, "priority"),
        ({"sync_universe": 64000}, "synchronization"),
    ],
)
def test_out_of_range_fields_are_refused(kwargs: dict, problem: str) -> None:
    args = {"universe": 1, **kwargs}
    with pytest.raises(ValueError, match=problem):
        e131.data_header(CID, "x", args.pop("universe"), 3, **args)


def _corrupt(raw: bytes, at: int, value: bytes) -> bytes:
    return raw[:at] + value + raw[at + len(value) :]


GOOD = e131.data_packet(CID, "x", 5, bytes(30))


@pytest.mark.parametrize(
    ("datagram", "problem"),
    [
        (b"\x00\x10" + bytes(20), "shorter than the 38-byte root"),
        (_corrupt(GOOD, 4, b"ASC-E1.18"), "not an ACN packet"),
        (GOOD[:-1], "root layer length"),
        (_corrupt(GOOD, 18, b"\x00\x00\x00\x09"), "unknown root vector"),
        (_corrupt(GOOD, 40, b"\x00\x00\x00\x03"), "unknown framing vector"),
        (_corrupt(GOOD, 117, b"\x03"), "set-property"),
        (_corrupt(GOOD, 123, b"\x00\x05"), "property value count"),
        (_corrupt(GOOD, 113, b"\x00\x00"), "universe 0"),
        (_corrupt(e131.sync_packet(CID, 1), 40, b"\x00\x00\x00\x02"), "discovery"),
    ],
)
def test_broken_datagrams_are_protocol_errors(datagram: bytes, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        e131.parse(datagram)
