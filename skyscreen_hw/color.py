"""Colour correction, and the byte-wise table lookups it and the power limit run on.

The colour table is gamma and brightness as one 256-entry table. `Lookups` applies tables to whole arrays:
the package's C module where it was built (``skyscreen_hw._tables``: the table stays in the L1 cache, each
byte is read and written once, and the layout's gather can go through the table in the same pass), numpy
otherwise. numpy has no byte-wise table lookup, so there bytes are looked up two at a time: a
65,536-entry uint16 table holds, for each pair of bytes read as one uint16, both corrected bytes
(`pair_table`), and `np.take` looks the pairs up (`PairLookup`: chunk by chunk through a small reused index
buffer). Both give the same bytes; on the cold cache the daemon wakes up to every frame, the C module
costs about half as much.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from skyscreen_hw.config import ColorConfig

if TYPE_CHECKING:
    from skyscreen_hw.compositor import CanvasOverlay
    from skyscreen_hw.layouts import LedGather


def compiled_tables() -> ModuleType | None:
    """The C lookups (``skyscreen_hw._tables``) when they were built with the package, else None."""
    try:
        from skyscreen_hw import _tables
    except ImportError:
        return None
    return _tables


COMPILED = compiled_tables()
PAIRS = 65536
IDENTITY = np.arange(256, dtype=np.uint8)

FramePass = Callable[[np.ndarray, "CanvasOverlay | None"], "int | None"]
"""A prepared `Lookups.gather_lookup`: (frame, overlay or None) -> the picture's sum, where it came free."""


def gamma_table(gamma: float, brightness: float) -> np.ndarray:
    """The 256-entry uint8 table ``round(255 * brightness * (v / 255) ** gamma)``."""
    v = np.arange(256, dtype=np.float64) / 255.0
    return np.round(255.0 * brightness * v**gamma).astype(np.uint8)


def scaled_table(scale: float, out: np.ndarray | None = None) -> np.ndarray:
    """``floor(v * scale)`` for every byte value v, as a uint8 table (into ``out`` if given)."""
    out = np.empty(256, np.uint8) if out is None else out
    np.copyto(out, np.multiply(IDENTITY, scale, dtype=np.float64), casting="unsafe")  # truncation: the floor
    return out


def pair_table(table: np.ndarray, out: np.ndarray | None = None, high: np.ndarray | None = None) -> np.ndarray:
    """The (65536,) uint16 table that maps two bytes at once, read as one native uint16, through ``table``.

    Entry ``u`` is ``table[u >> 8] << 8 | table[u & 0xFF]``: each byte of the pair goes through ``table``
    in place, whichever byte order the machine has. ``out`` and ``high`` ((256, 1) uint16) are reused
    buffers, so a new table costs no allocation.
    """
    out = np.empty(PAIRS, np.uint16) if out is None else out
    high = np.empty((256, 1), np.uint16) if high is None else high
    np.left_shift(table[:, None], 8, out=high, dtype=np.uint16)
    np.bitwise_or(high, table[None, :], out=out.reshape(256, 256))
    return out


