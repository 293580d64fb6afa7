"""The exception tree: every error skyscreen-hw raises on purpose is a SkyscreenError."""

from __future__ import annotations


class SkyscreenError(Exception):
    """Root of all skyscreen-hw errors; the command line prints these as one line."""


class ConfigError(SkyscreenError):
    """The configuration file is missing, unreadable, or has a bad key or value."""


class FrameError(SkyscreenError):
    """The shared frame (file or semaphores) cannot be created or opened."""


class AlreadyRunningError(FrameError):
    """Another daemon already serves this display name."""


class OutputError(SkyscreenError):
    """An output (LED strip, serial controller, simulator, recording) cannot start."""


class OutputUnavailable(OutputError):
    """The output's hardware does not exist on this machine (e.g. ws281x off a Raspberry Pi).

    The daemon may fall back to the simulator for these, with one warning line.
    """


class LayoutError(SkyscreenError):
    """A layout cannot be built (bad points file, impossible geometry)."""
