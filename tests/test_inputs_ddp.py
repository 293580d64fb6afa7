"""DDP input: real sockets on loopback, LedFx's native DDP sender (ledfx-senders) as an independent
sender, raw packets for the rules (timecode headers, data types, push, status query) and for bad input.
"""

from __future__ import annotations

import json
import logging
import socket
import time

import numpy as np
import pytest
from conftest import LOOPBACK, flat, loopback_input

from skyscreen_hw.config import DdpInputConfig
from skyscreen_hw.protocols import ddp
from skyscreen_hw.protocols.universe_receiver import IGNORED, MALFORMED, PAST_THE_END


def config(**keys: object) -> DdpInputConfig:
    return loopback_input(DdpInputConfig, **keys)


def test_ledfx_ddp_sender_frames_land_whole_in_led_order(input_rig) -> None:
    senders = pytest.importorskip("ledfx_senders")
    leds = 1000  # 3,000 bytes: three packets, the last with push
    source = input_rig.start(config(address="leds"), leds=leds)
    sender = senders.DDPSender(leds * 3, destination=LOOPBACK, port=source.port)
    try:
        rng = np.random.default_rng(1)
        for i in range(1, 6):
            picture = rng.integers(0, 256, leds * 3, dtype=np.uint8)
            sender.send(picture)
            got = input_rig.frames(source, i)
            assert np.array_equal(got.reshape(-1), picture), f"frame {i}"
    finally:
        sender.close()
    receiver = source.receiver
    assert receiver.push_mode and receiver.pushes == 5 and source.stats.frames == 5  # one delivery a push
    assert source.dropped() == {}


def test_timecode_headers_data_types_and_destinations(input_rig, udp) -> None:
    source = input_rig.start(config())  # the 2x4 frame: 24 bytes
    to = (LOOPBACK, source.port)
    timecode = bytes([ddp.VERSION_1 | ddp.FLAG_TIMECODE, 1, ddp.TYPE_RGB8, 1]) + (0).to_bytes(4, "big")
    timecode += (6).to_bytes(2, "big") + (123456).to_bytes(4, "big") + bytes([1, 2, 3, 4, 5, 6])
    udp.sendto(timecode, to)  # 14-byte header: bytes 0-5
    udp.sendto(ddp.packet(bytes([7, 8, 9]), 6, kind=0x01), to)  # legacy RGB type
    udp.sendto(ddp.packet(bytes([10, 11, 12]), 9, kind=0x00), to)  # undefined type: RGB
    # RGBW (4 bytes a pixel, offsets in RGBW bytes): pixel 4 -> bytes 12-14, white folded in, saturating
    udp.sendto(ddp.packet(bytes([10, 20, 30, 5, 250, 0, 0, 10]), 16, kind=ddp.TYPE_RGBW8), to)
    all_devices = bytearray(ddp.packet(bytes([99, 98, 97]), 18))
    all_devices[3] = ddp.DESTINATION_ALL
    udp.sendto(bytes(all_devices), to)
    other_device = bytearray(ddp.packet(bytes([1, 1, 1]), 21))
    other_device[3] = 2
    udp.sendto(bytes(other_device), to)  # ID 2: not the display
    expected = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 25, 35, 255, 10, 10, 99, 98, 97, 0, 0, 0]
    input_rig.until(lambda: list(flat(source)) == expected, what=f"{expected}, got {list(flat(source))}")
    assert source.receiver.dropped == {IGNORED: 1}


def test_once_pushed_data_waits_for_a_push(input_rig, udp) -> None:
    source = input_rig.start(config())
    to = (LOOPBACK, source.port)
    udp.sendto(ddp.packet(bytes([1] * 3), 0), to)  # no push seen yet: lands at once
    input_rig.until(lambda: flat(source)[0] == 1, what="immediate data")
    udp.sendto(ddp.packet(bytes([2] * 3), 0, push=True), to)
    input_rig.until(lambda: flat(source)[0] == 2, what="pushed data")
    frames = source.stats.frames
    udp.sendto(ddp.packet(bytes([3] * 12), 0), to)
    udp.sendto(ddp.packet(bytes([4] * 12), 12), to)
    input_rig.until(lambda: source.receiver.packets == 4, what="both halves taken")
    time.sleep(0.3)  # timer runs: still nothing shown without a push
    assert source.stats.frames == frames and flat(source)[0] == 2
    udp.sendto(ddp.header(0, 0, push=True), to)  # a push alone
    got = input_rig.frames(source, frames + 1).reshape(-1)
    assert list(got) == [3] * 12 + [4] * 12
    assert source.stats.frames == frames + 1  # the whole frame in one delivery


def test_status_query_is_answered_with_json(input_rig, udp) -> None:
    source = input_rig.start(config())
    query = bytes([ddp.VERSION_1 | ddp.FLAG_QUERY, 3, 0, 251]) + bytes(6)
    udp.sendto(query, (LOOPBACK, source.port))
    reply, sender = udp.recvfrom(2048)
    assert sender == (LOOPBACK, source.port)
    packet = ddp.parse(reply)
    assert packet.reply and packet.destination == 251 and packet.sequence == 3
    status = json.loads(packet.data)["status"]
    assert status["man"] == "skyscreen-hw" and status["push"] is True