class PairLookup:
    """Byte-wise table lookups on whole uint8 arrays in numpy, two bytes a lookup.

    The pairs are widened into intp indices (what `np.take` wants; given uint16 it would allocate the
    widened copy every call) a chunk of CHUNK pairs at a time, into one reused buffer that stays in the
    cache while its lookup runs: widening the whole frame first costs a third more on a cold cache.
    Arrays of any shape; ``out`` may be ``src``. Buffers are made for the first size seen.
    """

    CHUNK = 16384  # pairs: 128 kB of indices

    def __init__(self) -> None:
        self._index = np.empty(self.CHUNK, np.intp)
        self._scratch = np.empty(0, np.uint8)
        self._views: dict[tuple[int, int, int], list[tuple[np.ndarray, np.ndarray]]] = {}

    def lookup(self, src: np.ndarray, table16: np.ndarray, table8: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out`` = every byte of ``src`` through ``table8`` (``table16``: its `pair_table`); returns ``out``."""
        flat, dst = self._flat(src), self._destination(out, src.size)
        odd = int(flat[-1]) if flat.size % 2 else None  # read before ``out`` (maybe ``src``) is written
        for pairs, into in self._chunks(flat, dst):
            np.take(table16, self._widen(pairs), out=into, mode="wrap")
        if odd is not None:
            dst[-1] = table8[odd]
        return self._written(dst, out)

    def _flat(self, src: np.ndarray) -> np.ndarray:
        flat = src.reshape(-1)  # a view when contiguous, else a copy (read only)
        return flat if flat.flags.c_contiguous else np.ascontiguousarray(flat)  # a uniformly strided view

    def _widen(self, pairs: np.ndarray) -> np.ndarray:
        index = self._index[: pairs.size]
        np.copyto(index, pairs)
        return index

    def _chunks(self, flat: np.ndarray, dst: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(source pairs, destination pairs) uint16 views chunk by chunk, made once for each pair of buffers."""
        key = (flat.__array_interface__["data"][0], flat.size, dst.__array_interface__["data"][0])
        views = self._views.get(key)
        if views is None:
            pairs = flat[: flat.size // 2 * 2].view(np.uint16)
            into = dst[: flat.size // 2 * 2].view(np.uint16)
            step = self.CHUNK
            views = [(pairs[i : i + step], into[i : i + step]) for i in range(0, pairs.size, step)]
            if len(self._views) >= 8:  # a frame path uses a few pairs of buffers, again and again
                self._views.clear()
            self._views[key] = views
        return views

    def _destination(self, out: np.ndarray, size: int) -> np.ndarray:
        if out.size != size:
            raise ValueError(f"out has {out.size} bytes, the source {size}")
        if out.flags.c_contiguous:
            return out.reshape(-1)
        if self._scratch.size != size:
            self._scratch = np.empty(size, np.uint8)
        return self._scratch

    def _written(self, dst: np.ndarray, out: np.ndarray) -> np.ndarray:
        if dst is self._scratch:
            np.copyto(out, dst.reshape(out.shape))
        return out


class Lookups:
    """Tables applied to whole uint8 arrays, and their sums: the C module's where it was built (``compiled``),
    numpy's otherwise (``compiled=None``, or an array that is not contiguous); the same bytes either way."""

    def __init__(self, compiled: ModuleType | None = COMPILED) -> None:
        self.compiled = compiled
        self._pairs = PairLookup()
        self._table16 = np.empty(PAIRS, np.uint16)
        self._high = np.empty((256, 1), np.uint16)
        self._paired = np.empty(0, np.uint8)  # the table ``_table16`` was made from
        self._scaled = np.empty(256, np.uint8)

    def lookup(self, src: np.ndarray, table: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out`` (may be ``src``) = every byte of ``src`` through the 256-byte ``table``; returns ``out``."""
        if self.compiled is not None and src.flags.c_contiguous and out.flags.c_contiguous:
            self.compiled.lookup(src, table, out)
            return out
        if not np.array_equal(self._paired, table):
            pair_table(table, self._table16, self._high)
            self._paired = table.copy()
        return self._pairs.lookup(src, self._table16, table, out)

    def gather_lookup(
        self,
        frame: np.ndarray,
        gather: LedGather,
        table: np.ndarray | None,
        out: np.ndarray,
        overlay: CanvasOverlay | None = None,
    ) -> int | None:
        """``out`` (n, 3) = each LED's frame pixel (``gather``) through ``table`` (None: none), with ``overlay``
        (prepared, something drawn) drawn over: one pass where compiled, which also gives the sum of ``out``
        (else None). Once: the frame clock prepares the pass (`frame_pass`)."""
        return self.frame_pass(gather, table, out, summed=True)(frame, overlay)

    def frame_pass(self, gather: LedGather, table: np.ndarray | None, out: np.ndarray, summed: bool) -> FramePass:
        """`gather_lookup` with the gather, table and ``out`` fixed, prepared once: what the frame clock calls
        with each frame (and the overlay, when something is drawn). ``summed=False``: the compiled pass skips
        the sum (nothing needs it without a power limit) and the pass gives None."""

        def in_numpy(frame: np.ndarray, overlay: CanvasOverlay | None) -> None:
            gather(frame, out)
            if table is not None:
                self.lookup(out, table, out)
            if overlay is not None:
                overlay.draw_in_place(out)

        compiled = self.compiled
        if compiled is None or not out.flags.c_contiguous:
            return in_numpy
        one_pass = compiled.gather_lookup if summed else compiled.gather_only
        runs, lut = gather.runs, IDENTITY if table is None else table

        def run(frame: np.ndarray, overlay: CanvasOverlay | None) -> int | None:
            if not frame.flags.c_contiguous:
                in_numpy(frame, overlay)
                return None
            if overlay is None:
                return one_pass(frame, runs, lut, out)  # type: ignore[no-any-return]
            return one_pass(frame, runs, lut, out, *overlay.drawn_colors)  # type: ignore[no-any-return]

        return run

    def scale(self, src: np.ndarray, scale: float, out: np.ndarray) -> np.ndarray:
        """``out`` (may be ``src``) = ``floor(src * scale)`` for ``0 <= scale < 1`` (`scaled_table`); returns
        ``out``. Compiled, as one call: a vectorized multiplication wherever one gives the same bytes."""
        if self.compiled is not None and src.flags.c_contiguous and out.flags.c_contiguous:
            self.compiled.scale(src, scale, out)
            return out
        return self.lookup(src, scaled_table(scale, self._scaled), out)

    def total(self, src: np.ndarray) -> int:
        """The sum of the bytes of ``src``."""
        if self.compiled is not None and src.flags.c_contiguous:
            return int(self.compiled.total(src))
        return int(np.add.reduce(src.reshape(-1), dtype=np.uint64))


class ColorCorrection:
    """Applies the [color] table to LED bytes, or to a frame on its way to the LEDs (`gather`).

    An identity table (gamma 1, brightness 1) is a plain copy.
    """

    def __init__(self, config: ColorConfig, lookups: Lookups | None = None) -> None:
        self.lookups = lookups or Lookups()
        self.table = gamma_table(config.gamma, config.brightness)
        self.identity = bool(np.array_equal(self.table, IDENTITY))

    def __call__(self, leds: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write the corrected ``leds`` (uint8, any shape) into ``out`` (same shape; may be ``leds``), return it."""
        if self.identity:
            np.copyto(out, leds)
            return out
        return self.lookups.lookup(leds, self.table, out)

    def gather(
        self, frame: np.ndarray, gather: LedGather, out: np.ndarray, overlay: CanvasOverlay | None = None
    ) -> int | None:
        """``out`` (n, 3) = the frame's pixel of each LED (``gather``), corrected, with ``overlay`` (prepared,
        something drawn, its colours corrected by this table) drawn over; returns the sum of ``out`` where it
        came free (`Lookups.gather_lookup`), else None."""
        return self.lookups.gather_lookup(frame, gather, None if self.identity else self.table, out, overlay)

    def frame_pass(self, gather: LedGather, out: np.ndarray, summed: bool) -> FramePass:
        """`gather` with ``gather`` and ``out`` fixed, prepared once (`Lookups.frame_pass`)."""
        return self.lookups.frame_pass(gather, None if self.identity else self.table, out, summed)
