"""The simulator: a pygame window with every LED drawn at its physical position.

Each window pixel belongs to at most one LED (the nearest within a small radius), worked out once at
start; a frame is then one table look-up of the whole picture. Headless with ``SDL_VIDEODRIVER=dummy``.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import numpy as np

from skyscreen_hw.config import OutputConfig
from skyscreen_hw.errors import OutputError
from skyscreen_hw.layouts import Layout
from skyscreen_hw.outputs.base import Output

MARGIN = 8


def pixel_positions(layout: Layout, size: int) -> np.ndarray:
    """(n, 2) int (x, y) window pixel of each LED, the layout fitted into a size x size window."""
    unit = layout.normalized_positions()
    return np.round(MARGIN + unit * (size - 1 - 2 * MARGIN)).astype(np.int64)


def pixel_owners(pixels: np.ndarray, size: int) -> np.ndarray:
    """(size, size) int32 map: the LED shown at each window pixel, or -1 for background.

    LEDs claim pixels outwards from their centre (offsets nearest first), so each pixel goes to the
    nearest LED within the dot radius; the radius follows the LED density, and LEDs stay dots.
    """
    n = len(pixels)
    owners = np.full(size * size, -1, dtype=np.int32)
    area = float(np.ptp(pixels[:, 0]) + 1) * float(np.ptp(pixels[:, 1]) + 1)
    radius = int(np.clip(np.sqrt(area / max(n, 1)) * 0.6, 1, 24))
    offsets = [(dx, dy) for dx in range(-radius, radius + 1) for dy in range(-radius, radius + 1)]
    offsets = [o for o in offsets if o[0] ** 2 + o[1] ** 2 <= radius * radius + radius]
    offsets.sort(key=lambda o: o[0] ** 2 + o[1] ** 2)
    led = np.arange(n, dtype=np.int32)
    for dx, dy in offsets:
        x, y = pixels[:, 0] + dx, pixels[:, 1] + dy
        inside = (x >= 0) & (x < size) & (y >= 0) & (y < size)
        flat = y[inside] * size + x[inside]
        free = owners[flat] == -1
        owners[flat[free]] = led[inside][free]
    return owners.reshape(size, size)


class Simulator(Output):
    """An Output drawing the LEDs in a pygame window (or an offscreen surface when headless)."""

    kind = "simulator"

    def __init__(self, layout: Layout, first: int, count: int, size: int, log: logging.Logger) -> None:
        try:
            os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
            import pygame
        except ImportError:
            raise OutputError("simulator: pygame is not installed (pip install 'skyscreen-hw[sim]')") from None
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        super().__init__(f"simulator ({count} LEDs)")
        self.pygame = pygame
        self.size = size
        part = Layout(
            layout.kind,
            layout.positions[first : first + count],
            layout.frame_index[first : first + count],
            layout.frame_shape,
        )
        self.pixels = pixel_positions(part, size)
        owners = pixel_owners(self.pixels, size)
        # palette row `count` is the background, so the whole picture is one take()
        self._owners = np.where(owners < 0, count, owners).astype(np.intp)
        self._palette = np.zeros((count + 1, 3), dtype=np.uint8)
        self._picture = np.zeros((size, size, 3), dtype=np.uint8)
        try:
            pygame.display.init()
            pygame.display.set_caption(f"skyscreen-hw simulator: {layout.kind}, {count} LEDs")
            self.screen = pygame.display.set_mode((size, size))
        except pygame.error as exc:
            raise OutputError(
                f"simulator: cannot open a window: {exc} (no display? set SDL_VIDEODRIVER=dummy)"
            ) from None
        self._image = pygame.image.frombuffer(self._picture, (size, size), "RGB")
        self.show(self._palette[:count])

    def show(self, leds: np.ndarray) -> None:
        self._palette[:-1] = leds
        np.take(self._palette, self._owners, axis=0, out=self._picture)
        self.screen.blit(self._image, (0, 0))
        self.pygame.display.flip()
        for event in self.pygame.event.get():
            if event.type == self.pygame.QUIT:
                os.kill(os.getpid(), signal.SIGTERM)  # the window closed: stop like on SIGTERM

    def snapshot(self, path: str | Path) -> bool:
        """Save the current picture as PNG."""
        self.pygame.image.save(self.screen, str(path))
        return True

    def close(self) -> None:
        self.pygame.display.quit()


def create(cfg: OutputConfig, layout: Layout, first: int, count: int, log: logging.Logger) -> Simulator:
    return Simulator(layout, first, count, cfg.size, log)
