"""The live view: an always-present output that hands what the LEDs show to the browser's `/live` streams.

``show`` runs in the frame clock and does one copy (``leds.tobytes()``) and one comparison, and only while
someone watches: the copy becomes an immutable ``LivePicture`` that every viewer shares, published by
replacing one reference (no lock). An unchanged frame (the clock's keepalive re-shows) publishes nothing.
The network runtime's `/live` handlers wait for a newer picture with ``changed``: the clock wakes the
event loop with one ``call_soon_threadsafe`` when it publishes a picture while a viewer is waiting for
one and no wake-up is pending. A viewer slower than the clock (30 fps against 60) finds a newer picture
each time it asks and is never woken; the loop is woken at most once per frame shown, however many
viewers wait, and not at all while the picture stands still (docs/web.md has the measurements against
polling at each viewer's rate).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import numpy as np

from skyscreen_hw.layouts import Layout
from skyscreen_hw.outputs.base import Output

KIND = "live view"
HIDDEN_KINDS = (KIND, "record")  # outputs the page does not list as the LEDs' outputs


@dataclass(frozen=True)
class OutputRange:
    """One output of the display, as the page shows it on hover."""

    name: str
    kind: str
    first: int
    count: int


@dataclass(frozen=True)
class LivePicture:
    """What the LEDs show, shared read-only by every viewer.

    ``generation`` grows when the layout or the outputs change (a viewer then sends the layout again);
    ``version`` grows with every published picture; ``leds`` is ``count * 3`` bytes of RGB in wiring
    order, after gamma, brightness and the power limit, or empty before the first frame of a generation.
    """

    layout: Layout
    outputs: tuple[OutputRange, ...]
    generation: int
    version: int
    leds: bytes


class LiveView(Output):
    """The frames for `/live`: ``show`` publishes, the network runtime's handlers await ``changed``."""

    kind = KIND

    def __init__(self, layout: Layout, log: logging.Logger) -> None:
        super().__init__(f"live view ({layout.count} LEDs)")
        self.log = log
        self._picture = LivePicture(layout, (), 0, 0, b"")
        self.viewers = 0  # /live connections streaming now (changed by the network thread only)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._wake_pending = False
        self._waiting = 0  # viewers inside changed() (network thread); the clock wakes the loop only for them

    @property
    def picture(self) -> LivePicture:
        return self._picture

    # -- the frame clock's side ---------------------------------------------------------------------

    def show(self, leds: np.ndarray) -> None:
        old = self._picture
        if self.viewers <= 0:
            if old.leds:  # nobody watches: forget the picture, so a new viewer never gets a stale one
                self._picture = LivePicture(old.layout, old.outputs, old.generation, old.version + 1, b"")
            return
        data = leds.tobytes()
        if data == old.leds:
            return
        self._picture = LivePicture(old.layout, old.outputs, old.generation, old.version + 1, data)
        self.stats.frames_sent += 1
        if self._waiting > 0:  # read after publishing: a viewer counted before it looked gets woken
            self._wake()

    def follow(self, layout: Layout, parts: list[tuple[slice, Output]]) -> None:
        """The pipeline's layout and outputs changed (start, reload): viewers get the layout message again."""
        outputs = tuple(
            OutputRange(out.name, out.kind, part.start, part.stop - part.start)
            for part, out in parts
            if out.kind not in HIDDEN_KINDS
        )
        old = self._picture
        if layout is old.layout and outputs == old.outputs:
            return
        self.name = f"live view ({layout.count} LEDs)"
        self._picture = LivePicture(layout, outputs, old.generation + 1, old.version + 1, b"")

    def close(self) -> None:
        self._wake()  # waiting viewers look once more; their connections are closed by the server

    # -- the network runtime's side -----------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake ``loop`` on new pictures (call on that loop's thread before any ``changed``)."""
        self._loop = loop
        self._event = asyncio.Event()

    async def changed(self, seen: int) -> LivePicture:
        """The current picture once it is not version ``seen`` and holds LEDs (on the attached loop)."""
        while True:
            event = self._event
            if event is None:
                raise RuntimeError("LiveView.changed() before attach()")
            self._waiting += 1  # before looking: a picture published after the look then wakes this event
            try:
                picture = self._picture
                if picture.version != seen and picture.leds:
                    return picture
                await event.wait()
            finally:
                self._waiting -= 1

    def _wake(self) -> None:
        loop = self._loop
        if loop is None or self._wake_pending:
            return
        self._wake_pending = True
        try:
            loop.call_soon_threadsafe(self._on_wake)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            self._wake_pending = False

    def _on_wake(self) -> None:
        self._wake_pending = False  # first: a publish from now on schedules another wake-up
        event, self._event = self._event, asyncio.Event()
        if event is not None:
            event.set()