def test_bad_packets_are_counted_logged_once_and_the_input_carries_on(input_rig, udp, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=input_rig.log.name)
    source = input_rig.start(config())
    to = (LOOPBACK, source.port)
    good = ddp.packet(bytes([5] * 6), 0, push=True)
    version_2 = bytes([0x80 | ddp.FLAG_PUSH]) + good[1:]
    version_0 = bytes([ddp.FLAG_PUSH]) + good[1:]
    longer = good[:8] + (600).to_bytes(2, "big") + good[10:]  # the header says 600 bytes
    cut_timecode = bytes([ddp.VERSION_1 | ddp.FLAG_TIMECODE, 0, 0x0B, 1, 0, 0, 0, 0, 0, 0, 1, 2])
    malformed = [b"", good[:1], good[:9], version_2, version_0, longer, cut_timecode]
    for packet in malformed:
        udp.sendto(packet, to)
    udp.sendto(ddp.packet(bytes([1] * 6), 24, push=True), to)  # starts at the end: nothing of it fits
    udp.sendto(ddp.packet(bytes([1] * 6), 10**9, push=True), to)
    udp.sendto(ddp.packet(bytes([1] * 6), 0, kind=0x1A, push=True), to)  # RGBW 16-bit: not taken
    udp.sendto(ddp.packet(bytes([6] * 6), 21, push=True), to)  # runs past the end: cut
    udp.sendto(good, to)
    input_rig.until(lambda: list(flat(source)[:6]) == [5] * 6 and flat(source)[23] == 6, what="good data")
    assert source.receiver.dropped == {MALFORMED: len(malformed), PAST_THE_END: 2, IGNORED: 1}
    lines = [r.getMessage() for r in caplog.records]
    assert sum(MALFORMED in line for line in lines) == 1 and sum(PAST_THE_END in line for line in lines) == 1


def test_garbage_at_10000_datagrams_a_second_is_counted_while_a_sender_goes_on(input_rig, caplog) -> None:
    """Three seconds of 10,000 garbage datagrams a second (bounded) beside a real sender's frames."""
    caplog.set_level(logging.WARNING, logger=input_rig.log.name)
    source = input_rig.start(config())
    to = (LOOPBACK, source.port)
    rng = np.random.default_rng(7)
    garbage = [bytes(rng.integers(0, 256, int(n), dtype=np.uint8)) for n in rng.integers(0, 1400, 100)]
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as good,
    ):
        flood.bind((LOOPBACK, 0))
        good.bind((LOOPBACK, 0))
        sent, frames_sent = 0, 0
        start = time.monotonic()
        for tick in range(300):  # 300 ticks of 10 ms, 100 garbage datagrams each
            for packet in garbage:
                flood.sendto(packet, to)
            sent += len(garbage)
            if tick % 5 == 0:
                frames_sent += 1
                good.sendto(ddp.packet(bytes([frames_sent % 256] * 24), 0, push=True), to)
            delay = start + (tick + 1) * 0.01 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        input_rig.until(lambda: flat(source)[0] == frames_sent % 256, what="the last good frame")
    # garbage is either parsed and counted, or lost in a full receive buffer and counted as overrun
    receiver = source.receiver

    def all_counted() -> bool:
        return receiver.dropped[MALFORMED] + receiver.dropped[IGNORED] + source.overruns >= sent

    input_rig.until(all_counted, what=f"{sent} garbage datagrams counted: {source.dropped()}")
    assert source.stats.frames >= frames_sent * 0.9  # the sender's frames kept landing
    assert sum(MALFORMED in r.getMessage() for r in caplog.records) == 1


def test_a_segmentation_offload_sender_lands_whole(input_rig) -> None:
    """Packets sent as UDP_SEGMENT super-datagrams (what the daemon's own outputs do) arrive through UDP GRO
    as a few datagrams of many packets each; the frame lands whole, in order, one delivery a push."""
    leds = 2000  # 6,000 bytes: five packets of 1,200 bytes, the last with push
    source = input_rig.start(config(address="leds"), leds=leds)
    per = 1200
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.setsockopt(17, 103, ddp.HEADER_BYTES + per)  # SOL_UDP, UDP_SEGMENT
        except OSError:
            pytest.skip("no UDP segmentation offload here")
        for i in range(1, 4):
            picture = np.random.default_rng(i).integers(0, 256, leds * 3, dtype=np.uint8).tobytes()
            starts = range(0, len(picture), per)
            packets = [ddp.packet(picture[o : o + per], o, push=o + per >= len(picture)) for o in starts]
            udp.sendto(b"".join(packets[:3]), (LOOPBACK, source.port))  # one send, three packets
            udp.sendto(b"".join(packets[3:]), (LOOPBACK, source.port))
            assert input_rig.frames(source, i).reshape(-1).tobytes() == picture
    assert source.stats.frames == 3 and source.dropped() == {}
