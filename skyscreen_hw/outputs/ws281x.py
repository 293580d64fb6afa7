"""WS281x / SK6812 strips on a Raspberry Pi through rpi_ws281x (imported here only).

Pins: GPIO 12/18 PWM channel 0, 13/19 PWM channel 1, 21 PCM, 10 SPI. PWM and PCM need root (/dev/mem);
SPI needs only /dev/spidev0.0 and /dev/gpiomem (groups `spi` and `gpio`). The colour order picks the
strip type: three letters (e.g. GRB) for WS2811/WS2812, four ending in W (e.g. GRBW) for SK6812 RGBW,
whose white channel takes the grey part of each colour.

`PixelStrip` is the one hardware boundary: `create(..., strip_factory=...)` accepts a stand-in. Frames
go to the strip from a worker thread (rendering waits for the previous DMA transfer), so a long strip
drops frames rather than stalling the frame clock.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from skyscreen_hw.config import OutputConfig
from skyscreen_hw.errors import OutputError, OutputUnavailable
from skyscreen_hw.layouts import Layout

MODEL_PATHS = [Path("/proc/device-tree/model"), Path("/sys/firmware/devicetree/base/model")]
PWM_PINS, PCM_PINS, SPI_PINS = (12, 18, 13, 19), (21,), (10,)
CLOSE_WAIT = 2.0
STALL_SECONDS = 5.0  # a hand-over to the strip longer than this means the strip is wedged


def raspberry_pi_model() -> str | None:
    """The board's model string when this is a Raspberry Pi, else None."""
    for path in MODEL_PATHS:
        try:
            model = path.read_bytes().decode(errors="replace").strip("\0\n ")
        except OSError:
            continue
        if "Raspberry Pi" in model:
            return model
    return None


def channel_for(gpio: int) -> int:
    return 1 if gpio in (13, 19) else 0


def strip_type_name(order: str) -> str:
    """The rpi_ws281x constant for a colour order: GRB -> WS2811_STRIP_GRB, GRBW -> SK6812_STRIP_GRBW."""
    order = order.upper()
    if len(order) == 4:
        if order[3] != "W":
            raise OutputError(f"ws281x order {order!r}: RGBW strips take W last (e.g. 'GRBW')")
        return f"SK6812_STRIP_{order}"
    return f"WS2811_STRIP_{order}"


