"""The shared frame (v1) as a source of the mixer, taking frames from a FrameReader.

A frame a writer flushed before the clock's tick is taken by the clock itself at the tick (``poll``): one
thread wakes a frame. Only when nothing was ready at a tick does the source's own thread wait for the
writer's next flush, so a late frame is still shown as soon as it comes. Either way the next frame is
taken only after the clock has taken the last one, so writers are paced by the display (at most ``fps``
frames a second), and the frame clock never waits on a writer.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from skyscreen_hw.config import FrameConfig
from skyscreen_hw.mixer import FRAME, Mixer, Source
from skyscreen_hw.sources.shared_frame import FrameReader

POLL = 0.25  # seconds the thread waits for a writer (or for the clock) before checking for close
WRITING = 2.0  # seconds after the last frame during which STATUS says the shared frame is "writing"


class PacedFrameSource(Source):
    """A shared frame as a source: the clock takes a ready frame at its tick, a thread waits for a late one.

    Subclasses give the reader and ``_take`` (fill ``back`` within ``timeout`` seconds; True when a whole
    frame came). ``_taking`` makes one taker at a time, from the take to the delivery.
    """

    def __init__(self, name: str, config: FrameConfig, mixer: Mixer, log: logging.Logger, reader: Any) -> None:
        super().__init__(name, (config.height, config.width, 3), config.priority, config.timeout, FRAME)
        self.reader = reader
        self.mixer = mixer
        self.log = log
        self._closing = threading.Event()
        self._taking = threading.Lock()
        self._wanted = threading.Event()  # nothing was ready at the clock's last tick: the thread waits for it
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def path(self) -> str:
        return str(self.reader.path)

    @property
    def skipped(self) -> int:
        return int(self.reader.frames_skipped)

    def describe(self, now: float) -> str:
        writing = self.stats.last >= 0 and now - self.stats.last < WRITING
        return f"{self.name} ({'writing' if writing else 'idle'})"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        self._wanted.set()  # wakes the thread's wait for work
        if self._thread.is_alive():
            self._thread.join(POLL * 4)
        self.reader.close()

    def poll(self) -> None:
        """The clock's tick: take a frame the writer already flushed, without waiting; else wake the thread.

        Never waits: while the thread is waiting for the next frame (or backing off after a failed read) the
        tick leaves it to the thread, and a read that fails here is logged and handed to the thread too.
        """
        if self.fresh or self._wanted.is_set() or not self._taking.acquire(blocking=False):
            return  # the last frame is not shown yet, or the thread is waiting for one or taking it
        try:
            took = self._take_and_deliver(0.0)
        except Exception:  # the display must go on; the reader logs its own trouble
            self.log.exception("%s: reading failed", self.name)
            took = False
        finally:
            self._taking.release()
        if not took:
            self._wanted.set()

    def _take(self, timeout: float) -> bool:
        raise NotImplementedError

    def _take_and_deliver(self, timeout: float) -> bool:
        """Take a frame into ``back`` and deliver it (call with ``_taking`` held); False if none came."""
        took = self._take(timeout)
        if took:
            self.mixer.deliver(self)
        return took

    def _run(self) -> None:
        """Sleep until a tick found nothing ready, then wait for the writer's next frame, in POLL slices
        (each checks for close); deliver it and sleep again."""
        while True:
            self._wanted.wait()
            if self._closing.is_set():
                return
            if not self.mixer.wait_consumed(self, POLL):
                continue
            try:
                with self._taking:
                    while not self._closing.is_set():
                        if self._take_and_deliver(POLL):
                            self._wanted.clear()
                            break
            except Exception:  # the display must go on; the reader logs its own trouble
                self.log.exception("%s: reading failed", self.name)
                self._closing.wait(POLL)  # outside the lock, and the clock leaves this source to this thread


class SharedFrameSource(PacedFrameSource):
    """Frames flushed by pattern programs through ``/dev/shm/<name>.frame`` and its semaphores."""

    kind = "shared frame"

    def __init__(self, config: FrameConfig, mixer: Mixer, log: logging.Logger) -> None:
        reader = FrameReader(config.name, config.height, config.width, log, config.group)
        super().__init__("shared frame", config, mixer, log, reader)

    def _take(self, timeout: float) -> bool:
        self.reader.frame = self.back  # the reader copies straight into the back buffer: one copy
        return self.reader.poll(timeout) is not None
