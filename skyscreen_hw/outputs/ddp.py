"""DDP output: a range of LEDs to one DDP controller (WLED, ESPixelStick, FPP, Falcon), pushed per frame.

The output's LEDs start at byte 0 of the controller's display. Each frame is ``ceil(bytes /
packet_bytes)`` packets with the byte offset of their data, sequence numbers 1-15 running on packet by
packet; with ``sync = true`` the last packet carries the push flag and goes out only after every
controller's other packets (see outputs/network.py), so all controllers show the frame together.
"""

from __future__ import annotations

import logging

import numpy as np

from skyscreen_hw.config import DdpOutputConfig
from skyscreen_hw.outputs.network import (
    Final,
    NetworkOutput,
    NetworkSender,
    Send,
    output_factory,
    resolve,
    write_headers,
)
from skyscreen_hw.protocols import PacketRows, ddp


def plan_packets(cfg: DdpOutputConfig, count: int) -> PacketRows:
    """The packets of a frame of ``count`` LEDs, headers written (for the output and for check-config)."""
    per = cfg.packet_bytes // cfg.channels
    rows = PacketRows(count, per, cfg.wire_order, ddp.HEADER_BYTES)
    kind = ddp.data_type(cfg.channels)
    return write_headers(
        rows,
        lambda r, length: ddp.header(r * rows.data_bytes, length, push=r == rows.rows - 1 and cfg.sync, kind=kind),
    )


class DdpOutput(NetworkOutput):
    """One DDP controller taking ``count`` LEDs."""

    kind = "ddp"

    def __init__(self, cfg: DdpOutputConfig, count: int, sender: NetworkSender, log: logging.Logger) -> None:
        self.address = (resolve(cfg.host, cfg.port), cfg.port)
        self.rows = plan_packets(cfg, count)
        self.sync = cfg.sync
        n = self.rows.rows
        # sequence numbers 1..15 packet by packet: row r of table[k] is 1 + (k + r) % 15
        self._sequences = (
            1 + (np.arange(ddp.SEQUENCE_MAX)[:, None] + np.arange(n)[None, :]) % ddp.SEQUENCE_MAX
        ).astype(np.uint8)
        self._next = 0
        link, data = sender.unicast(self.address, self.rows, n - 1 if cfg.sync else n)  # with push the last is a final
        self.link = link
        finals = [Final(link, Send(self.rows.packet(n - 1), self.rows.stride, 1, self.address))] if cfg.sync else []
        name = (
            f"ddp {cfg.host}:{cfg.port} ({count} LEDs, {cfg.wire_order}, {n} packets of {cfg.packet_bytes} bytes"
            f"{', push' if cfg.sync else ''})"
        )
        super().__init__(name, sender, [link], data, finals)
        log.debug("%s: %d bytes a frame", name, self.rows.total_bytes)

    def prepare(self, leds: np.ndarray) -> None:
        self.rows.fill(leds)
        self.rows.buffer[:, ddp.OFFSET_SEQUENCE] = self._sequences[self._next]
        self._next = (self._next + self.rows.rows) % ddp.SEQUENCE_MAX


create = output_factory(DdpOutputConfig, DdpOutput, DdpOutput.kind)
