"""Colour correction: gamma and brightness as one lookup table, applied to whole arrays.

numpy has no byte-wise table lookup, so bytes are looked up two at a time: a 65,536-entry uint16 table
holds, for each pair of bytes read as one uint16, both corrected bytes (`pair_table`). The pairs are
widened once a frame into a reused intp buffer (`np.take` needs intp indices and would otherwise allocate
that widened copy every frame), then `np.take` does the lookup.

With an enabled power limit (`ColorCorrection(leds, out, power)`), the same lookup also measures what
the frame draws: the table's entries are uint32, the corrected pair in the high half and the sum of the
pair's corrected bytes in the low half, and a blocked reduction of the low halves gives the frame's sum
exactly. A frame over the limit is then looked up once more, through the table already scaled under the
limit; while frames keep being limited, the sum comes first (a pair-sum lookup) so each frame is looked
up through the scaled table only. Either way the result is exactly ``power(color(leds, out))``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from skyscreen_hw.config import ColorConfig

if TYPE_CHECKING:
    from skyscreen_hw.power import PowerLimit

PAIRS = 65536
BLOCK = 128  # pair sums (<= 510) summed in uint16 lanes over at most this many rows: 510 * 128 < 65536


def gamma_table(gamma: float, brightness: float) -> np.ndarray:
    """The 256-entry uint8 table ``round(255 * brightness * (v / 255) ** gamma)``."""
    v = np.arange(256, dtype=np.float64) / 255.0
    return np.round(255.0 * brightness * v**gamma).astype(np.uint8)


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


class PairIndex:
    """The bytes of one array as uint16 pair indices in a reused intp buffer, for lookups two bytes at a time.

    `load` reads an array's bytes; the lookups then write any array of the same size (the loaded one
    included: the indices are a copy). Buffers are allocated for the first size only.
    """

    def __init__(self) -> None:
        self.index = np.empty(0, np.intp)
        self.size = 0
        self.odd: int | None = None  # an odd last byte, which is not part of a pair
        self._sums16 = np.empty(0, np.uint16)
        self._sums32 = np.empty(0, np.uint32)
        self._block16 = np.empty(0, np.uint16)
        self._block32 = np.empty(0, np.uint32)
        self._block64 = np.empty(0, np.uint64)
        self._scratch = np.empty(0, np.uint8)

    def load(self, data: np.ndarray) -> None:
        """Read the bytes of ``data`` (uint8, any shape)."""
        flat = data.reshape(-1)  # a view when contiguous, else a copy (read only)
        pairs = flat.size // 2
        if self.index.size != pairs:
            padded = -(-pairs // BLOCK) * BLOCK  # zeros past the last pair: whole blocks, nothing left over
            self.index = np.empty(pairs, np.intp)
            self._sums16 = np.zeros(padded, np.uint16)
            self._sums32 = np.zeros(padded, np.uint32)
            self._block16 = np.empty(padded // BLOCK, np.uint16)
            self._block32 = np.empty(padded // BLOCK, np.uint32)
            self._block64 = np.empty(padded // BLOCK, np.uint64)
        self.size = flat.size
        np.copyto(self.index, flat[: 2 * pairs].view(np.uint16))
        self.odd = int(flat[-1]) if flat.size % 2 else None

    def lookup(self, table16: np.ndarray, table8: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Every loaded byte through ``table8`` (``table16``: its `pair_table`) into ``out``; returns ``out``."""
        dst = self._destination(out)
        np.take(table16, self.index, out=self._pair_view(dst), mode="wrap")
        if self.odd is not None:
            dst[-1] = table8[self.odd]
        return self._written(dst, out)

    def total(self, sums16: np.ndarray, table8: np.ndarray) -> int:
        """Sum over the loaded bytes of ``table8[byte]``; ``sums16`` holds ``table8``'s pair sums."""
        np.take(sums16, self.index, out=self._sums16[: self.index.size], mode="wrap")
        np.add.reduce(self._sums16.reshape(BLOCK, -1), axis=0, out=self._block16)
        total = self._sum_blocks(self._block16)
        return total + (int(table8[self.odd]) if self.odd is not None else 0)

    def lookup_and_total(self, table32: np.ndarray, table8: np.ndarray, out: np.ndarray) -> int:
        """`lookup` through ``table32`` (corrected pair << 16 | pair sum) into ``out``; returns the sum of ``out``."""
        sums = self._sums32[: self.index.size]
        np.take(table32, self.index, out=sums, mode="wrap")
        # a block's sum holds its pair sums (< 65536) exactly in the low 16 bits; the high halves wrap away
        np.add.reduce(self._sums32.reshape(BLOCK, -1), axis=0, out=self._block32)
        np.bitwise_and(self._block32, 0xFFFF, out=self._block32)
        total = self._sum_blocks(self._block32)
        dst = self._destination(out)
        np.right_shift(sums, 16, out=sums)
        np.copyto(self._pair_view(dst), sums, casting="unsafe")
        if self.odd is not None:
            dst[-1] = table8[self.odd]
            total += int(dst[-1])
        self._written(dst, out)
        return total

    def _sum_blocks(self, blocks: np.ndarray) -> int:
        np.copyto(self._block64, blocks)  # widened without the iterator's buffers
        return int(np.add.reduce(self._block64))

    def _destination(self, out: np.ndarray) -> np.ndarray:
        if out.size != self.size:
            raise ValueError(f"out has {out.size} bytes, the loaded array {self.size}")
        if out.flags.c_contiguous:
            return out.reshape(-1)
        if self._scratch.size != self.size:
            self._scratch = np.empty(self.size, np.uint8)
        return self._scratch

    def _pair_view(self, dst: np.ndarray) -> np.ndarray:
        return dst[: 2 * self.index.size].view(np.uint16)

    def _written(self, dst: np.ndarray, out: np.ndarray) -> np.ndarray:
        if dst is self._scratch:
            np.copyto(out, dst.reshape(out.shape))
        return out


