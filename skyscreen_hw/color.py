"""Colour correction: gamma and brightness as one lookup table, applied to whole arrays.

Where the package's C module was built (``skyscreen_hw._tables``: a 256-byte table looked up byte by byte,
summing as it goes), it does the lookups: on the cold cache the daemon wakes up to every frame it costs
about 100 us a frame less than the numpy lookups below. Without it (no C compiler at install), numpy:
numpy has no byte-wise table lookup, so bytes are looked up two at a time: a 65,536-entry uint16 table
holds, for each pair of bytes read as one uint16, both corrected bytes (`pair_table`), and `np.take`
looks the pairs up (`PairLookup`: chunk by chunk through a small reused index buffer, see there).

With an enabled power limit (`ColorCorrection(leds, out, power)`), the same lookup also measures what
the frame draws: the table's entries are uint32, the corrected pair in the high half and the sum of the
pair's corrected bytes in the low half, and a blocked reduction of the low halves gives the frame's sum
exactly. A frame over the limit is then looked up once more, through the table already scaled under the
limit; while frames keep being limited, the sum comes first (a pair-sum lookup) so each frame is looked
up through the scaled table only. Either way the result is exactly ``power(color(leds, out))``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from skyscreen_hw.config import ColorConfig

if TYPE_CHECKING:
    from skyscreen_hw.power import PowerLimit

def compiled_tables() -> ModuleType | None:
    """The C lookups (``skyscreen_hw._tables``) when they were built with the package, else None."""
    try:
        from skyscreen_hw import _tables
    except ImportError:
        return None
    return _tables


COMPILED = compiled_tables()
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


class PairLookup:
    """Byte-wise table lookups and sums on whole uint8 arrays, two bytes a numpy lookup.

    The pairs are widened into intp indices (what `np.take` wants; given uint16 it would allocate the
    widened copy every call) a chunk of CHUNK pairs at a time, into one reused buffer that stays in the
    cache while its lookup runs: widening the whole frame first costs a third more on a cold cache.
    Arrays of any shape; ``out`` may be ``src``. Buffers are made for the first size seen.
    """

    CHUNK = 16384  # pairs: 128 kB of indices

    def __init__(self) -> None:
        self._index = np.empty(self.CHUNK, np.intp)
        self._pairs = 0
        self._sums16 = np.empty(0, np.uint16)
        self._sums32 = np.empty(0, np.uint32)
        self._block16 = np.empty(0, np.uint16)
        self._block32 = np.empty(0, np.uint32)
        self._block64 = np.empty(0, np.uint64)
        self._scratch = np.empty(0, np.uint8)
        self._whole = np.empty(0, np.intp)  # every pair of a frame widened (`measure_then_lookup`)
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

    def total(self, src: np.ndarray, sums16: np.ndarray, table8: np.ndarray) -> int:
        """Sum over the bytes of ``src`` of ``table8[byte]``; ``sums16`` holds ``table8``'s pair sums."""
        flat = self._flat(src)
        self._size_sums(flat.size // 2)
        at = 0
        for pairs, _ in self._chunks(flat, None):
            np.take(sums16, self._widen(pairs), out=self._sums16[at : at + pairs.size], mode="wrap")
            at += pairs.size
        np.add.reduce(self._sums16.reshape(BLOCK, -1), axis=0, out=self._block16)
        total = self._sum_blocks(self._block16)
        return total + (int(table8[flat[-1]]) if flat.size % 2 else 0)

    def measure_then_lookup(
        self,
        src: np.ndarray,
        sums16: np.ndarray,
        table8: np.ndarray,
        tables: Callable[[int], tuple[np.ndarray, np.ndarray]],
        out: np.ndarray,
    ) -> np.ndarray:
        """`total` of ``src``, then `lookup` through the tables ``tables(total)`` gives ((65536,) pair table,
        its byte table), into ``out``; returns ``out``.

        The pairs are widened once, whole, and the one index serves both lookups: two numpy lookups
        and one widening a frame instead of a widening and a lookup per chunk, twice (on the cold cache the
        daemon wakes up to, each numpy call costs far more than its work).
        """
        flat, dst = self._flat(src), self._destination(out, src.size)
        odd = int(flat[-1]) if flat.size % 2 else None  # read before ``out`` (maybe ``src``) is written
        n = flat.size // 2
        self._size_sums(n)
        if self._whole.size != n:
            self._whole = np.empty(n, np.intp)
        index = self._whole
        np.copyto(index, flat[: 2 * n].view(np.uint16))
        np.take(sums16, index, out=self._sums16[:n], mode="wrap")
        np.add.reduce(self._sums16.reshape(BLOCK, -1), axis=0, out=self._block16)
        total = self._sum_blocks(self._block16) + (int(table8[odd]) if odd is not None else 0)
        table16, bytes8 = tables(total)
        np.take(table16, index, out=dst[: 2 * n].view(np.uint16), mode="wrap")
        if odd is not None:
            dst[-1] = bytes8[odd]
        return self._written(dst, out)

    def lookup_and_total(self, src: np.ndarray, table32: np.ndarray, table8: np.ndarray, out: np.ndarray) -> int:
        """`lookup` through ``table32`` (corrected pair << 16 | pair sum) into ``out``; returns the sum of ``out``."""
        flat, dst = self._flat(src), self._destination(out, src.size)
        odd = int(flat[-1]) if flat.size % 2 else None
        self._size_sums(flat.size // 2)
        at = 0
        for pairs, _ in self._chunks(flat, None):
            np.take(table32, self._widen(pairs), out=self._sums32[at : at + pairs.size], mode="wrap")
            at += pairs.size
        # a block's sum holds its pair sums (< 65536) exactly in the low 16 bits; the high halves wrap away
        np.add.reduce(self._sums32.reshape(BLOCK, -1), axis=0, out=self._block32)
        np.bitwise_and(self._block32, 0xFFFF, out=self._block32)
        total = self._sum_blocks(self._block32)
        sums = self._sums32[:at]
        np.right_shift(sums, 16, out=sums)
        np.copyto(dst[: 2 * at].view(np.uint16), sums, casting="unsafe")
        if odd is not None:
            dst[-1] = table8[odd]
            total += int(dst[-1])
        self._written(dst, out)
        return total

    def _flat(self, src: np.ndarray) -> np.ndarray:
        flat = src.reshape(-1)  # a view when contiguous, else a copy (read only)
        return flat if flat.flags.c_contiguous else np.ascontiguousarray(flat)  # a uniformly strided view

    def _widen(self, pairs: np.ndarray) -> np.ndarray:
        index = self._index[: pairs.size]
        np.copyto(index, pairs)
        return index

    def _chunks(self, flat: np.ndarray, dst: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(source pairs, destination pairs) uint16 views chunk by chunk, made once for each pair of buffers."""
        key = (
            flat.__array_interface__["data"][0],
            flat.size,
            -1 if dst is None else dst.__array_interface__["data"][0],
        )
        views = self._views.get(key)
        if views is None:
            pairs = flat[: flat.size // 2 * 2].view(np.uint16)
            into = pairs if dst is None else dst[: flat.size // 2 * 2].view(np.uint16)
            step = self.CHUNK
            views = [(pairs[i : i + step], into[i : i + step]) for i in range(0, pairs.size, step)]
            if len(self._views) >= 8:  # a frame path uses a few pairs of buffers, again and again
                self._views.clear()
            self._views[key] = views
        return views

    def _size_sums(self, pairs: int) -> None:
        if self._pairs != pairs:
            padded = -(-pairs // BLOCK) * BLOCK  # zeros past the last pair: whole blocks, nothing left over
            self._pairs = pairs
            self._sums16 = np.zeros(padded, np.uint16)
            self._sums32 = np.zeros(padded, np.uint32)
            self._block16 = np.empty(padded // BLOCK, np.uint16)
            self._block32 = np.empty(padded // BLOCK, np.uint32)
            self._block64 = np.empty(padded // BLOCK, np.uint64)

    def _sum_blocks(self, blocks: np.ndarray) -> int:
        np.copyto(self._block64, blocks)  # widened without the iterator's buffers
        return int(np.add.reduce(self._block64))

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


class ColorCorrection:
    """Applies the [color] table to LED bytes; with a `PowerLimit`, also keeps the frame under its limit.

    An identity table (gamma 1, brightness 1) is a plain copy. ``compiled``: the C lookups (default: as
    built, see `compiled_tables`), or None for numpy's; both give the same bytes.
    """

    def __init__(self, config: ColorConfig, compiled: ModuleType | None = COMPILED) -> None:
        self.compiled = compiled
        self.table = gamma_table(config.gamma, config.brightness)
        self.identity = bool(np.array_equal(self.table, np.arange(256)))
        self._high = np.empty((256, 1), np.uint16)
        self._table16 = pair_table(self.table, high=self._high)
        self._pairs = PairLookup()
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
        limited = power is not None and power.enabled
        if self.identity and not limited:
            np.copyto(out, leds)
            return out
        if self.compiled is not None and leds.flags.c_contiguous and out.flags.c_contiguous:
            return self._compiled(leds, out, power if limited else None)
        if not limited:
            return self._pairs.lookup(leds, self._table16, self.table, out)
        return self._limit(leds, out, power)

    def _compiled(self, leds: np.ndarray, out: np.ndarray, power: PowerLimit | None) -> np.ndarray:
        """The C lookups: corrected and summed in one pass; a frame over the limit is scaled in a second."""
        if power is None:
            self.compiled.lookup(leds, self.table, out)
            return out
        scale = power.scale_for(self.compiled.lookup_total(leds, self.table, out))
        if scale is not None:
            self.compiled.lookup(out, power.scaled_table(scale, None, self._scaled8), out)
        return out

    def _limit(self, leds: np.ndarray, out: np.ndarray, power: PowerLimit) -> np.ndarray:
        if self._sums16 is None or self._table32 is None:
            u = np.arange(PAIRS)
            sums = self.table[u >> 8].astype(np.uint32) + self.table[u & 0xFF]
            self._sums16 = sums.astype(np.uint16)
            self._table32 = (self._table16.astype(np.uint32) << 16) | sums
        pairs = self._pairs
        if self._limited:  # likely limited again: measure, then one lookup through the scaled table
            return pairs.measure_then_lookup(
                leds, self._sums16, self.table, lambda units: self._tables(units, power), out
            )
        # corrected and measured in one lookup; only a frame over the limit is looked up again
        scale = power.scale_for(pairs.lookup_and_total(leds, self._table32, self.table, out))
        self._limited = scale is not None
        if scale is None:
            return out
        scaled = power.scaled_table(scale, None, self._scaled8)  # ``out`` holds the corrected frame: scale it
        return pairs.lookup(out, pair_table(scaled, self._scaled16, self._high), scaled, out)

    def _tables(self, units: int, power: PowerLimit) -> tuple[np.ndarray, np.ndarray]:
        """The (pair table, byte table) a frame whose corrected bytes sum to ``units`` is looked up through."""
        scale = power.scale_for(units)
        self._limited = scale is not None
        if scale is None:
            return self._table16, self.table
        scaled = power.scaled_table(scale, self.table, self._scaled8)
        return pair_table(scaled, self._scaled16, self._high), scaled
