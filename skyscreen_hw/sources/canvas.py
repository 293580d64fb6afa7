"""The 32 x 32 cell canvas that websocket clients draw on, shared by all connections.

Each cell is undrawn (transparent: the shared frame shows through) or holds a glyph in a colour on
black; a colour pixel is the solid glyph. Cells remember which session drew them, so a session's quit
can clear its own drawing. Thread-safe: the websocket thread applies whole transactions under the lock,
the frame clock reads `texture()`.
"""

from __future__ import annotations

import threading

import numpy as np

from skyscreen_hw.sources.font import glyph_bitmaps
from skyscreen_hw.sources.instructions import CELLS, SOLID, Cells, Rect, Transaction

UNDRAWN = -1


class Canvas:
    """32 x 32 cells of CELL x CELL pixels; `texture()` is the picture, `version` grows on every change."""

    CELL = 8
    SIZE = CELLS * CELL

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.glyph = np.full((CELLS, CELLS), UNDRAWN, dtype=np.int16)  # [y, x]
        self.rgb = np.zeros((CELLS, CELLS, 3), dtype=np.uint8)
        self.owner = np.zeros((CELLS, CELLS), dtype=np.int64)  # session id; 0 = nobody
        self._bitmaps = glyph_bitmaps(self.CELL)  # (SOLID + 1, CELL, CELL) bool
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
                    cells = np.s_[op.top : op.bottom + 1, op.left : op.right + 1]
                    self.glyph[cells] = SOLID
                    self.rgb[cells] = op.rgb
                    self.owner[cells] = session
                else:
                    self._cells(session, op)
            self._version += 1

    def _cells(self, session: int, op: Cells) -> None:
        # numpy assigns repeated indices in order, but keep only each cell's last write to be sure
        flat = op.y * CELLS + op.x
        _, last = np.unique(flat[::-1], return_index=True)
        pick = len(flat) - 1 - last
        y, x = op.y[pick], op.x[pick]
        self.glyph[y, x] = op.glyph[pick]
        self.rgb[y, x] = op.rgb[pick]
        self.owner[y, x] = session

    def clear(self, session: int) -> None:
        """Forget what `session` drew (its quit); cells others drew over since stay."""
        with self._lock:
            mine = self.owner == session
            if mine.any():
                self.glyph[mine] = UNDRAWN
                self.rgb[mine] = 0
                self.owner[mine] = 0
                self._version += 1

    def texture(self) -> tuple[np.ndarray, np.ndarray]:
        """(rgb (SIZE, SIZE, 3) uint8, alpha (SIZE, SIZE) bool): the picture, alpha false where undrawn."""
        with self._lock:
            cached = self._texture
            if cached is not None and cached[0] == self._version:
                return cached[1], cached[2]
            glyph, rgb, version = self.glyph.copy(), self.rgb.copy(), self._version
        drawn = glyph != UNDRAWN
        bits = self._bitmaps[np.where(drawn, glyph, 0)]  # (32, 32, CELL, CELL)
        pixels = np.where(bits[..., None], rgb[:, :, None, None, :], 0).astype(np.uint8)
        picture = pixels.transpose(0, 2, 1, 3, 4).reshape(self.SIZE, self.SIZE, 3)
        alpha = np.repeat(np.repeat(drawn, self.CELL, axis=0), self.CELL, axis=1)
        self._texture = (version, picture, alpha)
        return picture, alpha

    def text(self) -> list[str]:
        """The canvas as 32 lines of text (glyph characters, '#' for filled cells, ' ' elsewhere): for tests."""
        chars = np.where(self.glyph == SOLID, ord("#"), np.where(self.glyph < 32, ord(" "), self.glyph))
        return ["".join(chr(c) for c in row).rstrip() for row in chars]