class ColorCorrection:
    """Applies the [color] table to LED bytes; with a `PowerLimit`, also keeps the frame under its limit.

    An identity table (gamma 1, brightness 1) is a plain copy.
    """

    def __init__(self, config: ColorConfig) -> None:
        self.table = gamma_table(config.gamma, config.brightness)
        self.identity = bool(np.array_equal(self.table, np.arange(256)))
        self._high = np.empty((256, 1), np.uint16)
        self._table16 = pair_table(self.table, high=self._high)
        self._pairs = PairIndex()
        # made on first use with a power limit
        self._sums16: np.ndarray | None = None
        self._table32: np.ndarray | None = None
        self._scaled8 = np.empty(256, np.uint8)
        self._scaled16 = np.empty(PAIRS, np.uint16)
        self._limited = False  # the last frame was over the limit: measure first, then look up once

    def __call__(self, leds: np.ndarray, out: np.ndarray, power: PowerLimit | None = None) -> np.ndarray:
        """Write the corrected ``leds`` (uint8, any shape) into ``out`` (same shape; may be ``leds``), return it.

        With an enabled ``power``, ``out`` is also scaled under its limit (its ``last_scale`` and
        ``frames_limited`` are kept): exactly what ``power(self(leds, out))`` gives, in fewer passes.
        """
        if power is None or not power.enabled:
            if self.identity:
                np.copyto(out, leds)
                return out
            self._pairs.load(leds)
            return self._pairs.lookup(self._table16, self.table, out)
        return self._limit(leds, out, power)

    def _limit(self, leds: np.ndarray, out: np.ndarray, power: PowerLimit) -> np.ndarray:
        if self._sums16 is None or self._table32 is None:
            u = np.arange(PAIRS)
            sums = self.table[u >> 8].astype(np.uint32) + self.table[u & 0xFF]
            self._sums16 = sums.astype(np.uint16)
            self._table32 = (self._table16.astype(np.uint32) << 16) | sums
        pairs = self._pairs
        pairs.load(leds)
        if self._limited:
            scale = power.scale_for(pairs.total(self._sums16, self.table))
        else:
            scale = power.scale_for(pairs.lookup_and_total(self._table32, self.table, out))
            if scale is None:
                return out
        self._limited = scale is not None
        if scale is None:
            return pairs.lookup(self._table16, self.table, out)
        scaled = power.scaled_table(scale, self.table, self._scaled8)
        return pairs.lookup(pair_table(scaled, self._scaled16, self._high), scaled, out)
