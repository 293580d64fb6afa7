"""[layout] projection: 3-D OpenPixelControl point maps made a flat picture where every LED shows its own pixel.

The shapes are made here the way openpixelcontrol's layouts/make_cylinder.py makes its cylinders (rings of
``n_around`` LEDs at ``x = sin(theta) * r, y = cos(theta) * r`` on the z axis from -height to height, ring
after ring: e.g. cylinder_r2_h0.5_128x10.json, cylinder_r1_h1_64x20.json, circle_r1_50x.json), plus
straight strips; none of their files is copied.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from skyscreen_hw import config, layouts
from skyscreen_hw.sources.frame_v2 import remove_frames


@pytest.fixture(autouse=True)
def _no_v2_leftovers(display_name: str) -> Iterator[None]:
    """The daemons here make the v2 frame too: removed with the display's v1 files."""
    yield
    remove_frames(display_name)


def opc_cylinder(radius: float, height: float, n_around: int, n_tall: int) -> list[dict]:
    """Like openpixelcontrol's make_cylinder.py (4 decimals, as it prints them)."""
    points = []
    for ii in range(n_tall):
        z = 0.0 if n_tall == 1 else (ii / (n_tall - 1)) * 2 - 1
        z *= height
        for jj in range(n_around):
            theta = jj / n_around * math.pi * 2
            x, y = math.sin(theta) * radius, math.cos(theta) * radius
            points.append({"point": [round(x, 4), round(y, 4), round(z, 4)]})
    return points


def strip(n: int, direction: tuple[float, float, float], spacing: float = 0.0166) -> list[dict]:
    return [{"point": [k * spacing * d for d in direction]} for k in range(n)]


def _layout(tmp_path: Path, pts: list[dict], projection: str = "auto", height: int = 360, width: int = 288):
    path = tmp_path / "layout.json"
    path.write_text(json.dumps(pts))
    sections = {
        "frame": {"height": height, "width": width},
        "layout": {"type": "points", "file": str(path), "projection": projection},
    }
    return layouts.build(config.parse(sections))


CYLINDERS = [(2.0, 0.5, 128, 10), (1.0, 1.0, 64, 20), (1.0, 2.0, 32, 20)]


@pytest.mark.parametrize(("radius", "height", "around", "tall"), CYLINDERS)
def test_opc_cylinders_unroll_so_every_led_shows_its_own_pixel(
    tmp_path: Path, radius: float, height: float, around: int, tall: int
) -> None:
    pts = opc_cylinder(radius, height, around, tall)
    flat_view = _layout(tmp_path, pts, "xy")  # looking down the axis: the rings lie on each other
    assert len(np.unique(flat_view.frame_index)) == around  # each column of `tall` LEDs shows one pixel
    for projection in ("auto", "cylinder"):
        layout = _layout(tmp_path, pts, projection)
        assert len(np.unique(layout.frame_index)) == len(pts)
        rows, cols = np.divmod(layout.frame_index, 288)
        ring, step = np.divmod(np.arange(len(pts)), around)
        # around the axis along the columns (one turn = the width), the top ring (highest z) in row 0
        off = (cols - step * 288 / around + 144) % 288 - 144  # the column nearest its angle (4 decimals in)
        assert np.abs(off).max() <= 0.5 + 1e-6
        np.testing.assert_array_equal(rows, np.round((tall - 1 - ring) * 359 / (tall - 1)).astype(int))
        # drawn unrolled: every LED at its own place
        assert len(np.unique(np.round(layout.positions, 6), axis=0)) == len(pts)


def test_a_cylinder_on_another_axis_is_found() -> None:
    pts = np.array([p["point"] for p in opc_cylinder(1.0, 1.0, 40, 8)])[:, [2, 0, 1]]  # the axis is now x
    assert layouts.detect_projection(pts) == "cylinder"
    assert layouts.detect_projection(np.array([p["point"] for p in opc_cylinder(1.0, 0.0, 50, 1)])) == "plane"


