"""[layout] orientation = "original": the dome as the original Skyscreen's renderer drew the frame.

The original renderer (pyrendering/render.py, MainRender.make_mapping_matrix) put frame pixel (vane, pixel)
of its 360 x 288 frame at ``cv2.polarToCart(magnitude, angle)`` around the middle of an 800-pixel window:
``magnitude = annulus + (288 - pixel) / 288 * area`` with annulus 50 and area 0.95 * (400 - 50), and
``angle = vane / 360 * 2 * 3.14159``, from the x axis with y down: vane 0 at 3 o'clock, clockwise, pixel 0
at the rim. These tests hold the layout and the simulator's picture to that formula.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from skyscreen_hw import config, layouts
from skyscreen_hw.outputs.simulator import MARGIN
from skyscreen_hw.sources.frame_v2 import remove_frames

VANES, LENGTH = 360, 288  # the original's Screen.screen_vane_count, screen_vane_length
WINDOW, ANNULUS = 800, 50  # the original renderer's window_size and annulus
AREA = 0.95 * (WINDOW / 2.0 - ANNULUS)  # its paintable_area
INNER = ANNULUS / (ANNULUS + AREA)  # the same annulus as a fraction of the dome's radius
PI = 3.14159  # the original's value
SIMULATOR_SIZE = 720  # the simulator's default window, which the dome fills


@pytest.fixture(autouse=True)
def _no_v2_leftovers(display_name: str) -> Iterator[None]:
    """The daemons here make the v2 frame too: removed with the display's v1 files."""
    yield
    remove_frames(display_name)


