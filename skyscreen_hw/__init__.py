"""skyscreen-hw: the LED-display daemon for Skyscreen and other LED installations."""

__version__ = "0.1.0"
