"""The Art-Net 4 receiver rules as a pure state machine (the input's shell does the socket).

As the Art-Net 4 specification and the independent nodes (OLA's ArtNetNode, WLED) do them: ArtDmx by
15-bit port-address (``plan.first`` is the first port-address taken, ``plan.per`` channels a universe);
the first ArtSync puts the receiver in synchronous mode, where ArtDmx data is held until the next
ArtSync and lands whole; 4 s without an ArtSync and it is back to showing ArtDmx at once. ArtPoll is
answered with ArtPollReplies listing the port-addresses taken (output ports: this node takes ArtDmx),
at most a few times a second whoever asks. Older protocol versions, unknown OpCodes and lengths that
disagree with the datagram are counted and dropped.
"""

from __future__ import annotations

import numpy as np

from skyscreen_hw.protocols import ProtocolError, artnet
from skyscreen_hw.protocols.universe_receiver import (
    IGNORED,
    MALFORMED,
    OTHER_UNIVERSE,
    Receiver,
    UniversePlan,
)

SYNC_LOSS = 4.0  # seconds without ArtSync before ArtDmx lands at once again (Art-Net 4)
POLLS_PER_SECOND = 4  # ArtPolls answered a second, whoever sends them (a reply is many packets)


class ArtnetReceiver(Receiver):
    """ArtDmx and ArtSync into the display's bytes; ArtPoll answered."""

    def __init__(self, plan: UniversePlan, short_name: str = "skyscreen-hw", long_name: str = "") -> None:
        super().__init__(plan.size, plan.count * plan.per)
        self.plan = plan
        self.rows = self.image.reshape(plan.count, plan.per)
        self.staged = np.zeros((plan.count, plan.per), dtype=np.uint8)
        self.held = np.zeros(plan.count, dtype=bool)
        self.last_sync = -1.0  # when the last ArtSync came; -1 = never: ArtDmx lands at once
        self.syncs = 0
        self.short_name = short_name
        self.long_name = long_name or f"skyscreen-hw LED display, port-addresses {plan.first}-{plan.last}"
        self.ports = [artnet.Port(plan.first + i, True) for i in range(plan.count)]
        self._polls: list[float] = []  # when the polls answered in the last second came

    @property
    def sync_mode(self) -> bool:
        return self.last_sync >= 0

    def datagram(self, data: bytes | bytearray | memoryview, sender: object, now: float, ip: str) -> list[bytes]:
        """One UDP datagram; the replies to send back to ``sender`` (ArtPollReplies naming ``ip``)."""
        try:
            packet = artnet.parse(data)
        except ProtocolError as exc:
            if str(exc).endswith("is not parsed here"):
                self.drop(IGNORED, str(exc))
            else:
                self.drop(MALFORMED, str(exc))
            return []
        if isinstance(packet, artnet.Dmx):
            self.heard(sender, now)
            self.dmx(packet.port_address, packet.data, now)
        elif isinstance(packet, artnet.Sync):
            self.heard(sender, now)
            self.sync(now)
        elif isinstance(packet, artnet.Poll):
            return self.poll(now, ip)
        else:
            self.drop(IGNORED, "ArtPollReply (another node's)")
        return []

    def dmx(self, port_address: int, channels: bytes | memoryview, now: float) -> None:
        row = self.plan.index(port_address)
        if row < 0:
            self.drop(OTHER_UNIVERSE, f"port-address {port_address}, outside {self.plan.first}..{self.plan.last}")
            return
        self.packets += 1
        n = min(len(channels), self.plan.per)
        values = np.frombuffer(channels, dtype=np.uint8, count=n)
        if self.sync_mode and now - self.last_sync <= SYNC_LOSS:
            if not self.held[row]:
                self.staged[row] = self.rows[row]
                self.held[row] = True
            self.staged[row, :n] = values
            return
        self.rows[row, :n] = values
        self.changed = True

    def sync(self, now: float) -> None:
        self.packets += 1
        self.syncs += 1
        self.last_sync = now
        self._land()

    def _land(self) -> None:
        held = np.flatnonzero(self.held)
        if held.size:
            self.rows[held] = self.staged[held]
            self.held[held] = False
            self.changed = True

    def poll(self, now: float, ip: str) -> list[bytes]:
        self._polls = [t for t in self._polls if now - t < 1.0]
        if len(self._polls) >= POLLS_PER_SECOND:
            self.drop(IGNORED, f"ArtPoll beyond {POLLS_PER_SECOND} a second")
            return []
        self._polls.append(now)
        self.packets += 1
        return artnet.poll_replies(ip, self.ports, short_name=self.short_name, long_name=self.long_name)

    def tick(self, now: float) -> None:
        """4 s without ArtSync: what is held lands, and ArtDmx lands at once again."""
        if self.sync_mode and now - self.last_sync > SYNC_LOSS:
            self._land()
            self.last_sync = -1.0
