"""The power limit: scale whole frames down so the LEDs stay under the supply's current (WLED/FastLED style).

Model: an LED draws `led_milliamps` at full white, a third of it per channel, linear in the channel value
(after gamma, i.e. the PWM duty the LED really runs). When a frame would draw more than
`max_milliamps`, every channel of every LED is scaled by the same factor, so colours keep their hue.
"""

from __future__ import annotations

import numpy as np

from skyscreen_hw.config import ColorConfig


class PowerLimit:
    """Call with the (n, 3) uint8 LED array; scales it in place when it would draw too much."""

    def __init__(self, color: ColorConfig) -> None:
        self.max_milliamps = color.max_milliamps
        self.milliamps_per_unit = color.led_milliamps / 3.0 / 255.0  # one channel, one step of 255
        self.frames_limited = 0
        self.last_scale = 1.0
        self._lut = np.arange(256, dtype=np.uint8)

    @property
    def enabled(self) -> bool:
        return self.max_milliamps > 0

    def estimate_milliamps(self, leds: np.ndarray) -> float:
        """What the frame would draw, by the per-LED model."""
        return float(np.add.reduce(leds.reshape(-1), dtype=np.uint64)) * self.milliamps_per_unit

    def __call__(self, leds: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return leds
        drawn = self.estimate_milliamps(leds)
        if drawn <= self.max_milliamps:
            self.last_scale = 1.0
            return leds
        scale = self.max_milliamps / drawn
        self.last_scale = scale
        self.frames_limited += 1
        # floor, so the scaled frame never draws more than the limit
        self._lut = np.floor(np.arange(256) * scale).astype(np.uint8)
        np.take(self._lut, leds, out=leds)
        return leds