@pytest.mark.parametrize(("n", "direction"), [(60, (1.0, 0.0, 0.0)), (300, (0.0, 0.0, 1.0)), (647, (1.0, 2.0, 3.0))])
def test_a_straight_strip_spreads_along_the_frames_diagonal(tmp_path: Path, n: int, direction: tuple) -> None:
    """Today's complaint: a strip along one axis read only frame row 0. Now it runs corner to corner, each LED
    on its own pixel, down to one pixel apart (360 + 288 - 1 = 647 LEDs)."""
    layout = _layout(tmp_path, strip(n, direction))
    assert len(np.unique(layout.frame_index)) == n
    rows, cols = np.divmod(layout.frame_index, 288)
    assert (rows[0], cols[0]) == (0, 0) and (rows[-1], cols[-1]) == (359, 287)  # corner to corner, LED 0 first
    assert (np.diff(rows) >= 0).all() and (np.diff(cols) >= 0).all()
    t = np.arange(n) / (n - 1)  # evenly spaced LEDs: evenly along the diagonal
    assert np.abs(rows - t * 359).max() <= 1 and np.abs(cols - t * 287).max() <= 1
    assert np.allclose(layout.positions[:, 1], 0) and (np.diff(layout.positions[:, 0]) > 0).all()


def test_a_strip_longer_than_the_diagonal_snakes_along_rows(tmp_path: Path) -> None:
    layout = _layout(tmp_path, strip(1000, (0.0, 1.0, 0.0)))
    assert len(np.unique(layout.frame_index)) == 1000
    rows, cols = np.divmod(layout.frame_index, 288)
    assert sorted(set(rows.tolist())) == [0, 120, 239, 359]  # four rows of 288, spread over the height
    turns = np.flatnonzero(np.diff(rows))
    assert (np.abs(np.diff(cols))[np.setdiff1d(np.arange(999), turns)] <= 2).all()  # neighbours stay near


def test_a_strip_on_a_one_row_frame_takes_the_row(tmp_path: Path) -> None:
    layout = _layout(tmp_path, strip(50, (0.0, 1.0, 0.0)), height=1, width=50)
    assert layout.frame_index.tolist() == list(range(50))


def test_planes_look_at_the_named_axes_with_the_second_one_up(tmp_path: Path) -> None:
    # a 2 x 3 wall standing in the y-z plane (x = 0.3), z up
    pts = [{"point": [0.3, y, z]} for z in (1.0, 0.0) for y in (0.0, 0.5, 1.0)]
    for projection in ("auto", "yz"):
        assert _layout(tmp_path, pts, projection, 2, 3).frame_index.tolist() == [0, 1, 2, 3, 4, 5]
    # the same wall seen in the x-z plane: every LED at x = 0.3, so only the rows tell them apart
    assert _layout(tmp_path, pts, "xz", 2, 3).frame_index.tolist() == [0, 0, 0, 3, 3, 3]


def test_the_simulator_shows_each_led_of_a_cylinder_in_its_own_color(
    tmp_path: Path, display_name: str, daemon_factory
) -> None:
    """A real daemon with the simulator and a real writer on the unrolled OPC cylinder r2 h0.5 128 x 10."""
    import pygame

    from skyscreen_hw.outputs.simulator import pixel_positions
    from skyscreen_hw.sources.shared_frame import FrameWriter

    path = tmp_path / "cylinder.json"
    path.write_text(json.dumps(opc_cylinder(2.0, 0.5, 128, 10)))
    text = textwrap.dedent(
        f"""
        [[outputs]]
        type = "simulator"
        [frame]
        name = "{display_name}"
        height = 40
        width = 256
        [layout]
        type = "points"
        file = "{path}"
        [color]
        gamma = 1.0
        [websocket]
        enabled = false
        """
    )
    snapshot = tmp_path / "cylinder.png"
    d = daemon_factory(text, "--snapshot", str(snapshot))
    d.wait_for_log("running:")
    frame = np.random.default_rng(7).integers(0, 256, (40, 256, 3), dtype=np.uint8)
    with FrameWriter(display_name, 40, 256, timeout=5.0) as writer:
        writer.frame[:] = frame
        assert writer.flush() and writer.flush()
    assert d.stop() == 0
    layout = layouts.build(config.load(d.config_path))
    assert len(np.unique(layout.frame_index)) == layout.count == 1280
    picture = pygame.surfarray.array3d(pygame.image.load(str(snapshot))).transpose(1, 0, 2)
    px = pixel_positions(layout, 720)
    np.testing.assert_array_equal(picture[px[:, 1], px[:, 0]], frame.reshape(-1, 3)[layout.frame_index])
