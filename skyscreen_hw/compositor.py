"""The websocket canvas drawn over the LEDs (`CanvasOverlay`), and where each LED samples the canvas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from skyscreen_hw.color import ColorCorrection
from skyscreen_hw.layouts import Layout


class CanvasLike(Protocol):
    """What the compositor needs of the websocket canvas (sources/canvas.py)."""

    SIZE: int

    @property
    def version(self) -> int: ...

    def texture(self) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class PackedCanvas(CanvasLike, Protocol):
    """A canvas that also hands out its picture packed for the overlay, in cell order (`Canvas.packed`)."""

    CELL: int

    def packed(self) -> tuple[np.ndarray, bool]: ...


class CanvasOverlay:
    """Draws the websocket canvas over LED colours: each LED shows the canvas where something was drawn under it.

    The canvas is stretched over the layout's bounding box; an LED samples it at its position, and across
    its footprint where it has one (the brightest drawn sample wins, so thin strokes between sparse LEDs
    still show). When the canvas changes, that becomes two byte masks per LED channel, ``keep`` (0xFF
    where the LED keeps its own colour, 0 under drawing) and ``paint`` (the canvas colour under drawing,
    0 elsewhere); a frame is then ``leds & keep | paint``, two passes of plain byte logic. The compiled frame
    pass takes the same drawing as a list of drawn LEDs and their colours (`drawn_colors`). With ``color``
    (the `ColorCorrection` the LEDs beneath went through), the canvas colours go through it too.
    """

    def __init__(self, layout: Layout, canvas: CanvasLike, color: ColorCorrection | None = None) -> None:
        self.canvas = canvas
        self.color = color
        n = layout.count
        self._samples = canvas_samples(layout, canvas.SIZE)
        # a canvas that packs its picture itself (`Canvas.packed`): sample it where the pixels lie in it
        self._packer: Callable[[], tuple[np.ndarray, bool]] | None = None
        if isinstance(canvas, PackedCanvas):
            self._packer = canvas.packed
            self._samples = [cell_order(index, canvas.SIZE, canvas.CELL) for index in self._samples]
        self._version = -1
        self._drawn = False
        self._keep = np.empty((n, 3), np.uint8)
        self._paint = np.empty((n, 3), np.uint8)
        self._out = np.empty((n, 3), np.uint8)
        # sampling buffers, for a canvas that changes every frame
        self._packed = np.empty(canvas.SIZE * canvas.SIZE, np.uint32)
        self._flags = np.empty_like(self._packed)
        self._best = np.empty(n, np.uint32)
        self._sample = np.empty(n, np.uint32)
        self._under = np.empty(n, np.uint8)
        self._drawn_leds = np.empty(0, np.int32)  # `drawn_colors`, made when the canvas changes
        self._colors = np.empty((0, 3), np.uint8)

    @property
    def changed(self) -> bool:
        """The canvas changed since the last `update` (or `draw`)."""
        return self.canvas.version != self._version

    def update(self) -> bool:
        """Follow the canvas if it changed; True when something is drawn (then `drawn_colors` and
        `draw_in_place` give it)."""
        if self.changed:
            self._prepare()
        return self._drawn

    @property
    def drawn_colors(self) -> tuple[np.ndarray, np.ndarray]:
        """(the LEDs that show the canvas as int32 numbers, their (k, 3) colours), for the compiled pass."""
        return self._drawn_leds, self._colors

    def draw(self, leds: np.ndarray) -> np.ndarray:
        """``leds`` (n, 3) uint8 in wiring order, not modified: itself when nothing is drawn over it, else a
        reused (n, 3) array with the canvas drawn over."""
        if not self.update():
            return leds
        return self._draw(leds, self._out)

    def draw_in_place(self, leds: np.ndarray) -> None:
        """Draw the canvas over ``leds`` (n, 3) itself (after `update` said something is drawn)."""
        self._draw(leds, leds)

    def _draw(self, leds: np.ndarray, out: np.ndarray) -> np.ndarray:
        np.bitwise_and(leds, self._keep, out=out)
        return np.bitwise_or(out, self._paint, out=out)

    def _prepare(self) -> None:
        self._version = self.canvas.version
        # one uint32 per canvas pixel: drawn (bit 31), lit (bit 30), 0xRRGGBB; the max over an LED's
        # samples is its brightest drawn sample
        if self._packer is not None:
            packed, drawn = self._packer()
            if not drawn:
                self._drawn = False
                return
        else:
            rgb, alpha = self.canvas.texture()
            if not alpha.any():
                self._drawn = False
                return
            packed = self._pack(rgb, alpha)
        best, sample = self._best, self._sample
        first, *others = self._samples
        np.take(packed, first, out=best, mode="wrap")  # the indices are valid: no bounds check
        for index in others:
            np.take(packed, index, out=sample, mode="wrap")
            np.maximum(best, sample, out=best)
        under = self._under  # 1 where the LED shows the canvas (then 0xFF)
        np.right_shift(best, 31, out=sample)
        np.copyto(under, sample, casting="unsafe")
        self._drawn = bool(under.any())
        # keep = 0xFF - 0xFF * under; paint = the sample's R, G, B where under (a channel at a time: numpy
        # broadcasts (n, 1) over (n, 3) element by element, 30 times slower)
        np.multiply(under, 0xFF, out=under)
        channels = best.astype("<u4", copy=False).view(np.uint8).reshape(-1, 4)  # B, G, R, flags
        for c in range(3):
            np.subtract(0xFF, under, out=self._keep[:, c])
            np.bitwise_and(channels[:, 2 - c], under, out=self._paint[:, c])
        if self.color is not None:  # 0 stays 0 (every gamma table maps 0 to 0): only the paint changes
            self.color(self._paint, self._paint)
        self._drawn_leds = np.flatnonzero(under).astype(np.int32)
        self._colors = np.ascontiguousarray(self._paint[self._drawn_leds])

    def _pack(self, rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """A texture (rgb, alpha) -> one uint32 per canvas pixel, in a reused array."""
        packed, flags = self._packed, self._flags
        flat = rgb.reshape(-1, 3)
        np.left_shift(flat[:, 0], 16, out=packed, dtype=np.uint32)
        np.left_shift(flat[:, 1], 8, out=flags, dtype=np.uint32)
        np.bitwise_or(packed, flags, out=packed)
        np.bitwise_or(packed, flat[:, 2], out=packed)
        np.not_equal(packed, 0, out=flags, casting="unsafe")  # lit: 1
        np.left_shift(flags, 30, out=flags)
        np.bitwise_or(packed, flags, out=packed)
        np.left_shift(alpha.reshape(-1), 31, out=flags, dtype=np.uint32)
        np.bitwise_or(packed, flags, out=packed)
        return packed


def cell_order(index: np.ndarray, size: int, cell: int) -> np.ndarray:
    """Row-major pixel indices of a size x size picture -> the same pixels' indices in cell order (cells of
    cell x cell pixels, row-major, each cell's pixels row-major: `Canvas.packed`)."""
    y, x = np.divmod(index, size)
    cells = (y // cell) * (size // cell) + x // cell
    return cells * cell * cell + (y % cell) * cell + x % cell


def canvas_samples(layout: Layout, size: int) -> list[np.ndarray]:
    """Canvas pixel indices each LED samples: its position, and across its footprint if it has one.

    The canvas is stretched over the layout's bounding box.
    """
    lo, span = layout.box()
    scale = (size - 1) / np.where(span > 0, span, 1.0)
    points = [layout.positions]
    if layout.footprint is not None:
        points += [layout.positions + layout.footprint * f for f in (-0.5, 0.5)]
    columns = []
    for p in points:
        px = np.clip(np.round((p - lo) * scale), 0, size - 1).astype(np.int64)
        columns.append(px[:, 1] * size + px[:, 0])
    return columns
