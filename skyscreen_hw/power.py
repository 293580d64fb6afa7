"""The power limit: scale whole frames down so the LEDs stay under the supply's current (WLED/FastLED style).

Model: an LED draws `led_milliamps` at full white, a third of it per channel, linear in the channel value
(after gamma, i.e. the PWM duty the LED really runs). When a frame would draw more than
`max_milliamps`, every channel of every LED is scaled by the same factor, so colours keep their hue:
``floor(value * max / drawn)``, rounded down so the scaled frame never draws more than the limit.

Cheapest with the colour step: ``ColorCorrection(config)(leds, out, power)`` measures and scales in the
lookup it does anyway. Called on its own, the limit sums the frame's bytes eight at a time in uint64
words and scales it through a pair table (two bytes a lookup), both without allocating.
"""

from __future__ import annotations

import numpy as np

from skyscreen_hw.color import PAIRS, PairLookup, pair_table
from skyscreen_hw.config import ColorConfig

EVEN_BYTES = np.uint64(0x00FF00FF00FF00FF)
LOW_LANES = np.uint64(0x0000FFFF0000FFFF)
ROWS = 256  # words summed lane-wise in one block: a 16-bit lane then holds at most 255 * 256 = 65280


class ByteSum:
    """The exact sum of an array's bytes, eight bytes a numpy element (uint64 words, 16-bit lanes).

    ``np.add.reduce(bytes, dtype=uint64)`` widens every byte through a buffered cast; here the even and
    the odd bytes of each word are masked into four 16-bit lanes, summed over blocks of 256 words (no
    lane can overflow), and the few block sums are added up at the end. Buffers are kept for the first
    size seen.
    """

    def __init__(self) -> None:
        self._words = np.empty(0, np.uint64)
        self._blocks = np.empty(0, np.uint64)
        self._lanes = np.empty(0, np.uint64)
        self._tail = np.empty(0, np.uint64)

    def __call__(self, data: np.ndarray) -> int:
        flat = data.reshape(-1)
        if not flat.flags.c_contiguous or flat.dtype != np.uint8:
            return int(np.add.reduce(flat, dtype=np.uint64))
        columns = flat.size // 8 // ROWS
        body = columns * ROWS * 8
        if columns == 0 or columns > 4096:  # tiny, or lane sums could reach 2**32: the plain sum
            return int(np.add.reduce(flat, dtype=np.uint64))
        if self._blocks.size != 2 * columns or self._tail.size != flat.size - body:
            self._words = np.empty(columns * ROWS, np.uint64)
            self._blocks = np.empty(2 * columns, np.uint64)
            self._lanes = np.empty(2 * columns, np.uint64)
            self._tail = np.empty(flat.size - body, np.uint64)
        words, blocks, lanes = self._words, self._blocks, self._lanes
        source = flat[:body].view(np.uint64)
        np.bitwise_and(source, EVEN_BYTES, out=words)
        np.add.reduce(words.reshape(ROWS, columns), axis=0, out=blocks[:columns])
        np.right_shift(source, np.uint64(8), out=words)
        np.bitwise_and(words, EVEN_BYTES, out=words)
        np.add.reduce(words.reshape(ROWS, columns), axis=0, out=blocks[columns:])
        # each block: four 16-bit lanes; lanes 0, 2 and 1, 3 added as 32-bit halves (< 2**32 for <= 4096 columns)
        np.bitwise_and(blocks, LOW_LANES, out=lanes)
        total = int(np.add.reduce(lanes))
        np.right_shift(blocks, np.uint64(16), out=lanes)
        np.bitwise_and(lanes, LOW_LANES, out=lanes)
        total += int(np.add.reduce(lanes))
        total = (total & 0xFFFFFFFF) + (total >> 32)
        np.copyto(self._tail, flat[body:])  # widened without the iterator's buffers
        return total + int(np.add.reduce(self._tail))


class PowerLimit:
    """Call with the (n, 3) uint8 LED array; scales it in place when it would draw too much."""

    def __init__(self, color: ColorConfig) -> None:
        self.max_milliamps = color.max_milliamps
        self.milliamps_per_unit = color.led_milliamps / 3.0 / 255.0  # one channel, one step of 255
        self.frames_limited = 0
        self.last_scale = 1.0
        self._identity = np.arange(256, dtype=np.uint8)
        self._values = np.empty(256, np.float64)
        self._lut = np.empty(256, np.uint8)
        self._lut16 = np.empty(PAIRS, np.uint16)
        self._high = np.empty((256, 1), np.uint16)
        self._sum = ByteSum()
        self._pairs = PairLookup()

    @property
    def enabled(self) -> bool:
        return self.max_milliamps > 0

    def estimate_milliamps(self, leds: np.ndarray) -> float:
        """What the frame would draw, by the per-LED model."""
        return self._sum(leds) * self.milliamps_per_unit

    def scale_for(self, units: int) -> float | None:
        """The scale for a frame whose bytes sum to ``units``, None when it fits; keeps the statistics."""
        drawn = units * self.milliamps_per_unit
        if drawn <= self.max_milliamps:
            self.last_scale = 1.0
            return None
        scale = self.max_milliamps / drawn
        self.last_scale = scale
        self.frames_limited += 1
        return scale

    def scaled_table(self, scale: float, table: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """``floor(table * scale)`` as uint8 (``table`` defaults to the identity), into ``out`` if given."""
        out = self._lut if out is None else out
        np.multiply(self._identity if table is None else table, scale, out=self._values, dtype=np.float64)
        np.copyto(out, self._values, casting="unsafe")  # truncation: the floor of these non-negative values
        return out

    def __call__(self, leds: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return leds
        scale = self.scale_for(self._sum(leds))
        if scale is None:
            return leds
        lut = self.scaled_table(scale)
        return self._pairs.lookup(leds, pair_table(lut, self._lut16, self._high), lut, leds)
