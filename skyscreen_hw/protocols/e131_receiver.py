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

import numpy as np

from skyscreen_hw.protocols import ProtocolError, e131
from skyscreen_hw.protocols.universe_receiver import (
    IGNORED,
    LOWER_PRIORITY,
    MALFORMED,
    OTHER_UNIVERSE,
    OUT_OF_SEQUENCE,
    SEQUENCE_WINDOW,
    SILENCE,
    TOO_MANY_SOURCES,
    Receiver,
    UniversePlan,
    sequence_late,
)

MAX_SOURCES = 8  # sources tracked per universe (OLA's E1.31 merges up to 10)
MAX_SYNC_ADDRESSES = 64  # sync addresses remembered (and their groups joined)
MAX_SYNC_STATES = 1024  # (CID, sync address) sequence entries kept; past it they start afresh
_UNIVERSE = slice(e131.OFFSET_UNIVERSE, e131.OFFSET_UNIVERSE + 2)  # a data packet's universe, big-endian

Rows = slice | np.ndarray  # universe rows: a span of them (a sender's frame), or any


class E131Receiver(Receiver):
    """E1.31 data and sync packets into the display's bytes, ``plan.per`` bytes a universe.

    Sources are slots (at most MAX_SOURCES CIDs at once, a slot freed when its CID fell silent everywhere);
    their state on each universe is in ``(slot, universe)`` arrays: sequence, priority, when last heard.
    ``datagram`` takes one packet; ``batch`` takes a run of equal-length packets at once (the dome's 610
    a frame) through numpy, with the same rules, and hands any packet it cannot vouch for to ``datagram``.
    """

    def __init__(self, plan: UniversePlan) -> None:
        super().__init__(plan.size, plan.count * plan.per)
        self.plan = plan
        self.rows = self.image.reshape(plan.count, plan.per)
        shape = (MAX_SOURCES, plan.count)
        self.cids: dict[bytes, int] = {}  # CID -> slot
        self.sequence = np.zeros(shape, dtype=np.int16)
        self.priority = np.zeros(shape, dtype=np.int16)
        self.heard_at = np.full(shape, -np.inf)  # when each slot was last heard on each universe
        self.staged = np.zeros((plan.count, plan.per), dtype=np.uint8)
        self.staged_for = np.zeros(plan.count, dtype=np.int32)  # sync address each row is held for; 0 none
        self.waiting: dict[int, float] = {}  # sync address -> when data began waiting for it
        self.unsynced: set[int] = set()  # sync addresses that lost their sync packets: data lands at once
        self.sync_sequences: dict[tuple[bytes, int], int] = {}
        self.sync_addresses: set[int] = set()  # named by data for our universes (their groups are joined)
        self.syncs = 0
        self._span_key: tuple[int, int] | None = None
        self._span_universes = b""

    # -- sources --------------------------------------------------------------------------------------

    def slot(self, cid: bytes, now: float) -> int:
        """The slot of ``cid``, taking a free one (a CID silent everywhere for 2.5 s frees its slot); -1 if full."""
        k = self.cids.get(cid)
        if k is not None:
            return k
        if len(self.cids) >= MAX_SOURCES:
            live = (now - self.heard_at <= SILENCE).any(axis=1)
            for old, slot in list(self.cids.items()):
                if not live[slot]:
                    del self.cids[old]
        if len(self.cids) >= MAX_SOURCES:
            return -1
        k = min(set(range(MAX_SOURCES)) - set(self.cids.values()))
        self.heard_at[k] = -np.inf
        self.cids[cid] = k
        return k

    def winner_priority(self, universe: int, now: float) -> float:
        """The highest live priority on ``universe`` (-inf when no source is live): for tests and STATUS."""
        row = self.plan.index(universe)
        if row < 0:
            return -math.inf
        live = now - self.heard_at[:, row] <= SILENCE
        return float(self.priority[live, row].max()) if live.any() else -math.inf

    def live_sources(self, universe: int, now: float) -> int:
        row = self.plan.index(universe)
        return int((now - self.heard_at[:, row] <= SILENCE).sum()) if row >= 0 else 0

    # -- datagrams ----------------------------------------------------------------------------------

    def datagram(self, data: bytes | bytearray | memoryview | np.ndarray, sender: object, now: float) -> None:
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
        k = self.slot(cid, now)
        if k < 0:
            self.drop(TOO_MANY_SOURCES, f"more than {MAX_SOURCES} sources at once")
            return
        if now - self.heard_at[k, row] <= SILENCE and sequence_late(sequence, int(self.sequence[k, row])):
            self.drop(OUT_OF_SEQUENCE, f"sequence {sequence} after {self.sequence[k, row]} on universe {universe}")
            return
        self.sequence[k, row], self.priority[k, row], self.heard_at[k, row] = sequence, priority, now
        self.packets += 1
        if options & e131.OPTION_TERMINATED:
            self.heard_at[k, row] = -np.inf
            return
        if start_code != 0:
            self.drop(IGNORED, f"START code 0x{start_code:02x}")
            return
        if self._outranked(k, row, priority, now):
            self.drop(LOWER_PRIORITY, f"priority {priority} on universe {universe} under a higher one")
            return
        n = min(len(slots), self.plan.per)
        self._note_sync(sync)
        self._put(np.array([row]), sync, np.frombuffer(slots, dtype=np.uint8, count=n)[None, :], now)

    def _outranked(self, k: int, row: int, priority: int, now: float) -> bool:
        others = now - self.heard_at[:, row] <= SILENCE
        others[k] = False
        return bool((self.priority[others, row] > priority).any())

    def _note_sync(self, sync: int) -> None:
        if sync and sync not in self.sync_addresses and len(self.sync_addresses) < MAX_SYNC_ADDRESSES:
            self.sync_addresses.add(sync)

    def _put(self, rows: Rows, sync: int, values: np.ndarray, now: float) -> None:
        """``values[i]`` (the first channels) into universe row ``rows[i]``: now, or held for ``sync``."""
        n = values.shape[1]
        ordered = isinstance(rows, np.ndarray) and rows.size > 1 and rows[-1] - rows[0] == rows.size - 1
        if ordered and (np.diff(rows) == 1).all():  # a span: sliced, not gathered
            rows = slice(int(rows[0]), int(rows[-1]) + 1)
        if sync and sync not in self.unsynced:
            fresh = _indices(rows)[self.staged_for[rows] != sync]
            if fresh.size:
                self.staged[fresh] = self.rows[fresh]
                self.staged_for[fresh] = sync
            target = self.staged
            self.waiting.setdefault(sync, now)
        else:
            target = self.rows
            self.changed = True
        target[rows, :n] = values

    # -- many packets at once ---------------------------------------------------------------------------

    def batch(self, packets: np.ndarray, sender: object, now: float) -> None:
        """A run of equal-length datagrams, ``packets[i]`` each, in arrival order.

        The fast path takes data packets of one source alike in everything but sequence and universe
        (what a sender's frame is); anything else goes through ``datagram`` one by one, in order.
        """
        count, length = packets.shape
        first = packets[0]
        if count < 1 or length < e131.HEADER_BYTES or not self._vouch(packets):
            for row in packets:
                self.datagram(row.data if row.flags.c_contiguous else row.tobytes(), sender, now)
            return
        try:
            head = e131.parse(first)
        except ProtocolError:
            head = None
        if (
            not isinstance(head, e131.DataPacket)
            or head.options
            or head.start_code
            or head.priority > e131.MAX_PRIORITY
            or head.sync_universe > e131.MAX_UNIVERSE
        ):
            for row in packets:
                self.datagram(row.tobytes(), sender, now)
            return
        cid = head.cid.bytes
        self.heard((sender, cid), now)
        n = min(length - e131.HEADER_BYTES, self.plan.per)
        span = self._span(packets, head.universe)
        if span is not None:  # the usual: a sender's frame, universes one after the other, all ours
            k = self.slot(cid, now)
            if k < 0:
                self.drop(TOO_MANY_SOURCES, f"more than {MAX_SOURCES} sources at once", count)
                return
            self._apply(k, span, packets[:, e131.OFFSET_SEQUENCE].astype(np.int64), packets, head, n, now)
            return
        universes = (packets[:, e131.OFFSET_UNIVERSE].astype(np.int64) << 8) | packets[:, e131.OFFSET_UNIVERSE + 1]
        if ((universes < e131.MIN_UNIVERSE) | (universes > e131.MAX_UNIVERSE)).any():
            for row in packets:
                self.datagram(row.tobytes(), sender, now)
            return
        sequences = packets[:, e131.OFFSET_SEQUENCE].astype(np.int64)
        rows = universes - self.plan.first
        ours = (rows >= 0) & (rows < self.plan.count)
        if not ours.all():
            self.drop(OTHER_UNIVERSE, f"universes outside {self.plan.first}..{self.plan.last}", int((~ours).sum()))
            rows, sequences, packets = rows[ours], sequences[ours], packets[ours]
        k = self.slot(cid, now)
        if k < 0:
            self.drop(TOO_MANY_SOURCES, f"more than {MAX_SOURCES} sources at once", rows.size)
            return
        start = 0
        while start < rows.size:  # a universe twice in the run (two frames): one part after the other
            end = start + _unique_prefix(rows[start:])
            self._apply(k, rows[start:end], sequences[start:end], packets[start:end], head, n, now)
            start = end

    def _vouch(self, packets: np.ndarray) -> bool:
        """Every packet is byte for byte the first one but for sequence and universe (compared as bytes: a
        wake-up runs cold, where every numpy step costs several microseconds)."""
        count = packets.shape[0]
        if count == 1:
            return True
        return all(
            packets[:, part].tobytes() == packets[0, part].tobytes() * count
            for part in (
                slice(0, e131.OFFSET_SEQUENCE),
                slice(e131.OFFSET_OPTIONS, e131.OFFSET_OPTIONS + 1),
                slice(e131.OFFSET_DMP_LENGTH, e131.HEADER_BYTES),
            )
        )

    def _span(self, packets: np.ndarray, universe: int) -> slice | None:
        """The rows of ``packets`` when their universes are ``universe``, the next one, ... all ours."""
        count = packets.shape[0]
        row = self.plan.index(universe)
        if row < 0 or row + count > self.plan.count:
            return None
        if self._span_key != (universe, count):
            self._span_universes = np.arange(universe, universe + count, dtype=">u2").tobytes()
            self._span_key = (universe, count)
        return slice(row, row + count) if packets[:, _UNIVERSE].tobytes() == self._span_universes else None

    def _apply(
        self,
        k: int,
        rows: Rows,
        sequences: np.ndarray,
        packets: np.ndarray,
        head: e131.DataPacket,
        n: int,
        now: float,
    ) -> None:
        """Data packets of slot ``k`` for distinct universe ``rows``: the sequence and priority rules at once."""
        heard = self.heard_at[:, rows]
        live = now - heard <= SILENCE  # (slot, packet)
        diff = ((sequences - self.sequence[k, rows] + 128) & 0xFF) - 128
        late = live[k] & (diff > -SEQUENCE_WINDOW) & (diff <= 0)
        if late.any():
            self.drop(OUT_OF_SEQUENCE, f"{int(late.sum())} late packets of a frame", int(late.sum()))
            keep = ~late
            rows, sequences, packets, live = _indices(rows)[keep], sequences[keep], packets[keep], live[:, keep]
        self.packets += sequences.size
        self.sequence[k, rows] = sequences
        self.priority[k, rows] = head.priority
        self.heard_at[k, rows] = now
        live[k] = False
        if live.any():  # other sources on these universes: the higher priority wins
            outranked = (live & (self.priority[:, rows] > head.priority)).any(axis=0)
            if outranked.any():
                self.drop(LOWER_PRIORITY, f"priority {head.priority} under a higher one", int(outranked.sum()))
                keep = ~outranked
                rows, packets = _indices(rows)[keep], packets[keep]
        if packets.shape[0]:
            self._note_sync(head.sync_universe)
            self._put(rows, head.sync_universe, packets[:, e131.HEADER_BYTES : e131.HEADER_BYTES + n], now)

    # -- synchronization --------------------------------------------------------------------------------

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
                if len(self.unsynced) < MAX_SYNC_ADDRESSES:
                    self.unsynced.add(address)


def _indices(rows: Rows) -> np.ndarray:
    """``rows`` as an array of row numbers."""
    return np.arange(rows.start, rows.stop) if isinstance(rows, slice) else rows


def _unique_prefix(rows: np.ndarray) -> int:
    """How many of ``rows`` from the start are distinct (the run up to the first repeat)."""
    if rows.size < 2:
        return rows.size
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    repeats = order[1:][ordered[1:] == ordered[:-1]]  # later occurrences of a value, by position
    return int(repeats.min()) if repeats.size else rows.size
