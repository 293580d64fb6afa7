"""The one Output base class every LED destination derives from, and its statistics record."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEALTH_OK = "ok"


@dataclass
class OutputStats:
    """What happened to the frames an output was given (read from any thread; written by the output)."""

    frames_sent: int = 0
    """Frames that completed on the wire / strip / file."""
    frames_dropped: int = 0
    """Frames replaced in the mailbox by a newer one before going out: by design, the wire is slower."""
    frames_failed: int = 0
    """Frames whose write failed (timeout, error, device lost, disk full)."""


class Output(ABC):
    """A destination for LED colours: a strip, a serial controller, the simulator, a recording.

    The daemon calls ``show`` from its frame clock with an ``(count, 3)`` uint8 array of this output's
    LEDs, in wiring order, RGB, after gamma, brightness and the power limit. The array is reused for the
    next frame: an output that keeps it past ``show`` must copy it. ``show`` must return quickly (well
    under one frame period) and never raise for a device that fails while running: an output that talks
    to slow hardware drops frames rather than queue them, and one that fails counts the failure, logs it
    and says so in ``health``. ``close`` is called exactly once, after the final all-black ``show``.

    The defaults below suit an output that cannot wedge and has nothing to save; outputs override what
    applies to them.
    """

    name: str
    """Short description for logs, e.g. ``serial /dev/ttyACM0 (adalight, GRB, 300 LEDs)``."""
    kind: str = "output"
    """The output type: "serial", "ws281x", "simulator", "record", ..."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stats = OutputStats()

    @abstractmethod
    def show(self, leds: np.ndarray) -> None:
        """Send one frame: ``leds`` is ``(count, 3)`` uint8 RGB, reused by the caller after this returns."""

    def end_frame(self) -> None:  # noqa: B027 - a default: most outputs send in show()
        """Called after every output's show() for one frame; default nothing.

        Outputs that must act together (network controllers told to show a frame only once every one
        of them has its data) stage the frame in ``show`` and send it here.
        """

    def close(self) -> None:  # noqa: B027 - a default: most outputs have something to release
        """Release the device; called once, after the final all-black ``show``."""

    @property
    def stalled(self) -> bool:
        """True while the output is stuck (the daemon then stops the systemd watchdog pings)."""
        return False

    @property
    def health(self) -> str:
        """``"ok"``, or one line saying what is wrong (e.g. ``"waiting for /dev/ttyACM0"``)."""
        return HEALTH_OK

    def snapshot(self, path: str | Path) -> bool:
        """Save what the output shows as a PNG at ``path``; False when this output cannot (the default)."""
        return False
