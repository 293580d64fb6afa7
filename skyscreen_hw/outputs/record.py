"""The recording (`--record PATH`): every frame sent to the outputs, appended as raw RGB.

Each frame is ``leds * 3`` bytes, RGB, in LED wiring order, after gamma, brightness and the power
limit, before per-output colour order and protocol framing (BRIEF §5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skyscreen_hw.errors import OutputError


class Recorder:
    """An Output appending each frame to a file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"recording {self.path}"
        try:
            self._file = self.path.open("ab", buffering=0)  # one write per frame, nothing held back
        except OSError as exc:
            raise OutputError(f"--record {self.path}: cannot open for writing: {exc.strerror}") from None

    def show(self, leds: np.ndarray) -> None:
        self._file.write(memoryview(np.ascontiguousarray(leds)).cast("B"))

    def close(self) -> None:
        self._file.close()


def read_recording(path: str | Path, leds: int) -> np.ndarray:
    """A recording as an (frames, leds, 3) uint8 array (for tests and tools)."""
    data = np.fromfile(path, dtype=np.uint8)
    return data[: len(data) // (leds * 3) * leds * 3].reshape(-1, leds, 3)
