"""The E1.31 (sACN) receiver rules as a pure state machine (the input's shell does the sockets).

As ANSI E1.31-2016 and the independent receivers (OLA's E131Node, WLED's e131.cpp) do them:

* each source (CID) has its own state on each universe; the highest priority wins a universe, ties go
  to the most recent packet; a source is forgotten after 2.5 s of silence (E131_NETWORK_DATA_LOSS_TIMEOUT)
  or at once when it sets the Stream_Terminated option (that packet's data is not used);
* sequence numbers: a packet with -20 < new - last <= 0 (8-bit, wrapping) is late and discarded, per
  source and universe (sync packets likewise per source and synchronization address);
* Preview_Data packets and non-zero START codes (0xDD per-channel priority, text, ...) are not shown;
* universe synchronization: data naming a synchronization address is held until a sync packet for that
  address arrives, then every universe held for it lands at once; when no sync arrives for 2.5 s the
  held data lands and that address runs unsynchronized until the next sync packet;
* universe 0 and universes above 63,999, priority above 200, wrong vectors and lengths that disagree
  with the datagram are malformed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from skyscreen_hw.protocols import ProtocolError, e131
from skyscreen_hw.protocols.universe_receiver import (
    IGNORED,
    LOWER_PRIORITY,
    MALFORMED,
    OTHER_UNIVERSE,
    OUT_OF_SEQUENCE,
    SILENCE,
    TOO_MANY_SOURCES,
    Receiver,
    UniversePlan,
    sequence_late,
)

MAX_SOURCES = 8  # sources tracked per universe (OLA's E1.31 merges up to 10)
MAX_SYNC_STATES = 1024  # (CID, sync address) sequence entries kept; past it they start afresh


@dataclass
class _Source:
    priority: int
    last: float
    sequence: int


class E131Receiver(Receiver):
    """E1.31 data and sync packets into the display's bytes, ``plan.per`` bytes a universe."""

    def __init__(self, plan: UniversePlan) -> None:
        super().__init__(plan.size, plan.count * plan.per)
        self.plan = plan
        self.rows = self.image.reshape(plan.count, plan.per)
        self.sources: list[dict[bytes, _Source]] = [{} for _ in range(plan.count)]
        self.staged = np.zeros((plan.count, plan.per), dtype=np.uint8)
        self.staged_for = np.zeros(plan.count, dtype=np.int32)  # sync address each row is held for; 0 none
        self.waiting: dict[int, float] = {}  # sync address -> when data began waiting for it
        self.unsynced: set[int] = set()  # sync addresses that lost their sync packets: data lands at once
        self.sync_sequences: dict[tuple[bytes, int], int] = {}
        self.syncs = 0

    # -- datagrams ----------------------------------------------------------------------------------

    def datagram(self, data: bytes | bytearray | memoryview, sender: object, now: float) -> None:
        """One UDP datagram from ``sender`` (its address) at monotonic time ``now``."""
        try:
            packet = e131.parse(data)
        except ProtocolError as exc:
            if "discovery" in str(exc):
                self.packets += 1  # universe discovery: nothing to show
            else:
                self.drop(MALFORMED, str(exc))
            return
        cid = packet.cid.bytes
        if isinstance(packet, e131.SyncPacket):
            if not e131.MIN_UNIVERSE <= packet.sync_universe <= e131.MAX_UNIVERSE:
                self.drop(MALFORMED, f"E1.31: sync address {packet.sync_universe} out of range")
                return
            self.heard((sender, cid), now)
            self.sync(cid, packet.sequence, packet.sync_universe, now)
            return
        if packet.priority > e131.MAX_PRIORITY:
            self.drop(MALFORMED, f"E1.31: priority {packet.priority} above {e131.MAX_PRIORITY}")
            return
        if packet.sync_universe > e131.MAX_UNIVERSE:
            self.drop(MALFORMED, f"E1.31: sync address {packet.sync_universe} out of range")
            return
        self.heard((sender, cid), now)
        self.data(
            cid,
            packet.priority,
            packet.sync_universe,
            packet.sequence,
            packet.options,
            packet.universe,
            packet.start_code,
            packet.data,
            now,
        )

    # -- the rules, on decoded fields -----------------------------------------------------------------

    def data(
        self,
        cid: bytes,
        priority: int,
        sync: int,
        sequence: int,
        options: int,
        universe: int,
        start_code: int,
        slots: bytes | bytearray | memoryview,
        now: float,
    ) -> None:
        """A well-formed data packet's fields (slots after the START code)."""
        if options & e131.OPTION_PREVIEW:
            self.drop(IGNORED, "preview data")
            return
        row = self.plan.index(universe)
        if row < 0:
            self.drop(OTHER_UNIVERSE, f"universe {universe}, outside {self.plan.first}..{self.plan.last}")
            return
        sources = self.sources[row]
        for key in [k for k, s in sources.items() if now - s.last > SILENCE]:
            del sources[key]
        source = sources.get(cid)
        if source is None:
            if len(sources) >= MAX_SOURCES:
                self.drop(TOO_MANY_SOURCES, f"more than {MAX_SOURCES} sources on universe {universe}")
                return
            source = sources[cid] = _Source(priority, now, sequence)
        elif sequence_late(sequence, source.sequence):
            self.drop(OUT_OF_SEQUENCE, f"sequence {sequence} after {source.sequence} on universe {universe}")
            return
        else:
            source.priority, source.last, source.sequence = priority, now, sequence
        self.packets += 1
        if options & e131.OPTION_TERMINATED:
            del sources[cid]
            return
        if start_code != 0:
            self.drop(IGNORED, f"START code 0x{start_code:02x}")
            return
        if any(s.priority > priority for s in sources.values()):
            self.drop(LOWER_PRIORITY, f"priority {priority} on universe {universe} under a higher one")
            return
        n = min(len(slots), self.plan.per)
        if sync and sync not in self.unsynced:
            staged = self.staged[row]
            if self.staged_for[row] != sync:
                staged[:] = self.rows[row]
                self.staged_for[row] = sync
            staged[:n] = np.frombuffer(slots, dtype=np.uint8, count=n)
            self.waiting.setdefault(sync, now)
        else:
            self.rows[row, :n] = np.frombuffer(slots, dtype=np.uint8, count=n)
            self.changed = True

    def sync(self, cid: bytes, sequence: int, address: int, now: float) -> None:
        """A sync packet: every universe held for ``address`` lands now."""
        key = (cid, address)
        last = self.sync_sequences.get(key)
        if last is not None and sequence_late(sequence, last):
            self.drop(OUT_OF_SEQUENCE, f"sync sequence {sequence} after {last} for address {address}")
            return
        if last is None and len(self.sync_sequences) >= MAX_SYNC_STATES:
            self.sync_sequences.clear()
        self.sync_sequences[key] = sequence
        self.packets += 1
        self.syncs += 1
        self.unsynced.discard(address)
        self._land(address)

    def _land(self, address: int) -> None:
        if self.waiting.pop(address, None) is None:
            return
        held = np.flatnonzero(self.staged_for == address)
        if held.size:
            self.rows[held] = self.staged[held]
            self.staged_for[held] = 0
            self.changed = True

    def tick(self, now: float) -> None:
        """Held data whose sync packets stopped for 2.5 s lands; its address runs unsynchronized."""
        for address, since in list(self.waiting.items()):
            if now - since > SILENCE:
                self._land(address)
                self.unsynced.add(address)

    def winner_priority(self, universe: int, now: float) -> float:
        """The highest live priority on ``universe`` (-inf when no source is live): for tests and STATUS."""
        row = self.plan.index(universe)
        live = [s.priority for s in self.sources[row].values() if now - s.last <= SILENCE] if row >= 0 else []
        return max(live, default=-math.inf)
