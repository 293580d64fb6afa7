"""E1.31 (sACN) input: real sockets on loopback, the sacn package as an independent sender, and raw
packets for the rules and for bad input. Every sender binds 127.0.0.1: unicast and multicast stay on lo.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import sacn
import sacn.sending.sender_socket_udp as sacn_udp
from conftest import LOOPBACK, loopback_input

from skyscreen_hw.config import E131InputConfig
from skyscreen_hw.protocols import e131
from skyscreen_hw.protocols.universe_receiver import LOWER_PRIORITY, MALFORMED, NOT_ALLOWED, OUT_OF_SEQUENCE

# fixed ports (Art-Net 6454, olad's E1.31 5568): these modules run one test at a time, on one worker
pytestmark = pytest.mark.xdist_group("network-ports")

PER = 12  # channels a universe: the 2x4 test frame (24 bytes) takes universes 1 and 2


def config(**keys: object) -> E131InputConfig:
    return loopback_input(E131InputConfig, **{"channels_per_universe": PER, **keys})


@pytest.fixture
def senders(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[sacn.sACNsender]]:
    """sacn senders made by the test, stopped afterwards (no universe discovery: it is broadcast)."""
    made: list[sacn.sACNsender] = []
    yield made
    for s in made:
        s.stop()


def sacn_sender(
    made: list[sacn.sACNsender], port: int, monkeypatch: pytest.MonkeyPatch, **keys: object
) -> sacn.sACNsender:
    monkeypatch.setattr(sacn_udp, "DEFAULT_PORT", port)  # the package sends to 5568 only: our input's port
    sender = sacn.sACNsender(
        bind_address=LOOPBACK, bind_port=0, universeDiscovery=False, cid=tuple(uuid.uuid4().bytes), fps=60, **keys
    )
    made.append(sender)
    return sender


def frame(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.uint8).reshape(2, 4, 3)


def test_sacn_unicast_universes_land_like_wled(input_rig, senders, monkeypatch) -> None:
    source = input_rig.start(config())
    sender = sacn_sender(senders, source.port, monkeypatch)
    for universe, base in ((1, 1), (2, 101)):
        sender.activate_output(universe)
        sender[universe].destination = LOOPBACK
        sender[universe].dmx_data = tuple(range(base, base + PER)) + (99,) * 20  # past 12 channels: not ours
    sender.start()
    input_rig.until(lambda: source.stats.frames and source.front.reshape(-1)[23] == 112, what="both universes")
    assert np.array_equal(input_rig.frames(source, 1), frame([*range(1, 13), *range(101, 113)]))
    assert source.receiver.senders_live(time.monotonic()) == 1
    assert source.dropped() == {}


def test_sacn_priority_150_wins_then_100_after_silence_or_at_once_on_termination(
    input_rig, senders, monkeypatch
) -> None:
    source = input_rig.start(config())
    low = sacn_sender(senders, source.port, monkeypatch, source_name="low")
    high = sacn_sender(senders, source.port, monkeypatch, source_name="high")
    for sender, priority, value in ((low, 100, 10), (high, 150, 200)):
        for universe in (1, 2):
            sender.activate_output(universe)
            sender[universe].destination = LOOPBACK
            sender[universe].priority = priority
            sender[universe].dmx_data = (value,) * PER
    low.start()
    high.start()
    input_rig.until(lambda: (source.front == 200).all(), what="priority 150 shown")
    low[1].dmx_data = (11,) * PER  # the lower priority keeps sending: it does not show
    input_rig.until(lambda: source.receiver.dropped[LOWER_PRIORITY] > 0, what="priority 100 held back")
    assert (source.front == 200).all()

    high.stop()  # silent, no stream-terminated packets
    stopped = time.monotonic()
    input_rig.until(lambda: (source.front.reshape(-1)[:PER] == 11).all(), timeout=15, what="priority 100 took over")
    assert time.monotonic() - stopped >= 2.5 - 0.1  # not before the 2.5 s of silence (loop timing aside)

    # a second high-priority source, then stream terminated: the lower one takes over at its next packet
    high2 = sacn_sender(senders, source.port, monkeypatch, source_name="high again")
    high2.activate_output(1)
    high2[1].destination, high2[1].priority, high2[1].dmx_data = LOOPBACK, 150, (222,) * PER
    high2.start()
    input_rig.until(lambda: source.front.reshape(-1)[0] == 222, what="the new 150 shown")
    high2.deactivate_output(1)  # three packets with Stream_Terminated set
    input_rig.until(lambda: source.receiver.live_sources(1, time.monotonic()) == 1, what="terminated source gone")
    low[1].dmx_data = (12,) * PER
    input_rig.until(lambda: source.front.reshape(-1)[0] == 12, what="priority 100 back at once")


def test_sacn_sync_and_sequence_wrap(input_rig, senders, monkeypatch) -> None:
    """Data naming a sync address lands with its sync packet (multicast to the sync address's group,
    joined when data first names it); 300 flushes wrap the sequence 255 -> 0 without a discard."""
    source = input_rig.start(config())
    sender = sacn_sender(senders, source.port, monkeypatch, sync_universe=7)
    sender.manual_flush = True
    for universe in (1, 2):
        sender.activate_output(universe)
        sender[universe].destination = LOOPBACK
    sender.start()
    sender[1].dmx_data = (5,) * PER
    sender.flush()  # the first data names sync address 7: the input joins 239.255.0.7 on it
    input_rig.until(lambda: 7 in source.joined, what="the sync group joined")
    for i in range(300):
        sender[1].dmx_data = (i % 256,) * PER
        sender[2].dmx_data = ((i + 1) % 256,) * PER
        sender.flush()
        if i % 50 == 0:
            time.sleep(0.02)  # let the receiver keep up (the loopback receive buffer is finite)
    input_rig.until(lambda: source.front.reshape(-1)[PER] == 300 % 256, what="the last flush shown")
    receiver = source.receiver
    assert receiver.dropped[OUT_OF_SEQUENCE] == 0 and receiver.syncs >= 290
    assert np.array_equal(source.front.reshape(-1), [299 % 256] * PER + [300 % 256] * PER)


def test_data_with_a_sync_address_waits_for_its_sync_packet(input_rig, udp) -> None:
    source = input_rig.start(config())
    cid = uuid.uuid4()
    to = (LOOPBACK, source.port)
    udp.sendto(e131.data_packet(cid, "t", 1, bytes([1] * PER), sync_universe=9, sequence=1), to)
    udp.sendto(e131.data_packet(cid, "t", 2, bytes([2] * PER), sync_universe=9, sequence=1), to)
    input_rig.until(lambda: source.receiver.packets == 2, what="two data packets taken")
    time.sleep(0.3)  # a few timer runs: nothing may be delivered without the sync packet
    assert source.stats.frames == 0
    udp.sendto(e131.sync_packet(cid, 9, sequence=1), to)
    assert np.array_equal(input_rig.frames(source, 1), frame([1] * PER + [2] * PER))


def test_sequence_rule_per_source_and_universe(input_rig, udp) -> None:
    source = input_rig.start(config())
    to = (LOOPBACK, source.port)
    a, b = uuid.uuid4(), uuid.uuid4()
    sends = [
        (a, 1, 100, 1),  # first
        (a, 1, 99, 2),  # late by one: dropped
        (a, 1, 100, 3),  # the same again: dropped
        (b, 1, 99, 4),  # another source: its own sequence
        (a, 2, 50, 5),  # another universe: its own sequence
        (a, 1, 80, 6),  # 20 behind: taken (a restarted sender)
    ]
    for cid, universe, sequence, value in sends:
        udp.sendto(e131.data_packet(cid, "t", universe, bytes([value] * PER), sequence=sequence), to)
    input_rig.until(lambda: source.receiver.packets + sum(source.receiver.dropped.values()) == 6, what="six")
    assert source.receiver.dropped[OUT_OF_SEQUENCE] == 2
    input_rig.until(lambda: source.front.reshape(-1)[0] == 6, what="the restarted sender shown")
    assert source.front.reshape(-1)[PER] == 5


def test_bad_packets_are_counted_logged_once_and_the_input_carries_on(input_rig, udp, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=input_rig.log.name)
    source = input_rig.start(config())
    to = (LOOPBACK, source.port)
    cid = uuid.uuid4()
    good = e131.data_packet(cid, "t", 1, bytes([7] * PER), sequence=1)
    root_length = bytearray(good)
    root_length[16:18] = (0x7000 | 100).to_bytes(2, "big")
    framing_vector = bytearray(good)
    framing_vector[40:44] = (9).to_bytes(4, "big")
    universe_0 = bytearray(good)
    universe_0[113:115] = (0).to_bytes(2, "big")
    universe_64000 = bytearray(good)
    universe_64000[113:115] = (64000).to_bytes(2, "big")
    priority_201 = bytearray(good)
    priority_201[108] = 201
    count = bytearray(good)
    count[123:125] = (PER + 5).to_bytes(2, "big")
    malformed = [
        good[:20],  # truncated root layer
        good[:100],  # truncated data header
        b"\x00\x10\x00\x00ASC-E1.18\x00\x00\x00" + good[16:],  # not ACN
        good[:18] + (5).to_bytes(4, "big") + good[22:],  # unknown root vector
        bytes(root_length),
        bytes(framing_vector),
        bytes(universe_0),
        bytes(universe_64000),
        bytes(priority_201),
        bytes(count),  # property count disagrees with the datagram
        good + b"\x00",  # one byte more than the layers say
    ]
    for packet in malformed:
        udp.sendto(packet, to)
    preview = e131.data_packet(cid, "t", 1, bytes([9] * PER), sequence=2, options=e131.OPTION_PREVIEW)
    text = e131.data_header(cid, "t", 1, PER, sequence=3, start_code=0x17) + bytes([9] * PER)
    udp.sendto(preview, to)
    udp.sendto(text, to)
    udp.sendto(e131.data_packet(cid, "t", 1, bytes([7] * PER), sequence=4), to)
    assert input_rig.frames(source, 1).reshape(-1)[0] == 7  # the good packet lands, nothing else did
    input_rig.until(lambda: source.receiver.dropped[MALFORMED] == len(malformed), what="all counted")
    assert source.receiver.dropped["ignored"] == 2
    lines = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(lines) == 1, lines


def test_senders_outside_allow_are_counted_and_dropped(input_rig, udp, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=input_rig.log.name)
    source = input_rig.start(config(allow=("10.0.0.0/8",)))
    for sequence in range(5):
        udp.sendto(e131.data_packet(uuid.uuid4(), "t", 1, bytes(PER), sequence=sequence), (LOOPBACK, source.port))
    input_rig.until(lambda: source.dropped().get(NOT_ALLOWED) == 5, what="five refused")
    assert source.stats.frames == 0 and source.receiver.packets == 0
    assert sum("allow" in r.getMessage() for r in caplog.records) == 1


def test_sacn_multicast_on_loopback(input_rig, senders, monkeypatch) -> None:
    """Multicast to 239.255.0.1/2 through lo: the input joins each universe's group on bind's interface."""
    source = input_rig.start(config())
    sender = sacn_sender(senders, source.port, monkeypatch)
    for universe in (1, 2):
        sender.activate_output(universe)
        sender[universe].multicast = True
        sender[universe].ttl = 0
        sender[universe].dmx_data = (universe * 40,) * PER
    sender.start()
    input_rig.until(lambda: source.front.reshape(-1)[PER] == 80, what="both universes over multicast")
    assert (source.front.reshape(-1)[:PER] == 40).all()