def original_renderer(vane: np.ndarray, pixel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the original renderer drew frame pixel (vane, pixel), relative to its window's middle, y down."""
    magnitude = ANNULUS + (LENGTH - pixel) / float(LENGTH) * AREA
    angle = vane / float(VANES) * 2.0 * PI
    return magnitude * np.cos(angle), magnitude * np.sin(angle)  # cv2.polarToCart


def original_daemon(daemon_factory, display_name: str, snapshot: Path):
    """A daemon with the original orientation in the headless simulator (the original's inner radius), which
    saves what it shows to ``snapshot`` when it stops; running."""
    text = textwrap.dedent(
        f"""
        [frame]
        name = "{display_name}"
        [layout]
        orientation = "original"
        inner_radius = {INNER!r}
        [color]
        gamma = 1.0
        [websocket]
        enabled = false
        """
    )
    d = daemon_factory(text, "--simulate", "--snapshot", str(snapshot))
    d.wait_for_log("running:", timeout=60)
    return d


def stopped_snapshot(d, snapshot: Path) -> np.ndarray:
    """Stop the daemon (cleanly) and read what its simulator showed last: rows x columns x RGB."""
    import pygame

    assert d.stop(timeout=60) == 0
    return pygame.surfarray.array3d(pygame.image.load(str(snapshot))).transpose(1, 0, 2)


def in_window(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The simulator window's (rows, columns) of the original renderer's places ``x``, ``y``."""
    span, rim = SIMULATOR_SIZE - 1 - 2 * MARGIN, ANNULUS + AREA
    cols = np.round(MARGIN + (x / rim + 1) / 2 * span).astype(int)
    rows = np.round(MARGIN + (y / rim + 1) / 2 * span).astype(int)
    return rows, cols


def test_each_led_sits_where_the_original_renderer_drew_its_frame_pixel() -> None:
    layout = layouts.build(config.parse({"layout": {"orientation": "original", "inner_radius": INNER}}))
    vane, pixel = np.divmod(layout.frame_index, LENGTH)
    x, y = original_renderer(vane, pixel)
    scale = (ANNULUS + AREA) / 2.0  # window pixels per metre of the 2 m dome
    assert np.abs(layout.positions[:, 0] * scale - x).max() < 0.01  # 3.14159 is not quite pi: 0.002 px
    assert np.abs(layout.positions[:, 1] * scale - y).max() < 0.01
    # the wiring is unchanged: LED 0 is the innermost LED of vane 0, which shows frame column 287
    assert layout.frame_index[0] == LENGTH - 1 and layout.frame_index[LENGTH - 1] == 0
    assert layout.view_plan is not None  # a reversed column axis is still a strided view


def test_default_orientation_is_unchanged() -> None:
    layout = layouts.build(config.parse({}))
    assert layout.frame_index[0] == 0 and layout.positions[LENGTH - 1][1] < 0  # vane 0 up, column 0 inside


def test_the_simulator_shows_an_original_frame_where_the_original_renderer_did(
    tmp_path: Path, display_name: str, daemon_factory
) -> None:
    """A real daemon (--simulate --snapshot, headless) and a real writer; the frame is colored in blocks of
    30 vanes x 24 pixels, and the snapshot shows each block's color where the formula puts the block."""
    from skyscreen_hw.sources.shared_frame import FrameWriter

    size = SIMULATOR_SIZE
    vane, pixel = np.mgrid[0:VANES, 0:LENGTH]
    frame = np.stack([15 + 20 * (vane // 30), 15 + 20 * (pixel // 24), np.full_like(vane, 200)], axis=-1)
    snapshot = tmp_path / "original.png"
    d = original_daemon(daemon_factory, display_name, snapshot)
    with FrameWriter(display_name, VANES, LENGTH, timeout=10.0) as writer:
        writer.frame[:] = frame.astype(np.uint8)
        assert writer.flush() and writer.flush()  # the second is taken once the first was shown
    picture = stopped_snapshot(d, snapshot)
    # block middles, through the original's formula, into the simulator's window (the dome fills it)
    bv, bp = np.meshgrid(np.arange(15, VANES, 30), np.arange(12, LENGTH, 24), indexing="ij")
    rows, cols = in_window(*original_renderer(bv.ravel(), bp.ravel()))
    np.testing.assert_array_equal(picture[rows, cols], frame[bv.ravel(), bp.ravel()])
    # and the picture is not the default orientation's: vane 0's block is at 3 o'clock, the rim's colors outside
    middle = size // 2
    assert tuple(picture[middle, size - MARGIN - 3]) == (15, 15, 200)  # vane 0, pixel 0: at the rim, 3 o'clock
    assert math.isclose(INNER, 50 / 382.5)


def test_the_ported_original_pattern_looks_as_on_the_original_renderer(
    tmp_path: Path, display_name: str, daemon_factory
) -> None:
    """The original's fermat spiral (skyscreen_hw.demos.fermat: its drawing unchanged), written by a v2 writer
    process found through WRITER_FILE (geometry from the header): the simulator lights the places the
    original renderer's formula gives for the spiral's pixels. In the default orientation the same frame
    would come out inside-out, and the formula's places would mostly be dark."""
    import os
    import subprocess
    import sys

    from skyscreen_hw.demos import Grid, fermat
    from skyscreen_hw.sources.frame_v2 import frames_path

    snapshot = tmp_path / "fermat.png"
    d = original_daemon(daemon_factory, display_name, snapshot)
    script = (
        "from skyscreen_hw.demos import Grid, fermat\n"
        "from skyscreen_hw.sources.frame_v2 import FrameWriterV2\n"
        "with FrameWriterV2(wait=30.0, timeout=10.0) as w:\n"
        "    picture = fermat(0.0, Grid.of(w.height, w.width))\n"
        "    assert w.write(picture) and w.write(picture)\n"
        "    while w.pending:\n"
        "        pass\n"
    )
    env = {**os.environ, "WRITER_FILE": str(frames_path(display_name))}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    picture = stopped_snapshot(d, snapshot)
    frame = fermat(0.0, Grid.of(VANES, LENGTH))
    vane, pixel = np.nonzero(frame.any(axis=2))

    def lit(x: np.ndarray, y: np.ndarray) -> float:
        rows, cols = in_window(x, y)
        return float(picture[rows, cols].any(axis=1).mean())

    assert len(vane) > 1000
    assert lit(*original_renderer(vane, pixel)) > 0.95
    # the default orientation's places for the same pixels: vane 0 up, column 0 inside
    magnitude = ANNULUS + (pixel + 0.5) / LENGTH * AREA
    angle = 2 * np.pi * vane / VANES
    assert lit(magnitude * np.sin(angle), -magnitude * np.cos(angle)) < 0.5
