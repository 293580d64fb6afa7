"""The recording (`--record PATH`): every frame sent to the outputs, appended as raw RGB.

Each frame is ``leds * 3`` bytes, RGB, in LED wiring order, after gamma, brightness and the power
limit, before per-output colour order and protocol framing.

A recording that cannot be written (the disk is full, the file system went read-only, an I/O error)
stops: the failure is logged once, the file is cut back to its last whole frame, later frames are counted
as failed, and `health` says why. The display keeps running; `show` never raises for it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from skyscreen_hw.errors import OutputError
from skyscreen_hw.outputs.base import HEALTH_OK, Output


class Recorder(Output):
    """An Output appending each frame to a file."""

    kind = "record"

    def __init__(self, path: str | Path, log: logging.Logger | None = None) -> None:
        self.path = Path(path)
        super().__init__(f"recording {self.path}")
        self.log = log or logging.getLogger("skyscreen")
        try:
            self._file = self.path.open("ab", buffering=0)  # one write per frame, nothing held back
        except OSError as exc:
            raise OutputError(f"--record {self.path}: cannot open for writing: {exc.strerror}") from None
        self._whole = self._file.tell()  # where the last whole frame ends: appending starts at the end
        self._failure: str | None = None  # why the recording stopped

    def show(self, leds: np.ndarray) -> None:
        if self._failure is not None:
            self.stats.frames_failed += 1
            return
        data = np.ascontiguousarray(leds)
        try:
            written = self._file.write(data)
        except OSError as exc:
            self._stop(exc.strerror or str(exc))
            return
        if written != data.nbytes:  # a short write: the file system took only part of the frame (it is full)
            self._stop(f"only {written} of the frame's {data.nbytes} bytes could be written (the disk is full?)")
            return
        self._whole += written
        self.stats.frames_sent += 1

    def _stop(self, reason: str) -> None:
        """Stop recording: cut the file back to its last whole frame, log once, say why in `health`."""
        self.stats.frames_failed += 1
        try:
            os.ftruncate(self._file.fileno(), self._whole)
            kept = f"the file ends with the last whole frame, {self.stats.frames_sent} recorded in this run"
        except OSError as exc:
            kept = f"cutting the file back to {self._whole} bytes failed too ({exc.strerror}): it ends mid-frame"
        self._failure = reason
        self.log.error(
            "--record %s: writing failed: %s; recording stopped, the display goes on (%s; free space and restart"
            " the daemon to record again)",
            self.path,
            reason,
            kept,
        )

    @property
    def health(self) -> str:
        return HEALTH_OK if self._failure is None else f"recording stopped: {self._failure}"

    def close(self) -> None:
        self._file.close()


def read_recording(path: str | Path, leds: int) -> np.ndarray:
    """A recording as an (frames, leds, 3) uint8 array (for tests and tools)."""
    data = np.fromfile(path, dtype=np.uint8)
    return data[: len(data) // (leds * 3) * leds * 3].reshape(-1, leds, 3)
