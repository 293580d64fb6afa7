"""Demo patterns: ordinary pattern programs writing through the shared frame, like any other writer.

Each pattern is a function ``(t, grid) -> (height, width, 3) uint8`` over a grid prepared once; dome
patterns read frame rows as vanes (angle) and columns as the distance from the centre. ``fermat`` (in
ORIGINAL_PATTERNS) is the original Skyscreen's fermat-spiral pattern ported with only its writer changed:
it puts frame column 0 at the rim, so it is meant for ``[layout] orientation = "original"``.
"""

from __future__ import annotations

import colorsys
import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import numpy as np

from skyscreen_hw.sources.shared_frame import DEFAULT_GROUP, FrameWriter


@dataclass(frozen=True)
class Grid:
    """Coordinates of every frame pixel, prepared once."""

    angle: np.ndarray  # (h, 1) turns, 0..1 (frame row = vane)
    radius: np.ndarray  # (1, w) 0..1 (frame column = position along a vane)
    x: np.ndarray  # (1, w) 0..1 columns, for matrices
    y: np.ndarray  # (h, 1) 0..1 rows
    rng: np.random.Generator

    @classmethod
    def of(cls, height: int, width: int) -> Grid:
        rows = np.arange(height, dtype=np.float32)[:, None]
        cols = np.arange(width, dtype=np.float32)[None, :]
        return cls(
            rows / height,
            (cols + 0.5) / width,
            cols / max(width - 1, 1),
            rows / max(height - 1, 1),
            np.random.default_rng(),
        )


def hsv(h: np.ndarray, s: float | np.ndarray = 1.0, v: float | np.ndarray = 1.0) -> np.ndarray:
    """Vectorised HSV (all 0..1, hue wraps) -> uint8 RGB with a trailing axis of 3."""
    h = np.mod(h, 1.0) * 6.0
    k = np.mod(np.stack([5.0 + h, 3.0 + h, 1.0 + h], axis=-1), 6.0)
    rgb = np.asarray(v)[..., None] * (1 - np.asarray(s)[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1))
    return (rgb * 255).astype(np.uint8)


def noise(t: float, g: Grid) -> np.ndarray:
    return g.rng.integers(0, 256, (g.angle.shape[0], g.radius.shape[1], 3), dtype=np.uint8)


def rainbow(t: float, g: Grid) -> np.ndarray:
    return hsv(np.broadcast_to(g.angle + 0.1 * t, (g.angle.shape[0], g.radius.shape[1])))


def rings(t: float, g: Grid) -> np.ndarray:
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (6 * g.radius - 0.8 * t))
    return hsv(np.broadcast_to(g.radius * 0.5 + 0.05 * t, wave.shape), 1.0, wave + 0 * g.angle)


def spiral(t: float, g: Grid) -> np.ndarray:
    arms = np.mod(3 * g.angle + 2 * g.radius - 0.5 * t, 1.0)
    return hsv(g.angle + 0.1 * t + 0 * g.radius, 1.0, np.clip(1.5 - 3 * arms, 0, 1))


def bar(t: float, g: Grid) -> np.ndarray:
    """A vertical bar sweeping across the columns (for matrices)."""
    pos = np.mod(0.25 * t, 1.0)
    level = np.clip(1 - np.abs(g.x - pos) * 12, 0, 1) + 0 * g.y
    return hsv(np.full(level.shape, np.mod(0.05 * t, 1.0)), 1.0, level)


ORIGINAL_FPS = 30  # the original patterns advanced one step a frame; the port steps at this rate


def fermat(t: float, g: Grid) -> np.ndarray:
    """The original Skyscreen's patterns/fermat_spiral.py, ported with only its writer changed (and Python 3).

    Its drawing is kept as it was, a loop over the spiral's points (a few hundred, in the writer), the
    negative indices measuring the radius from the rim: column 0 is the rim on the original's renderer.
    """
    screen_vane_count, screen_max_magnitude = g.angle.shape[0], g.radius.shape[1]
    count = int(t * ORIGINAL_FPS)
    screen = np.zeros((screen_vane_count, screen_max_magnitude, 3))
    a = 13
    rotation_amount = 4
    max_angle = int((screen_max_magnitude / a) ** 2)
    for theta in range(1, max_angle):
        r1 = a * math.sqrt(theta)
        if int(r1) < screen_max_magnitude:
            color = np.array(colorsys.hsv_to_rgb(((theta + count) % 100) / 100.0, 1, 1)) * 255
            screen[theta % screen_vane_count][-int(r1) : -int(r1 - 3)] = color
            screen[(theta + 180) % screen_vane_count][-int(r1) : -int(r1 - 3)] = screen[theta % screen_vane_count][
                -int(r1)
            ]
    x = int(count * rotation_amount) % screen_vane_count
    return np.concatenate([screen[x:, :, :], screen[:x, :, :]]).astype(np.uint8)


PATTERNS: dict[str, Callable[[float, Grid], np.ndarray]] = {
    "noise": noise,
    "rainbow": rainbow,
    "rings": rings,
    "spiral": spiral,
    "bar": bar,
}
ORIGINAL_PATTERNS: dict[str, Callable[[float, Grid], np.ndarray]] = {"fermat": fermat}  # for orientation "original"


def run(
    name: str,
    pattern: str,
    height: int,
    width: int,
    fps: float,
    duration: float | None,
    group: str = DEFAULT_GROUP,
) -> int:
    """Write ``pattern`` to display ``name`` at up to ``fps`` until SIGTERM / SIGINT or ``duration``.

    Says once (a warning on the ``skyscreen`` logger) when no daemon takes the frames, and once when they
    are taken again; ``group`` is the display's group, for the files this writer creates if none exist.
    """
    log = logging.getLogger("skyscreen")
    draw = PATTERNS[pattern]
    grid = Grid.of(height, width)
    stop = False

    def on_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    start = time.monotonic()
    taken = True  # until a flush says otherwise: silence while a daemon takes the frames
    with FrameWriter(name, height, width, group=group) as writer:
        next_frame = start
        while not stop:
            now = time.monotonic()
            if duration is not None and now - start >= duration:
                break
            writer.frame[:] = draw(now - start, grid)
            if writer.flush() != taken and not stop:
                taken = not taken
                if taken:
                    log.info("display %r: a daemon takes the frames again", name)
                else:
                    log.warning(
                        "display %r: no daemon is taking the frames (%s): start skyscreen-hw, or check --name;"
                        " still trying",
                        name,
                        writer.path,
                    )
            next_frame = max(next_frame + 1.0 / fps, now)
            time.sleep(max(0.0, next_frame - time.monotonic()))
    return 0
