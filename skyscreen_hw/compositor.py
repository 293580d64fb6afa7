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
        self._canvas_leds: np.ndarray | None = None  # (n, 3), possibly a strided view
        self._canvas_mask: np.ndarray | None = None
        if canvas is not None:
            self._canvas_index = _canvas_samples(layout, canvas.SIZE)

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
        if not alpha.any():
            self._canvas_leds = self._canvas_mask = None
            return
        # one uint32 per canvas pixel: drawn (bit 31), lit (bit 30), 0xRRGGBB; the max over an LED's
        # samples is its brightest drawn sample, so thin strokes between sparse LEDs still show
        flat = rgb.reshape(-1, 3).astype(np.uint32)
        packed = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
        packed |= (packed != 0).astype(np.uint32) << 30
        packed |= alpha.reshape(-1).astype(np.uint32) << 31
        first, *others = self._canvas_index
        best = packed.take(first)
        for index in others:
            np.maximum(best, packed.take(index), out=best)
        channels = best.astype("<u4", copy=False).view(np.uint8).reshape(-1, 4)  # B, G, R, flags
        self._canvas_leds = channels[:, 2::-1]
        self._canvas_mask = (best >> 31).astype(bool)[:, None]


class CanvasOverlay:
    """Draws the websocket canvas over LED colours: each LED shows the canvas where something was drawn under it."""

    def __init__(self, layout: Layout, canvas: CanvasLike) -> None:
        self._compositor = Compositor(layout, canvas)

    @property
    def changed(self) -> bool:
        return self._compositor.canvas_changed

    def draw(self, leds: np.ndarray) -> np.ndarray:
        """``leds`` (n, 3) is not modified; returns it when nothing is drawn, else a reused array."""
        c = self._compositor
        if c.canvas_changed:
            c._sample_canvas()
        if c._canvas_mask is None:
            return leds
        np.copyto(c.leds, leds)
        np.copyto(c.leds, c._canvas_leds, where=c._canvas_mask)
        return c.leds


def _canvas_samples(layout: Layout, size: int) -> list[np.ndarray]:
    """Canvas pixel indices each LED samples: its position, and across its footprint if it has one.

    The canvas is stretched over the layout's bounding box.
    """
    lo = layout.positions.min(axis=0)
    span = layout.positions.max(axis=0) - lo
    scale = (size - 1) / np.where(span > 0, span, 1.0)
    points = [layout.positions]
    if layout.footprint is not None:
        points += [layout.positions + layout.footprint * f for f in (-0.5, 0.5)]
    columns = []
    for p in points:
        px = np.clip(np.round((p - lo) * scale), 0, size - 1).astype(np.int64)
        columns.append(px[:, 1] * size + px[:, 0])
    return columns
