"""The power limit: scale whole frames down so the LEDs stay under the supply's current (WLED/FastLED style).

Model: an LED draws `led_milliamps` at full white, a third of it per channel, linear in the channel value
(after gamma, i.e. the PWM duty the LED really runs). When a frame would draw more than
`max_milliamps`, every channel of every LED is scaled by the same factor, so colours keep their hue:
``floor(value * max / drawn)``, rounded down so the scaled frame never draws more than the limit.

Cheapest with the colour step: ``ColorCorrection(config)(leds, out, power)`` measures the frame from its
own pair tables and looks it up once through the table already scaled. Called on its own, the limit sums
the frame's bytes (one widening ``np.add.reduce``: eight bytes a step in uint64 lanes is faster on a warm
cache, but twelve numpy calls cost more than that on the cold cache the daemon wakes up to every frame),
then scales it through a pair table (two bytes a lookup, `PairLookup`).
"""

from __future__ import annotations

import numpy as np

from skyscreen_hw.color import PAIRS, PairLookup, pair_table
from skyscreen_hw.config import ColorConfig


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
        self._pairs = PairLookup()

    @property
    def enabled(self) -> bool:
        return self.max_milliamps > 0

    def estimate_milliamps(self, leds: np.ndarray) -> float:
        """What the frame would draw, by the per-LED model."""
        return self._units(leds) * self.milliamps_per_unit

    @staticmethod
    def _units(leds: np.ndarray) -> int:
        """The sum of the frame's bytes."""
        return int(np.add.reduce(leds.reshape(-1), dtype=np.uint64))

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
        scale = self.scale_for(self._units(leds))
        if scale is None:
            return leds
        lut = self.scaled_table(scale)
        return self._pairs.lookup(leds, pair_table(lut, self._lut16, self._high), lut, leds)
