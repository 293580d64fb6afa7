"""Wire framing for serial LED controllers, and colour order. Pure: bytes in, bytes out, no I/O.

Adalight (what WLED, HyperSerial and the Adalight sketches read): ``"Ada"``, the LED count - 1 as high
and low byte, ``high ^ low ^ 0x55``, then 3 bytes per LED. TPM2: ``0xC9 0xDA``, the payload size as high
and low byte, the payload, ``0x36``.
"""

from __future__ import annotations

import numpy as np

from skyscreen_hw.errors import ConfigError

TPM2_MAX_PAYLOAD = 0xFFFF


def order_index(order: str) -> np.ndarray:
    """The channel permutation that turns RGB into `order` (e.g. "GRB" -> [1, 0, 2])."""
    return np.array(["RGB".index(c) for c in order.upper()], dtype=np.intp)


def adalight_header(count: int) -> bytes:
    """The 6-byte Adalight header for `count` LEDs."""
    if not 1 <= count <= 0x10000:
        raise ConfigError(f"Adalight carries 1..65536 LEDs per frame, not {count}")
    hi, lo = (count - 1) >> 8, (count - 1) & 0xFF
    return b"Ada" + bytes([hi, lo, hi ^ lo ^ 0x55])


def tpm2_header(count: int) -> bytes:
    """The 4-byte TPM2 data-frame header for `count` RGB LEDs."""
    size = count * 3
    if size > TPM2_MAX_PAYLOAD:
        raise ConfigError(
            f"TPM2 carries at most {TPM2_MAX_PAYLOAD // 3} LEDs per frame, not {count}:"
            ' split the LEDs over several [[outputs]] (first/count) or use protocol = "adalight"'
        )
    return bytes([0xC9, 0xDA, size >> 8, size & 0xFF])


class Framer:
    """Encodes (count, 3) RGB frames into one reused buffer: header, pixels in wire order, trailer."""

    def __init__(self, protocol: str, count: int, order: str = "RGB") -> None:
        if protocol == "adalight":
            header, trailer = adalight_header(count), b""
        elif protocol == "tpm2":
            header, trailer = tpm2_header(count), b"\x36"
        else:
            raise ConfigError(f"unknown serial protocol {protocol!r} (adalight or tpm2)")
        self.count = count
        self.buffer = bytearray(header + bytes(3 * count) + trailer)
        self._pixels = np.frombuffer(self.buffer, dtype=np.uint8)[len(header) : len(header) + 3 * count]
        self._pixels = self._pixels.reshape(count, 3)
        index = order_index(order)
        self._index = None if np.array_equal(index, [0, 1, 2]) else index

    def encode(self, leds: np.ndarray) -> bytearray:
        """The frame for `leds` (count, 3) uint8 RGB; the returned buffer is reused by the next call."""
        if self._index is None:
            np.copyto(self._pixels, leds)
        else:
            np.take(leds, self._index, axis=1, out=self._pixels)
        return self.buffer
