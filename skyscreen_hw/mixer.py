"""Sources and the mixer: many things deliver pixels, the frame clock shows the winner.

A **source** is anything that delivers pixels: the shared frame, later each network input. It has a
name, a priority and a timeout, and delivers either frame pixels (``address = "frame"``: a
``(height, width, 3)`` array mapped through the layout like the shared frame) or LED colours
(``address = "leds"``: ``(leds, 3)`` in wiring order). A source's thread fills the source's back buffer
and calls ``Mixer.deliver``, which swaps it to the front under the mixer's lock and wakes the clock if it
waits: one copy from the producer, none in between.

The **mixer** picks, at each tick, the highest-priority source that delivered within its timeout (ties:
the most recent delivery). When none is live, the LEDs keep the last picture shown: nothing blinks.
The websocket canvas is not a source but an overlay the pipeline draws over whatever wins.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

FRAME, LEDS = "frame", "leds"


@dataclass
class SourceStats:
    """What a source reports in STATUS and /status."""

    frames: int = 0  # deliveries
    last: float = -1.0  # monotonic time of the last delivery; -1 = never


class Source:
    """One producer of pixels. Subclasses run their own I/O (a thread or the network runtime) and call
    ``mixer.deliver(self)`` after filling ``back``; ``start`` and ``close`` default to nothing."""

    kind = "source"

    def __init__(self, name: str, shape: tuple[int, ...], priority: int, timeout: float, address: str) -> None:
        self.name = name
        self.priority = priority
        self.timeout = timeout  # 0 = live for ever once it delivered
        self.address = address
        self.front = np.zeros(shape, dtype=np.uint8)  # what the clock reads, under the mixer's lock
        self.back = np.zeros(shape, dtype=np.uint8)  # what the producer fills
        self.fresh = False  # front holds a delivery the clock has not taken yet
        self.stats = SourceStats()

    def live(self, now: float) -> bool:
        if self.stats.last < 0:
            return False
        return self.timeout == 0 or now - self.stats.last <= self.timeout

    def describe(self, now: float) -> str:
        """A few words for STATUS, e.g. ``shared frame (writing)``."""
        return f"{self.name} ({'live' if self.live(now) else 'idle'})"

    def figures(self, now: float) -> dict[str, Any]:
        """Extra figures for `/status` (a network input's packets/s, drops by kind...); none by default."""
        return {}

    def poll(self) -> None:
        """Called by the frame clock at each tick, before the mixer picks: a source that can take a picture
        waiting for it without blocking delivers it here, in the clock's thread; nothing by default."""

    def start(self) -> None:
        """Begin delivering (threads, sockets); raises SkyscreenError when it cannot."""

    def close(self) -> None:
        """Stop delivering and release everything; called once."""


class Mixer:
    """The sources, and the one condition the frame clock waits on."""

    def __init__(self) -> None:
        self.lock = threading.RLock()  # held to read or swap any source's front, and by the clock while it takes
        self.cond = threading.Condition(self.lock)  # what the clock and paced producers wait on
        self._waiting = 0  # threads inside `wait` / `wait_consumed`: only they need a notify
        self.sources: list[Source] = []
        self.news = False  # some source delivered since the clock last took
        self.current: Source | None = None  # the last winner

    def add(self, source: Source) -> None:
        with self.lock:
            self.sources.append(source)

    def remove(self, source: Source) -> None:
        with self.lock:
            self.sources.remove(source)
            if self.current is source:
                self.current = None

    def deliver(self, source: Source) -> None:
        """Called by a source's producer once ``source.back`` holds a whole new picture."""
        with self.lock:
            source.front, source.back = source.back, source.front
            source.fresh = True
            stats = source.stats
            stats.frames += 1
            stats.last = time.monotonic()
            self.news = True
            if self._waiting:
                self.cond.notify_all()

    def poke(self) -> None:
        """Wake the clock for news that is not a source's delivery (the canvas changed)."""
        with self.lock:
            self.news = True
            if self._waiting:
                self.cond.notify_all()

    def poll(self) -> None:
        """The clock's tick: every source takes what is waiting for it (see `Source.poll`)."""
        for source in self.sources:
            source.poll()

    def wait(self, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds; a delivery wakes the clock early."""
        with self.lock:
            if not self.news:
                self._waiting += 1
                try:
                    self.cond.wait(timeout)
                finally:
                    self._waiting -= 1

    def wait_consumed(self, source: Source, timeout: float) -> bool:
        """A producer's wait until the clock has taken its last delivery; False on timeout."""
        with self.lock:
            self._waiting += 1
            try:
                return self.cond.wait_for(lambda: not source.fresh, timeout)
            finally:
                self._waiting -= 1

    def winner(self, now: float) -> Source | None:
        """The highest-priority live source (ties: the latest delivery); call with ``lock`` held."""
        best: Source | None = None
        for s in self.sources:
            if s.live(now) and (best is None or (s.priority, s.stats.last) > (best.priority, best.stats.last)):
                best = s
        return best

    def take(self, now: float) -> tuple[Source | None, bool]:
        """(the winner, whether it has something not shown yet); call with ``lock`` held.

        Every source's delivery counts as taken, so paced producers (the shared frame) move on even
        while another source wins.
        """
        best = self.winner(now)
        changed = best is not None and (best.fresh or best is not self.current)
        for s in self.sources:
            s.fresh = False
        self.news = False
        self.current = best
        if self._waiting:
            self.cond.notify_all()
        return best, changed
