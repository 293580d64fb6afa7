"""The receivers' two ways in agree: runs of packets through ``batch`` (numpy, what the inputs use for a
frame's packets) leave exactly the state one ``datagram`` call a packet leaves, on random streams of
good, late, outranked, synchronized, foreign and broken packets."""

from __future__ import annotations

import itertools
import uuid

import numpy as np
import pytest

from skyscreen_hw.protocols import ddp, e131
from skyscreen_hw.protocols.ddp_receiver import DdpReceiver
from skyscreen_hw.protocols.e131_receiver import E131Receiver
from skyscreen_hw.protocols.universe_receiver import UniversePlan, sequence_late


def runs(packets: list[bytes]) -> list[list[bytes]]:
    """Consecutive packets of equal length, as the inputs hand them over."""
    return [list(group) for _, group in itertools.groupby(packets, key=len)]


def feed_at(one, many, packets: list[bytes], now: float) -> None:
    """The same packets to ``one`` a datagram at a time and to ``many`` in runs, then a tick for both."""
    for packet in packets:
        one.datagram(packet, ("127.0.0.1", 1), now)
    for run in runs(packets):
        many.batch(np.array([np.frombuffer(p, dtype=np.uint8) for p in run]), ("127.0.0.1", 1), now)
    one.tick(now)
    many.tick(now)


def feed_both(one, many, packets: list[tuple[float, bytes]]) -> None:
    for now, group in itertools.groupby(packets, key=lambda p: p[0]):
        feed_at(one, many, [p for _, p in group], now)


def test_sequence_rule_with_wrap() -> None:
    assert sequence_late(5, 5) and sequence_late(250, 255) and sequence_late(240, 3)
    assert not sequence_late(0, 255) and not sequence_late(6, 5) and not sequence_late(235, 255)


