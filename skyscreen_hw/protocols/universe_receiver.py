"""What every receiver of pixels shares: the image it builds, counted drops, senders seen; and the
universe plan of the DMX protocols (E1.31, Art-Net).

A receiver is a pure state machine: the input's shell hands it datagrams with the sender and the time,
and reads back ``image`` (the display's bytes as the senders define them now: only whole, synchronized
states ever land there) and ``changed``. Drops are counted by kind; the first of each kind is queued in
``notices`` for the shell to log once.

Universes map like WLED's: universe ``first`` carries the display's bytes 0 .. per-1, ``first + 1`` the
next ``per`` bytes, and so on (``per`` = channels_per_universe, 510 by default: 170 RGB LEDs, no LED
split between two universes). ``image`` is padded to whole universes, so a universe is one row of
``image.reshape(universes, per)``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

SILENCE = 2.5  # seconds: a sender (E1.31 source, DDP pusher) silent this long is forgotten
MAX_SENDERS = 64  # senders remembered for STATUS; past it the oldest is forgotten
SEQUENCE_WINDOW = 20  # E1.31 6.7.2: a packet whose sequence is 1..19 behind (or equal) the last is late

# kinds of dropped packets, as STATUS and the log name them
MALFORMED = "malformed"
OUT_OF_SEQUENCE = "out of sequence"
NOT_ALLOWED = "not allowed"
OVERRUN = "receive buffer overrun"
PAST_THE_END = "past the end"
LOWER_PRIORITY = "lower priority"
OTHER_UNIVERSE = "other universe"
IGNORED = "ignored"
TOO_MANY_SOURCES = "too many sources"


def sequence_late(new: int, last: int) -> bool:
    """E1.31's rule on 8-bit sequence numbers: late (discard) when -20 < new - last <= 0, with wrap."""
    diff = ((new - last + 128) & 0xFF) - 128
    return -SEQUENCE_WINDOW < diff <= 0


@dataclass(frozen=True)
class UniversePlan:
    """Which universes an input takes and where each lands in the display's bytes."""

    first: int
    per: int  # channels (bytes) of the display a universe carries
    size: int  # the display's bytes

    @property
    def count(self) -> int:
        return -(-self.size // self.per)

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    def index(self, universe: int) -> int:
        """The universe's row, or -1 when this input does not take it."""
        i = universe - self.first
        return i if 0 <= i < self.count else -1


class Receiver:
    """The image, drop counters and senders every protocol's receiver has."""

    lends_image = False  # True: the image may be the source's back buffer itself (see rebase)

    def __init__(self, size: int, padded: int | None = None) -> None:
        self.size = size
        self.image = np.zeros(max(size, padded or 0), dtype=np.uint8)
        self.changed = False  # image changed since the shell last took it
        self.packets = 0  # datagrams that carried something for us (data, sync, push, poll)
        self.dropped: Counter[str] = Counter()
        self.notices: list[tuple[str, str]] = []  # (kind, detail) of each kind's first drop, for the log
        self.senders: dict[object, float] = {}  # sender (address, CID) -> when last heard

    def drop(self, kind: str, detail: str, count: int = 1) -> None:
        if kind not in self.dropped:
            self.notices.append((kind, detail))
        self.dropped[kind] += count

    def heard(self, sender: object, now: float) -> None:
        senders = self.senders
        if sender not in senders and len(senders) >= MAX_SENDERS:
            del senders[min(senders, key=senders.__getitem__)]
        senders[sender] = now

    def senders_live(self, now: float) -> int:
        heard = list(self.senders.values())  # one step: STATUS reads this while the input's thread adds senders
        return sum(1 for t in heard if now - t <= SILENCE)

    def rebase(self, image: np.ndarray, picture: np.ndarray) -> None:
        """A receiver that lends its image: ``image`` is the image from now on, holding an older picture
        than ``picture`` (the one just delivered), which it is refreshed from before it is next used."""
        raise NotImplementedError(f"{type(self).__name__} keeps its own image")

    def take(self) -> bool:
        """Whether the image changed since the last take (and mark it taken)."""
        changed, self.changed = self.changed, False
        return changed

    def tick(self, now: float) -> None:
        """Timers (sync lost, senders gone); the shell calls it after each burst and a few times a second."""
