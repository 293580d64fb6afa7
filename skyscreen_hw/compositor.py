"""The compositor: the shared frame and the websocket canvas -> one colour per LED, in wiring order."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from skyscreen_hw.layouts import Layout, LedGather


class CanvasLike(Protocol):
    """What the compositor needs of the websocket canvas (sources/canvas.py)."""

    SIZE: int

    @property
    def version(self) -> int: ...

    def texture(self) -> tuple[np.ndarray, np.ndarray]: ...


class Compositor:
    """Keeps the LED colours of the latest frame and draws the canvas over them.

    The canvas is stretched over the layout's bounding box: each LED shows the canvas pixel at its
    position where something was drawn there, and its frame pixel elsewhere.
    """

    def __init__(self, layout: Layout, canvas: CanvasLike | None = None) -> None:
        self.gather = LedGather(layout)
        self.frame_leds = np.zeros((layout.count, 3), dtype=np.uint8)
        self.leds = np.zeros_like(self.frame_leds)
        self.canvas = canvas
        self._canvas_version = -1
        self._canvas_leds: np.ndarray | None = None
        self._canvas_mask: np.ndarray | None = None
        if canvas is not None:
            lo = layout.positions.min(axis=0)
            span = layout.positions.max(axis=0) - lo
            unit = (layout.positions - lo) / np.where(span > 0, span, 1.0)
            px = np.clip(np.round(unit * (canvas.SIZE - 1)), 0, canvas.SIZE - 1).astype(np.int64)
            self._canvas_index = px[:, 1] * canvas.SIZE + px[:, 0]

    @property
    def canvas_changed(self) -> bool:
        return self.canvas is not None and self.canvas.version != self._canvas_version

    def compose(self, frame: np.ndarray | None) -> np.ndarray:
        """Take a new frame (or None to keep the last) and return the LED colours (a reused array)."""
        if frame is not None:
            self.gather(frame, self.frame_leds)
        if self.canvas_changed:
            self._sample_canvas()
        if self._canvas_mask is None:
            return self.frame_leds
        np.copyto(self.leds, self.frame_leds)
        np.copyto(self.leds, self._canvas_leds, where=self._canvas_mask)
        return self.leds

    def _sample_canvas(self) -> None:
        if self.canvas is None:
            return
        self._canvas_version = self.canvas.version
        rgb, alpha = self.canvas.texture()
        mask = alpha.reshape(-1)[self._canvas_index]
        if not mask.any():
            self._canvas_leds = self._canvas_mask = None
            return
        self._canvas_leds = rgb.reshape(-1, 3)[self._canvas_index]
        self._canvas_mask = mask[:, None]
