"""WS281x / SK6812 strips on a Raspberry Pi through rpi_ws281x (imported here only).

Pins: GPIO 12/18 PWM channel 0, 13/19 PWM channel 1, 21 PCM, 10 SPI. PWM and PCM need root (/dev/mem);
SPI needs only /dev/spidev0.0 and /dev/gpiomem (groups `spi` and `gpio`). The colour order picks the
strip type: three letters (e.g. GRB) for WS2811/WS2812, four ending in W (e.g. GRBW) for SK6812 RGBW,
whose white channel takes the grey part of each colour.

`PixelStrip` is the one hardware boundary: `create(..., strip_factory=...)` accepts a stand-in. Frames
go to the strip from the latest-frame worker (outputs/worker.py; rendering waits for the previous DMA
transfer), so a long strip drops frames rather than stalling the frame clock; a render that fails is
retried after a backoff, and one that hangs or keeps failing makes the output `stalled`.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from skyscreen_hw.config import OutputConfig
from skyscreen_hw.errors import OutputError, OutputUnavailable
from skyscreen_hw.layouts import Layout
from skyscreen_hw.outputs.worker import STALL_SECONDS, FrameFailed, WorkerOutput

MODEL_PATHS = [Path("/proc/device-tree/model"), Path("/sys/firmware/devicetree/base/model")]
PWM_PINS, PCM_PINS, SPI_PINS = (12, 18, 13, 19), (21,), (10,)


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


class Ws281xOutput(WorkerOutput[np.ndarray]):
    """One strip (one channel) taking `count` LEDs.

    `ws` is the `_rpi_ws281x` module for rpi_ws281x's own PixelStrip, whose C LED buffer takes a frame in
    one copy; None for a stand-in strip (tests), which gets the values through `setPixelColor`.
    """

    kind = "ws281x"

    def __init__(
        self,
        strip: Any,
        ws: Any,
        gpio: int,
        count: int,
        rgbw: bool,
        log: logging.Logger,
        *,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        super().__init__(
            f"ws281x GPIO {gpio} ({count} LEDs{', RGBW' if rgbw else ''})",
            log,
            thread_name=f"ws281x GPIO {gpio}",
            stall_seconds=stall_seconds,
        )
        self.strip = strip
        self.ws = ws
        self.rgbw = rgbw
        self.count = count
        self._start()

    def _encode(self, leds: np.ndarray) -> np.ndarray:
        return pack(leds, self.rgbw, np.empty(self.count, dtype=np.uint32))

    def _deliver(self, values: np.ndarray) -> None:
        try:
            self._hand_over(values)
            self.strip.show()  # renders once the previous DMA transfer is done
        except RuntimeError as exc:
            raise FrameFailed(str(exc)) from None

    def _release(self) -> None:
        atexit.unregister(self.strip._cleanup)  # rpi_ws281x's exit handler: we clean up here, once
        self.strip._cleanup()

    def _hand_over(self, values: np.ndarray) -> None:
        """Copy the values into rpi_ws281x's LED buffer in one go (a stand-in strip: through setPixelColor)."""
        if self.ws is None:
            for i, v in enumerate(values.tolist()):  # stand-in strips only: never the hardware's frame path
                self.strip.setPixelColor(i, v)
            return
        pointer = self.ws.ws2811_channel_t_leds_get(self.strip._channel)  # a SWIG pointer, set by begin()
        address = int(pointer) if pointer is not None else 0
        if not address:
            raise FrameFailed("rpi_ws281x has no LED buffer for this channel (the strip was not started)")
        ctypes.memmove(address, values.ctypes.data, values.nbytes)


def create(
    cfg: OutputConfig,
    layout: Layout,
    first: int,
    count: int,
    log: logging.Logger,
    strip_factory: Callable[..., Any] | None = None,
    stall_seconds: float = STALL_SECONDS,
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
        atexit.unregister(strip._cleanup)
        if strip_factory is None and strip._leds is not None:
            ws.delete_ws2811_t(strip._leds)  # free the struct; ws2811_fini() is what would crash
            strip._leds = strip._channel = None
        if on_pi:
            raise OutputError(f"ws281x GPIO {cfg.gpio}: cannot start: {explain_failure(cfg.gpio, str(exc))}") from None
        raise OutputUnavailable(f"ws281x GPIO {cfg.gpio}: cannot start off a Raspberry Pi ({exc})") from None
    rgbw = len(order) == 4
    real = ws if strip_factory is None else None
    return Ws281xOutput(strip, real, cfg.gpio, count, rgbw, log, stall_seconds=stall_seconds)