def pack(leds: np.ndarray, rgbw: bool, out: np.ndarray) -> np.ndarray:
    """(n, 3) uint8 RGB -> uint32 0xWWRRGGBB as rpi_ws281x takes them (it reorders for the strip type)."""
    rgb = leds.astype(np.uint32)
    if rgbw:
        w = rgb.min(axis=1)
        rgb -= w[:, None]
        np.left_shift(w, 24, out=out)
    else:
        out.fill(0)
    out |= (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    return out


def explain_failure(gpio: int, error: str) -> str:
    """The likely cause of a failed begin() on a Raspberry Pi, as a fix the user can apply."""
    if gpio in SPI_PINS:
        if not Path("/dev/spidev0.0").exists():
            return "SPI is disabled: add dtparam=spi=on to /boot/firmware/config.txt and reboot"
        return "no access to /dev/spidev0.0 or /dev/gpiomem: add the user to groups spi and gpio (or skyscreen)"
    if os.geteuid() != 0:
        mode = "PCM" if gpio in PCM_PINS else "PWM"
        return (
            f"{mode} on GPIO {gpio} needs root (/dev/mem): install deploy/ws281x-pwm.conf as a drop-in,"
            " or wire the strip to GPIO 10 and use SPI"
        )
    if gpio in PWM_PINS and "snd_bcm2835" in _loaded_modules():
        return "the analogue audio driver uses PWM: set dtparam=audio=off in /boot/firmware/config.txt and reboot"
    return f"rpi_ws281x said: {error}"


def _loaded_modules() -> str:
    try:
        return Path("/proc/modules").read_text()
    except OSError:
        return ""


class Ws281xOutput:
    """One strip (one channel) taking `count` LEDs."""

    def __init__(self, strip: Any, ws: Any, gpio: int, count: int, rgbw: bool, log: logging.Logger) -> None:
        self.strip = strip
        self.ws = ws
        self.name = f"ws281x GPIO {gpio} ({count} LEDs{', RGBW' if rgbw else ''})"
        self.rgbw = rgbw
        self.count = count
        self.log = log
        self.frames_dropped = 0
        self.stall_seconds = STALL_SECONDS
        self._busy_since: float | None = None  # when the worker started handing the current frame over
        self._values = np.zeros(count, dtype=np.uint32)
        self._pending: np.ndarray | None = None
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"ws281x GPIO {gpio}", daemon=True)
        self._thread.start()

    @property
    def stalled(self) -> bool:
        """True while one hand-over has taken longer than `stall_seconds` (the daemon stops the watchdog)."""
        since = self._busy_since
        return since is not None and time.monotonic() - since > self.stall_seconds

    def show(self, leds: np.ndarray) -> None:
        values = pack(leds, self.rgbw, np.empty(self.count, dtype=np.uint32))
        with self._cond:
            if self._pending is not None:
                self.frames_dropped += 1
            self._pending = values
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._pending is None, CLOSE_WAIT)
            self._closing = True
            self._cond.notify_all()
        self._thread.join(CLOSE_WAIT)
        cleanup = getattr(self.strip, "_cleanup", None)
        if cleanup is not None:
            atexit.unregister(cleanup)
            cleanup()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closing)
                if self._pending is None:
                    return
                values = self._pending
            self._busy_since = time.monotonic()
            try:
                self._hand_over(values)
                self.strip.show()
            except RuntimeError as exc:
                self.frames_dropped += 1
                self.log.warning("%s: %s", self.name, exc)
            finally:
                self._busy_since = None
            with self._cond:
                if self._pending is values:
                    self._pending = None
                self._cond.notify_all()

    def _hand_over(self, values: np.ndarray) -> None:
        """Copy the values into the strip's LED buffer in one go when it is rpi_ws281x's own."""
        channel = getattr(self.strip, "_channel", None)
        if channel is not None and self.ws is not None:
            pointer = self.ws.ws2811_channel_t_leds_get(channel)  # a SWIG pointer; None before begin()
            address = int(pointer) if pointer is not None else 0
            if address:
                ctypes.memmove(address, values.ctypes.data, values.nbytes)
                return
        for i, v in enumerate(values.tolist()):  # a stand-in strip without a C buffer
            self.strip.setPixelColor(i, v)


def create(
    cfg: OutputConfig,
    layout: Layout,
    first: int,
    count: int,
    log: logging.Logger,
    strip_factory: Callable[..., Any] | None = None,
) -> Ws281xOutput:
    on_pi = raspberry_pi_model() is not None
    try:
        import _rpi_ws281x as ws
        from rpi_ws281x import PixelStrip
    except ImportError:
        if on_pi:
            raise OutputError(
                "ws281x: rpi_ws281x is not installed (pip install 'skyscreen-hw[pi]' or run deploy/install.sh)"
            ) from None
        raise OutputUnavailable("ws281x: rpi_ws281x is not installed and this is not a Raspberry Pi") from None
    order = cfg.wire_order
    strip_type = getattr(ws, strip_type_name(order), None)
    if strip_type is None:
        raise OutputError(f"ws281x order {order!r}: rpi_ws281x has no {strip_type_name(order)}")
    factory = strip_factory or PixelStrip
    strip = factory(count, cfg.gpio, cfg.frequency, cfg.dma, cfg.invert, 255, channel_for(cfg.gpio), strip_type)
    try:
        strip.begin()
    except RuntimeError as exc:
        # rpi_ws281x registered a cleanup at exit that segfaults when begin() failed: take it back
        cleanup = getattr(strip, "_cleanup", None)
        if cleanup is not None:
            atexit.unregister(cleanup)
        if strip_factory is None and getattr(strip, "_leds", None) is not None:
            ws.delete_ws2811_t(strip._leds)  # free the struct; ws2811_fini() is what would crash
            strip._leds = strip._channel = None
        if on_pi:
            raise OutputError(f"ws281x GPIO {cfg.gpio}: cannot start: {explain_failure(cfg.gpio, str(exc))}") from None
        raise OutputUnavailable(f"ws281x GPIO {cfg.gpio}: cannot start off a Raspberry Pi ({exc})") from None
    return Ws281xOutput(strip, ws if strip_factory is None else None, cfg.gpio, count, len(order) == 4, log)
