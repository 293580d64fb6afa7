"""Art-Net input: real sockets on loopback, LedFx's native Art-Net sender (ledfx-senders) as an independent
sender, raw packets for ArtSync, ArtPoll and bad input."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
from conftest import LOOPBACK, flat, loopback_input

from skyscreen_hw.config import ArtnetInputConfig
from skyscreen_hw.protocols import artnet
from skyscreen_hw.protocols.universe_receiver import IGNORED, MALFORMED, OTHER_UNIVERSE

# fixed ports (Art-Net 6454, olad's E1.31 5568): these modules run one test at a time, on one worker
pytestmark = pytest.mark.xdist_group("network-ports")


def config(**keys: object) -> ArtnetInputConfig:
    return loopback_input(ArtnetInputConfig, **keys)


def test_ledfx_artnet_sender_lands_in_led_order(input_rig) -> None:
    senders = pytest.importorskip("ledfx_senders")
    leds = 400  # 1,200 channels: universes 3, 4, 5 at 510 channels each
    source = input_rig.start(config(address="leds", universe=3), leds=leds)
    sender = senders.ArtNetSender(
        destination=LOOPBACK,
        port=source.port,
        universe=3,
        packet_size=510,
        even_packet_size=True,
        dmx_start_address=1,
        pixel_count=leds,
        pixels_per_device=0,
        pre_amble=b"",
        post_amble=b"",
        rgb_order="RGB",
        white_mode="None",
        broadcast=False,
    )
    try:
        picture = np.random.default_rng(3).integers(0, 256, leds * 3, dtype=np.uint8)
        sender.send(picture.reshape(leds, 3))
        input_rig.until(lambda: np.array_equal(flat(source), picture), what="LedFx's frame")
    finally:
        sender.close()
    assert source.dropped() == {}


def test_port_addresses_and_artsync(input_rig, udp) -> None:
    first = 0x123  # net 1, sub-net 2, universe 3
    source = input_rig.start(config(universe=first, channels_per_universe=12))  # 24 bytes: two universes
    to = (LOOPBACK, source.port)
    udp.sendto(artnet.dmx_packet(first, bytes([1] * 12)), to)
    udp.sendto(artnet.dmx_packet(first + 1, bytes([2] * 12)), to)
    udp.sendto(artnet.dmx_packet(first + 2, bytes([3] * 12)), to)  # not ours
    input_rig.until(lambda: list(flat(source)) == [1] * 12 + [2] * 12, what="immediate ArtDmx")
    # the third datagram may still be on its way when the frame is whole
    input_rig.until(lambda: source.receiver.dropped == {OTHER_UNIVERSE: 1}, what="the other universe counted")

    udp.sendto(artnet.sync_packet(), to)  # the first ArtSync: from now on ArtDmx waits for the next
    udp.sendto(artnet.dmx_packet(first, bytes([5] * 12)), to)
    udp.sendto(artnet.dmx_packet(first + 1, bytes([6] * 12)), to)
    input_rig.until(lambda: source.receiver.packets == 5, what="held ArtDmx taken")
    frames = source.stats.frames
    time.sleep(0.3)
    assert source.stats.frames == frames and flat(source)[0] == 1
    udp.sendto(artnet.sync_packet(), to)
    assert list(input_rig.frames(source, frames + 1).reshape(-1)) == [5] * 12 + [6] * 12

    udp.sendto(artnet.dmx_packet(first, bytes([7] * 12)), to)  # held... and no ArtSync comes
    input_rig.until(lambda: flat(source)[0] == 7, timeout=10, what="back to immediate after 4 s")
    assert not source.receiver.sync_mode


def test_artpoll_is_answered_with_the_port_addresses_taken(input_rig, udp) -> None:
    # 120 bytes at 6 channels a universe: port-addresses 14..33, in sub-nets 0 (14, 15), 1 (16..31: four
    # replies of four ports) and 2 (32, 33): six replies
    source = input_rig.start(config(universe=14, channels_per_universe=6), frame=(2, 20))
    udp.sendto(artnet.poll_packet(), (LOOPBACK, source.port))
    replies = [artnet.parse(udp.recv(1024)) for _ in range(6)]
    assert all(isinstance(r, artnet.PollReply) and r.ip == LOOPBACK for r in replies)
    assert sorted(r.bind_index for r in replies) == [1, 2, 3, 4, 5, 6]
    ports = sorted(p.port_address for r in replies for p in r.ports if p.receives)
    assert ports == list(range(14, 34))
    udp.settimeout(0.2)
    with pytest.raises(TimeoutError):
        udp.recv(1024)  # nothing more


def test_an_artnet_output_beside_the_input_says_the_input_holds_the_port_which_answers_artpoll(
    input_rig, udp, caplog
) -> None:
    """An Art-Net output's node (the daemon's Art-Net outputs answer ArtPoll through it) cannot listen where
    this daemon's Art-Net input already does: it says so naming the input, not only "another program", and
    the input goes on answering ArtPoll. (On the input's own port here, not 6454: the same clash, and no
    other test's Art-Net program can be in the way.)"""
    from skyscreen_hw.outputs.network import ArtnetNode, NetworkSender

    caplog.set_level(logging.WARNING, logger=input_rig.log.name)
    source = input_rig.start(config(universe=3))
    node = ArtnetNode(NetworkSender(input_rig.runtime, input_rig.log, owns_runtime=False), input_rig.log)
    node.start(LOOPBACK, source.port)
    assert node.endpoint is None
    assert f"cannot listen on {LOOPBACK}:{source.port}" in caplog.text
    assert "this daemon's Art-Net input, or another Art-Net program on this machine?" in caplog.text
    assert "the outputs' port-addresses go unlisted in ArtPollReplies" in caplog.text
    udp.sendto(artnet.poll_packet(), (LOOPBACK, source.port))
    reply = artnet.parse(udp.recv(1024))
    assert isinstance(reply, artnet.PollReply) and next(p.port_address for p in reply.ports if p.receives) == 3


def test_bad_packets_are_counted_logged_once_and_the_input_carries_on(input_rig, udp, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=input_rig.log.name)
    source = input_rig.start(config(channels_per_universe=12))
    to = (LOOPBACK, source.port)
    good = artnet.dmx_packet(0, bytes([8] * 12))
    old = bytearray(good)
    old[10:12] = (13).to_bytes(2, "big")  # protocol version 13
    over = bytearray(good)
    over[16:18] = (514).to_bytes(2, "big")
    longer = bytearray(good)
    longer[16:18] = (200).to_bytes(2, "big")  # says 200 channels, carries 12
    malformed = [b"Art-Net", good[:12], b"Art-Nez\x00" + good[8:], bytes(old), bytes(over), bytes(longer)]
    for packet in malformed:
        udp.sendto(packet, to)
    udp.sendto(artnet.ID + (0x9900).to_bytes(2, "little") + b"\x00\x0e", to)  # an OpCode we do not take
    udp.sendto(good, to)
    input_rig.until(lambda: flat(source)[0] == 8, what="the good ArtDmx")
    input_rig.until(lambda: source.receiver.dropped[MALFORMED] == len(malformed), what="all counted")
    assert source.receiver.dropped[IGNORED] == 1
    assert sum(MALFORMED in r.getMessage() for r in caplog.records) == 1
