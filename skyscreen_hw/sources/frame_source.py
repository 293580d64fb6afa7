"""The shared frame (v1) as a source of the mixer: a thread taking frames from a FrameReader.

The thread takes the next frame only after the clock has taken the last one, so writers are paced by
the display (at most ``fps`` frames a second), and the frame clock never waits on a writer.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from skyscreen_hw.config import FrameConfig
from skyscreen_hw.mixer import FRAME, Mixer, Source
from skyscreen_hw.sources.shared_frame import FrameReader

POLL = 0.25  # seconds the thread waits for a writer (or for the clock) before checking for close
WRITING = 2.0  # seconds after the last frame during which STATUS says the shared frame is "writing"


class PacedFrameSource(Source):
    """A shared frame as a source: a thread takes the next frame once the clock took the last one.

    Subclasses give the reader and ``_take`` (fill ``back``; True when a whole frame came).
    """

    def __init__(self, name: str, config: FrameConfig, mixer: Mixer, log: logging.Logger, reader: Any) -> None:
        super().__init__(name, (config.height, config.width, 3), config.priority, config.timeout, FRAME)
        self.reader = reader
        self.mixer = mixer
        self.log = log
        self._closing = threading.Event()
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
        if self._thread.is_alive():
            self._thread.join(POLL * 4)
        self.reader.close()

    def _take(self) -> bool:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._closing.is_set():
            if not self.mixer.wait_consumed(self, POLL):
                continue
            try:
                took = self._take()
            except Exception:  # the display must go on; the reader logs its own trouble
                self.log.exception("%s: reading failed", self.name)
                time.sleep(POLL)
                continue
            if took:
                self.mixer.deliver(self)


class SharedFrameSource(PacedFrameSource):
    """Frames flushed by pattern programs through ``/dev/shm/<name>.frame`` and its semaphores."""

    kind = "shared frame"

    def __init__(self, config: FrameConfig, mixer: Mixer, log: logging.Logger) -> None:
        reader = FrameReader(config.name, config.height, config.width, log, config.group)
        super().__init__("shared frame", config, mixer, log, reader)

    def _take(self) -> bool:
        self.reader.frame = self.back  # the reader copies straight into the back buffer: one copy
        return self.reader.poll(POLL) is not None
