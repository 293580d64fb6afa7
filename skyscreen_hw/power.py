"""The power limit: scale whole frames down so the LEDs stay under the supply's current (WLED/FastLED style).

Model: an LED draws `led_milliamps` at full white, a third of it per channel, linear in the channel value
(after gamma, i.e. the PWM duty the LED really runs). When a frame would draw more than
`max_milliamps`, every channel of every LED is scaled by the same factor, so colours keep their hue:
``floor(value * max / drawn)``, rounded down so the scaled frame never draws more than the limit.
The frame's sum and the scaling run on `color.Lookups` (the C module where built): a frame that fits
costs one sum (none when the frame's pass gave it), a frame over the limit one scaling pass more.
"""

from __future__ import annotations

import numpy as np

from skyscreen_hw.color import Lookups
from skyscreen_hw.config import ColorConfig


class PowerLimit:
    """`limit` (or call with the (n, 3) uint8 LED array, scaled in place) keeps a frame under the limit."""

    def __init__(self, color: ColorConfig, lookups: Lookups | None = None) -> None:
        self.max_milliamps = color.max_milliamps
        self.milliamps_per_unit = color.led_milliamps / 3.0 / 255.0  # one channel, one step of 255
        self.frames_limited = 0
        self.last_scale = 1.0
        self.lookups = lookups or Lookups()
        self.enabled = self.max_milliamps > 0

    def estimate_milliamps(self, leds: np.ndarray) -> float:
        """What the frame would draw, by the per-LED model."""
        return self.lookups.total(leds) * self.milliamps_per_unit

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

    def limit(self, leds: np.ndarray, out: np.ndarray, total: int | None = None) -> np.ndarray:
        """``leds`` itself when it fits (or there is no limit), else ``out`` (may be ``leds``) = ``leds``
        scaled under the limit. ``total``: the sum of ``leds`` when already known."""
        if not self.enabled:
            return leds
        scale = self.scale_for(self.lookups.total(leds) if total is None else total)
        if scale is None:
            return leds
        return self.lookups.scale(leds, scale, out)

    def __call__(self, leds: np.ndarray) -> np.ndarray:
        """Scale ``leds`` in place when it would draw too much; returns it."""
        return self.limit(leds, leds)