@pytest.mark.parametrize("seed", range(12))
def test_e131_batch_equals_one_at_a_time(seed: int) -> None:
    rng = np.random.default_rng(seed)
    plan = UniversePlan(first=3, per=int(rng.choice([12, 510])), size=int(rng.integers(20, 4000)))
    one, many = E131Receiver(plan), E131Receiver(plan)
    cids = [uuid.UUID(int=int(rng.integers(1, 2**62))) for _ in range(3)]
    sequences = {c: int(rng.integers(0, 256)) for c in cids}
    packets: list[tuple[float, bytes]] = []
    now = 100.0
    for _frame in range(40):
        now += float(rng.choice([0.02, 0.02, 0.02, 1.5]))
        cid = cids[int(rng.integers(0, len(cids)))]
        priority = int(rng.choice([100, 100, 150, 200]))
        sync = int(rng.choice([0, 0, 7]))
        sequences[cid] = (sequences[cid] + int(rng.choice([1, 1, 1, 0, -3, 30]))) % 256
        universes = list(range(plan.first - 1, plan.last + 2))
        if rng.random() < 0.3:
            universes = list(rng.permutation(universes)[: max(1, len(universes) // 2)])
        if rng.random() < 0.2:
            universes = universes + universes[:2]  # a universe twice in a run
        channels = plan.per if rng.random() < 0.8 else int(rng.integers(1, 512))
        for u in universes:
            if u < 1:
                continue
            data = rng.integers(0, 256, channels, dtype=np.uint8).tobytes()
            flag = e131.OPTION_TERMINATED if rng.random() < 0.02 else 0
            packet = e131.data_packet(
                cid, "src", int(u), data, priority=priority, sync_universe=sync, sequence=sequences[cid], options=flag
            )
            if rng.random() < 0.03:
                packet = packet[:-1]  # broken: lengths disagree
            packets.append((now, packet))
        if sync and rng.random() < 0.8:
            packets.append((now, e131.sync_packet(cid, sync, sequence=sequences[cid])))
    feed_both(one, many, packets)
    assert np.array_equal(one.image, many.image)
    assert one.packets == many.packets
    assert dict(one.dropped) == dict(many.dropped)
    for cid, k in one.cids.items():  # each source's state (slots may be numbered differently)
        j = many.cids[cid]
        assert np.array_equal(one.heard_at[k], many.heard_at[j]) and np.array_equal(one.sequence[k], many.sequence[j])


@pytest.mark.parametrize("seed", range(12))
def test_ddp_batch_equals_one_at_a_time(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    size = int(rng.integers(30, 5000))
    one, many = DdpReceiver(size), DdpReceiver(size)
    packets: list[tuple[float, bytes]] = []
    now = 10.0
    for _frame in range(30):
        now += float(rng.choice([0.02, 0.02, 3.0]))
        per = int(rng.choice([30, 300, 1440]))
        contiguous = rng.random() < 0.7
        offsets = list(range(0, size + per, per)) if contiguous else sorted(rng.integers(0, size + 50, 6).tolist())
        push_at = int(rng.choice([len(offsets) - 1, len(offsets) // 2, -1]))
        for i, offset in enumerate(offsets):
            data = rng.integers(0, 256, per, dtype=np.uint8).tobytes()
            kind = int(rng.choice([ddp.TYPE_RGB8, ddp.TYPE_RGB8, 0x01, ddp.TYPE_RGBW8]))
            packet = ddp.packet(data, offset, push=(i == push_at), kind=kind, sequence=i % 16)
            if rng.random() < 0.03:
                packet = packet[:9]
            packets.append((now, packet))
    feed_both(one, many, packets)
    assert np.array_equal(one.image, many.image)
    assert one.packets == many.packets and one.pushes == many.pushes
    assert dict(one.dropped) == dict(many.dropped)


def _ddp_frame(rng: np.random.Generator, size: int, per: int, first: int = 0) -> list[bytes]:
    """A sender's frame: packets one after the other from ``first`` to the display's end, push on the last."""
    offsets = list(range(first, size - per + 1, per))
    return [
        ddp.packet(rng.integers(0, 256, per, dtype=np.uint8).tobytes(), o, push=i == len(offsets) - 1, sequence=i % 16)
        for i, o in enumerate(offsets)
    ]


SPOILERS = {
    "none": lambda p: p,
    "offset": lambda p: p[:4] + (int.from_bytes(p[4:8], "big") + 3).to_bytes(4, "big") + p[8:],
    "push": lambda p: bytes([p[0] | ddp.FLAG_PUSH]) + p[1:],
    "timecode": lambda p: bytes([p[0] | ddp.FLAG_TIMECODE]) + p[1:],
    "type": lambda p: p[:2] + bytes([0x01]) + p[3:],
    "rgbw": lambda p: p[:2] + bytes([ddp.TYPE_RGBW8]) + p[3:],
    "id": lambda p: p[:3] + bytes([7]) + p[4:],
    "length": lambda p: p[:8] + (int.from_bytes(p[8:10], "big") - 3).to_bytes(2, "big") + p[10:],
}


@pytest.mark.parametrize("spoiler", sorted(SPOILERS))
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_ddp_whole_frames_in_a_batch_equal_one_at_a_time(spoiler: str, where: str) -> None:
    """The frame fast path (headers compared with the ones a frame has) takes exactly what the rules take,
    also when one packet of the frame differs in one field."""
    rng = np.random.default_rng(7)
    size, per = 3 * 300, 90
    one, many = DdpReceiver(size), DdpReceiver(size)
    packets: list[tuple[float, bytes]] = []
    now = 1.0
    for frame in range(4):
        run = _ddp_frame(rng, size, per, first=per if frame == 3 else 0)  # the last frame from the 2nd packet
        if frame == 2:
            at = {"first": 0, "middle": len(run) // 2, "last": len(run) - 1}[where]
            run[at] = SPOILERS[spoiler](run[at])
        packets += [(now, p) for p in run]
        now += 0.02
    feed_both(one, many, packets)
    assert np.array_equal(one.image, many.image)
    assert one.packets == many.packets and one.pushes == many.pushes
    assert dict(one.dropped) == dict(many.dropped)


E131_SPOILERS = {
    "none": lambda run: run,
    "late": lambda run: [run[0], run[1][:111] + bytes([(run[1][111] - 1) % 256]) + run[1][112:], *run[2:]],
    "swapped": lambda run: [
        run[1][:113] + run[0][113:115] + run[1][115:],
        run[0][:113] + run[1][113:115] + run[0][115:],
        *run[2:],
    ],
    "foreign": lambda run: [*run[:-2], run[-2][:113] + (999).to_bytes(2, "big") + run[-2][115:], run[-1]],
    "priority": lambda run: [run[0][:108] + bytes([150]) + run[0][109:], *run[1:]],
    "sync": lambda run: [p[:109] + (7).to_bytes(2, "big") + p[111:] for p in run],
}


@pytest.mark.parametrize("spoiler", sorted(E131_SPOILERS))
@pytest.mark.parametrize("rival", [False, True])
def test_e131_whole_frames_in_a_batch_equal_one_at_a_time(spoiler: str, rival: bool) -> None:
    """A sender's frame (universes one after the other, the last one short, as the inputs hand it over:
    a run and a run of one) through the fast path takes exactly what the rules take, also with one packet
    late, out of place, foreign or of another priority, with sync, and beside a higher-priority rival."""
    rng = np.random.default_rng(11)
    plan = UniversePlan(first=3, per=30, size=5 * 30 + 12)
    one, many = E131Receiver(plan), E131Receiver(plan)
    main, other = uuid.UUID(int=1), uuid.UUID(int=2)
    packets: list[tuple[float, bytes]] = []
    now = 1.0
    for frame in range(4):
        run = [
            e131.data_packet(
                main,
                "m",
                plan.first + u,
                rng.integers(0, 256, min(plan.per, plan.size - u * plan.per), dtype=np.uint8).tobytes(),
                sequence=frame,
            )
            for u in range(plan.count)
        ]
        if frame == 2:
            run = E131_SPOILERS[spoiler](run)
        if rival and frame >= 1:
            packets.append(
                (now, e131.data_packet(other, "r", plan.first + 2, bytes(plan.per), priority=150, sequence=frame))
            )
        packets += [(now, p) for p in run]
        if spoiler == "sync" and frame == 2:
            packets.append((now, e131.sync_packet(main, 7, sequence=frame)))
        now += 0.02
    feed_both(one, many, packets)
    assert np.array_equal(one.image, many.image)
    assert one.packets == many.packets
    assert dict(one.dropped) == dict(many.dropped)
    for cid, k in one.cids.items():
        j = many.cids[cid]
        assert np.array_equal(one.heard_at[k], many.heard_at[j]) and np.array_equal(one.sequence[k], many.sequence[j])


class LentBuffers:
    """The shell's front and back buffers around a receiver that lends its image, as the inputs do it:
    at each take the back buffer is delivered (the two swap) and the receiver is lent the next one."""

    def __init__(self, receiver: DdpReceiver) -> None:
        self.receiver = receiver
        self.front = np.zeros(receiver.size, dtype=np.uint8)
        self.back = np.full(receiver.size, 77, dtype=np.uint8)  # never shown: must not leak into a picture
        receiver.rebase(self.back, self.front)

    def deliver(self) -> None:
        if self.receiver.take():
            self.front, self.back = self.back, self.front
            self.back[:] = 99  # the clock only reads the front; whatever the back holds is overwritten or refreshed
            self.receiver.rebase(self.back, self.front)


@pytest.mark.parametrize("seed", range(8))
def test_ddp_lending_its_image_delivers_what_its_own_image_holds(seed: int) -> None:
    """Each delivered picture equals the image of a receiver that keeps its own, on random streams of
    whole frames, partial writes, pushes and scattered packets (refreshed before any partial use)."""
    rng = np.random.default_rng(300 + seed)
    size = 3 * int(rng.integers(10, 400))
    own, lent = DdpReceiver(size), DdpReceiver(size)
    shell = LentBuffers(lent)
    now = 10.0
    for _frame in range(40):
        now += float(rng.choice([0.02, 0.02, 3.0]))
        per = int(rng.choice([3, 30, 300, size]))
        if rng.random() < 0.5:
            packets = _ddp_frame(rng, size, per)  # whole frames, the fast path
        else:
            offsets = sorted(rng.integers(0, size, int(rng.integers(1, 5))).tolist())
            push_at = int(rng.choice([len(offsets) - 1, -1]))
            packets = [
                ddp.packet(rng.integers(0, 256, per, dtype=np.uint8).tobytes(), o, push=i == push_at)
                for i, o in enumerate(offsets)
            ]
        if not packets:
            continue
        feed_at(own, lent, packets, now)
        changed = own.take()
        shell.deliver()
        if changed:
            assert np.array_equal(shell.front, own.image), f"frame {_frame}"
    assert own.packets == lent.packets and own.pushes == lent.pushes
