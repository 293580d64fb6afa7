"""The 32 x 32 cell canvas that websocket clients draw on, shared by all connections.

Each cell is undrawn (transparent: the shared frame shows through) or holds a glyph in a colour on
black; a colour pixel is the solid glyph. Cells remember which session drew them, so a session's quit
can clear its own drawing. Thread-safe: the websocket thread applies whole transactions under the lock,
the frame clock reads `texture()`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from skyscreen_hw.sources.font import glyph_bitmaps
from skyscreen_hw.sources.instructions import CELLS, RGB12, SOLID, Cells, Rect, Transaction, cell_index

UNDRAWN = -1
DRAWN_BIT, LIT_BIT = 1 << 31, 1 << 30  # of `Canvas.packed()`


class Canvas:
    """32 x 32 cells of CELL x CELL pixels; `texture()` is the picture, `version` grows on every change."""

    CELL = 8
    SIZE = CELLS * CELL

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._on_change = on_change  # called after every change, outside the lock (wakes the frame clock)
        self._lock = threading.Lock()
        n = CELLS * CELLS
        self.glyph = np.full(n, UNDRAWN, dtype=np.int16)  # by cell, y * 32 + x
        self.colour = np.zeros(n, dtype=np.uint32)  # 0xRRGGBB
        self.owner = np.zeros(n, dtype=np.int64)  # session id; 0 = nobody
        self._bitmaps = glyph_bitmaps(self.CELL)  # (SOLID + 1, CELL, CELL) bool
        self._latest = np.empty(n, dtype=np.int64)
        self._version = 0
        self._texture: tuple[int, np.ndarray, np.ndarray] | None = None

    @property
    def version(self) -> int:
        return self._version

    def apply(self, session: int, transaction: Transaction) -> None:
        """Apply every operation of one decoded message at once (`session` > 0 names the drawer)."""
        if not transaction.ops:
            return
        with self._lock:
            for op in transaction.ops:
                if isinstance(op, Rect):
                    grid = np.s_[op.top : op.bottom + 1, op.left : op.right + 1]
                    self.glyph.reshape(CELLS, CELLS)[grid] = SOLID
                    self.colour.reshape(CELLS, CELLS)[grid] = op.colour
                    self.owner.reshape(CELLS, CELLS)[grid] = session
                else:
                    self._cells(session, op)
            self._version += 1
        self._changed()

    def paint(self, session: int, words: np.ndarray) -> None:
        """Apply colour-pixel words (uint32, checked by `instructions.pixel_runs`) at once, in order: the same
        as applying the messages they came in one by one."""
        if not len(words):
            return
        cell = cell_index(words)
        with self._lock:
            cells, src = self._last_writes(cell)
            self.glyph[cells] = SOLID
            self.colour[cells] = RGB12[words[src] & 0xFFF]
            self.owner[cells] = session
            self._version += 1
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def _last_writes(self, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The cells written and, for each, the index of its last write in `cell` (call under the lock)."""
        # numpy does not promise an order for repeated indices: find each cell's last write first
        latest = self._latest
        latest.fill(-1)
        np.maximum.at(latest, cell, np.arange(len(cell)))
        cells = np.flatnonzero(latest >= 0)
        return cells, latest[cells]

    def _cells(self, session: int, op: Cells) -> None:
        cells, src = self._last_writes(op.cell)
        self.glyph[cells] = op.glyph[src]
        self.colour[cells] = op.colour[src]
        self.owner[cells] = session

    def clear(self, session: int) -> None:
        """Forget what `session` drew (its quit); cells others drew over since stay."""
        with self._lock:
            mine = self.owner == session
            if mine.any():
                self.glyph[mine] = UNDRAWN
                self.colour[mine] = 0
                self.owner[mine] = 0
                self._version += 1
            else:
                return
        self._changed()

    def texture(self) -> tuple[np.ndarray, np.ndarray]:
        """(rgb (SIZE, SIZE, 3) uint8, alpha (SIZE, SIZE) bool): the picture, alpha false where undrawn."""
        with self._lock:
            cached = self._texture
            if cached is not None and cached[0] == self._version:
                return cached[1], cached[2]
            glyph, colour, version = self.glyph.copy(), self.colour.copy(), self._version
        drawn = glyph != UNDRAWN
        rgb = (colour[:, None] >> np.array([16, 8, 0], dtype=np.uint32)).astype(np.uint8)  # (1024, 3)
        bits = self._bitmaps[np.where(drawn, glyph, 0)]  # (1024, CELL, CELL)
        pixels = bits[..., None] * rgb[:, None, None, :]  # (1024, CELL, CELL, 3)
        c, t = self.CELL, self.SIZE
        picture = pixels.reshape(CELLS, CELLS, c, c, 3).transpose(0, 2, 1, 3, 4).reshape(t, t, 3)
        alpha = np.repeat(np.repeat(drawn.reshape(CELLS, CELLS), c, axis=0), c, axis=1)
        self._texture = (version, picture, alpha)
        return picture, alpha

    def packed(self) -> tuple[np.ndarray, bool]:
        """The picture for the LED overlay, one uint32 per pixel in cell order (pixel (row, col) of cell c
        at c * CELL * CELL + row * CELL + col): bit 31 drawn, bit 30 lit (not black), then 0xRRGGBB; and
        whether anything is drawn. The same pixels as `texture()` without building the RGB picture."""
        with self._lock:
            glyph, colour = self.glyph.copy(), self.colour.copy()
        drawn = glyph != UNDRAWN
        off = np.where(drawn, DRAWN_BIT, 0).astype(np.uint32)  # a drawn cell's unlit pixels (black)
        on = off | np.where(colour != 0, LIT_BIT, 0).astype(np.uint32) | colour
        bits = self._bitmaps.reshape(len(self._bitmaps), -1)[np.where(drawn, glyph, 0)]  # (1024, CELL * CELL)
        return np.where(bits, on[:, None], off[:, None]).reshape(-1), bool(drawn.any())

    def text(self) -> list[str]:
        """The canvas as 32 lines of text (glyph characters, '#' for filled cells, ' ' elsewhere): for tests."""
        glyph = self.glyph.reshape(CELLS, CELLS)
        chars = np.where(glyph == SOLID, ord("#"), np.where(glyph < 32, ord(" "), glyph))
        return ["".join(chr(c) for c in row).rstrip() for row in chars]
