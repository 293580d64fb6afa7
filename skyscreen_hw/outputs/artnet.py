"""Art-Net output: a range of LEDs as consecutive port-addresses (ArtDmx) to one node, ArtSync per frame.

Port-address ``universe + i`` carries LEDs ``i * per`` onwards (no LED split between universes; lengths
padded to even), sequence numbers 1-255 per port-address. With ``sync = true`` an ArtSync follows each
frame, after every controller's data (see outputs/network.py). The daemon is an Art-Net node too: it
answers ArtPoll on the Art-Net port with ArtPollReplies listing the port-addresses it sends, so consoles
and OLA see it.
"""

from __future__ import annotations

import logging

import numpy as np

from skyscreen_hw.config import ArtnetOutputConfig
from skyscreen_hw.outputs.network import (
    Final,
    NetworkOutput,
    NetworkSender,
    Send,
    output_factory,
    resolve,
    write_headers,
)
from skyscreen_hw.protocols import PacketRows, artnet


def plan_universes(cfg: ArtnetOutputConfig, count: int) -> PacketRows:
    """The ArtDmx packets of a frame of ``count`` LEDs, headers written."""
    per = cfg.channels_per_universe // cfg.channels
    rows = PacketRows(count, per, cfg.wire_order, artnet.DMX_HEADER_BYTES, pad_to_even=True)
    return write_headers(
        rows, lambda r, length: artnet.dmx_header(cfg.universe + r, max(length, artnet.MIN_DMX_LENGTH))
    )


class ArtnetOutput(NetworkOutput):
    """One Art-Net node taking ``count`` LEDs in consecutive port-addresses."""

    kind = "artnet"

    def __init__(self, cfg: ArtnetOutputConfig, count: int, sender: NetworkSender, log: logging.Logger) -> None:
        self.address = (resolve(cfg.host, cfg.port), cfg.port)
        self.rows = plan_universes(cfg, count)
        n = self.rows.rows
        self._sequence = 1
        link, data = sender.unicast(self.address, self.rows, n)
        self.link = link
        keys: tuple[object, ...] = ()
        finals: list[Final] = []
        if cfg.sync:
            key = ("artsync", self.address)
            sync = artnet.sync_packet()
            finals = [sender.shared_final(key, lambda: Final(link, Send(memoryview(sync), len(sync), 1, self.address)))]
            keys = (key,)
        self.node = sender.artnet_node()
        self.ports = [artnet.Port(cfg.universe + r, receives=False) for r in range(n)]
        self.node.ports.extend(self.ports)
        last = cfg.universe + n - 1
        name = (
            f"artnet {cfg.host}:{cfg.port} ({count} LEDs, {cfg.wire_order}, port-addresses {cfg.universe}-{last}"
            f"{', ArtSync' if cfg.sync else ''})"
        )
        super().__init__(name, sender, [link], data, finals, keys)

    def prepare(self, leds: np.ndarray) -> None:
        self.rows.fill(leds)
        self.rows.buffer[:, artnet.OFFSET_SEQUENCE] = self._sequence
        self._sequence = self._sequence % artnet.SEQUENCE_MAX + 1

    def _closing(self) -> None:
        for port in self.ports:
            if port in self.node.ports:
                self.node.ports.remove(port)
        self.sender.release_artnet()


create = output_factory(ArtnetOutputConfig, ArtnetOutput, ArtnetOutput.kind)
