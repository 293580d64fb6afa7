"""The one Output interface every LED destination implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Output(Protocol):
    """A destination for LED colours: a strip, a serial controller, the simulator, a recording.

    The daemon calls ``show`` from its frame clock with an ``(count, 3)`` uint8 array of this output's
    LEDs, in wiring order, RGB, after gamma, brightness and the power limit. The array is reused for the
    next frame: an output that keeps it past ``show`` must copy it. ``show`` must return quickly (well
    under one frame period); an output that talks to slow hardware drops frames rather than queue them.
    ``close`` is called exactly once, after the final all-black ``show``.
    """

    name: str
    """Short description for logs, e.g. ``serial /dev/ttyACM0 (LEDs 0-299)``."""

    def show(self, leds: np.ndarray) -> None: ...

    def close(self) -> None: ...
