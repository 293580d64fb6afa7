"""Layouts: positions and frame pixels per LED; the fast view plans agree with the plain gather."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from skyscreen_hw import config, layouts
from skyscreen_hw.color import ColorCorrection, gamma_table
from skyscreen_hw.errors import LayoutError


def _layout(**sections: dict) -> layouts.Layout:
    return layouts.build(config.parse(sections))


def test_dome_led_order_and_positions() -> None:
    dome = _layout()
    assert dome.count == 360 * 288
    # LED i is vane i // 288, position i % 288 from the inside; frame row v, column p
    assert dome.frame_index[0] == 0 and dome.frame_index[287] == 287 and dome.frame_index[288] == 288
    r = np.hypot(dome.positions[:, 0], dome.positions[:, 1])
    assert r[0] < r[287]  # inside -> outside
    assert math.isclose(r.max(), 2.0 * (0.1 + 0.9 * 287.5 / 288))
    # vane 0 points up (negative y), vane 90 to the right
    assert dome.positions[287][1] < 0 and abs(dome.positions[287][0]) < 1e-9
    assert dome.positions[90 * 288 + 287][0] > 1.9


def test_dome_serpentine_reverses_odd_vanes() -> None:
    dome = _layout(layout={"serpentine": True})
    assert dome.frame_index[288] == 288 + 287  # vane 1 starts at its outside
    assert dome.frame_index[2 * 288] == 2 * 288
    r = np.hypot(*dome.positions[288:290].T)
    assert r[0] > r[1]


def test_dome_with_fewer_leds_than_frame_pixels_samples_the_frame() -> None:
    dome = _layout(layout={"vanes": 90, "leds_per_vane": 72})
    assert dome.count == 90 * 72
    assert dome.frame_index[72] == 4 * 288  # vane 1 shows frame row 4
    assert dome.frame_index[1] == 4  # position 1 shows column 4


@pytest.mark.parametrize(
    ("origin", "first_row", "expected"),
    [
        ("top-left", None, [0, 1, 2, 3, 4]),
        ("top-right", None, [4, 3, 2, 1, 0]),
        ("bottom-left", None, [15, 16, 17, 18, 19]),
        ("bottom-right", None, [19, 18, 17, 16, 15]),
    ],
)
def test_matrix_origins(origin: str, first_row: None, expected: list[int]) -> None:
    m = _layout(frame={"width": 5, "height": 4}, layout={"type": "matrix", "origin": origin})
    assert m.frame_index[:5].tolist() == expected


def test_matrix_serpentine_from_bottom_left() -> None:
    m = _layout(frame={"width": 5, "height": 4}, layout={"type": "matrix", "origin": "bottom-left", "serpentine": True})
    assert m.frame_index.reshape(4, 5).tolist() == [
        [15, 16, 17, 18, 19],
        [14, 13, 12, 11, 10],
        [5, 6, 7, 8, 9],
        [4, 3, 2, 1, 0],
    ]


VARIANTS = [
    {},
    {"layout": {"serpentine": True}},
    {"layout": {"vanes": 100, "leds_per_vane": 50, "serpentine": True}},
    *[
        {"frame": {"width": 7, "height": 6}, "layout": {"type": "matrix", "origin": o, "serpentine": s}}
        for o in ("top-left", "top-right", "bottom-left", "bottom-right")
        for s in (False, True)
    ],
    {"frame": {"width": 7, "height": 6}, "layout": {"type": "matrix", "width": 3, "height": 9}},
    {"layout": {"orientation": "original", "serpentine": True}},
    {"layout": {"orientation": "original", "vanes": 90, "leds_per_vane": 72}},
    {"layout": {"serpentine": True}, "transforms": [{"type": "rotate", "degrees": 45}, {"type": "mirror"}]},
    {
        "frame": {"width": 6, "height": 6},
        "layout": {"type": "matrix"},
        "transforms": [{"type": "rotate", "degrees": 90}],
    },
    {"frame": {"width": 9, "height": 6}, "transforms": [{"type": "crop", "rows": [1, 4], "columns": [2, 5]}]},
    {
        "frame": {"width": 16, "height": 16},
        "layout": {"vanes": 24, "leds_per_vane": 8},
        "transforms": [{"type": "flat"}],
    },
]


@pytest.mark.parametrize("sections", VARIANTS)
def test_gather_matches_plain_index_gather(sections: dict) -> None:
    layout = _layout(**sections)
    h, w = layout.frame_shape
    frame = np.random.default_rng(3).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = np.empty((layout.count, 3), np.uint8)
    layouts.LedGather(layout)(frame, out)
    np.testing.assert_array_equal(out, frame.reshape(-1, 3)[layout.frame_index])


def test_a_view_plan_that_disagrees_with_frame_index_is_refused() -> None:
    """frame_index stays the truth: a plan producing another order is caught when the gather is made."""
    m = _layout(frame={"width": 5, "height": 4}, layout={"type": "matrix"})

    def wrong(frame: np.ndarray) -> list[tuple[slice, np.ndarray]]:
        return [(slice(None), frame[::-1])]

    with pytest.raises(LayoutError, match="view plan disagrees with frame_index"):
        layouts.LedGather(dataclasses.replace(m, view_plan=wrong))


def test_strided_plans_are_found_from_the_index_alone() -> None:
    """A roll of the rows is two views; serpentine wiring splits even and odd rows; an irregular order none."""
    index = np.roll(np.arange(12 * 5).reshape(12, 5), 3, axis=0).reshape(-1)
    plan = layouts.strided_plan(index, (12, 5), (12, 5))
    assert plan is not None and len(plan(np.zeros((12, 5, 3), np.uint8))) == 2
    shuffled = np.random.default_rng(0).permutation(60)
    assert layouts.strided_plan(shuffled, (12, 5), (12, 5)) is None


def test_colour_correction_is_the_table_on_every_byte() -> None:
    table = gamma_table(2.2, 0.5)
    assert table[0] == 0 and table[255] == 128 and table[128] == round(127.5 * (128 / 255) ** 2.2)
    cc = ColorCorrection(config.ColorConfig(gamma=2.2, brightness=0.5))
    for n in (7, 8):  # odd and even byte counts
        leds = np.random.default_rng(n).integers(0, 256, (n, 3), dtype=np.uint8)
        np.testing.assert_array_equal(cc(leds, np.empty_like(leds)), table[leds])
    identity = ColorCorrection(config.ColorConfig(gamma=1.0, brightness=1.0))
    assert identity.identity


def test_points_layout_from_opc_json(tmp_path: Path) -> None:
    # a 2 x 3 wall in OPC's convention: x across, z up, y = 0
    pts = [{"point": [x, 0.0, z]} for z in (1.0, 0.0) for x in (0.0, 0.5, 1.0)]
    path = tmp_path / "wall.json"
    path.write_text(json.dumps(pts))
    layout = _layout(frame={"width": 3, "height": 2}, layout={"type": "points", "file": str(path)})
    assert layout.count == 6
    assert layout.frame_index.tolist() == [0, 1, 2, 3, 4, 5]  # top row (z=1) is frame row 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("{not json", "cannot read OpenPixelControl JSON"),
        ("[]", "non-empty JSON list"),
        ('[{"pos": [1, 2, 3]}]', 'every entry must be {"point": [x, y, z]}'),
        ('[{"point": [1, "a", 3]}]', 'every entry must be {"point": [x, y, z]}'),
        ('[{"point": [1]}]', "2 or 3 finite numbers"),
    ],
)
def test_bad_points_files(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "layout.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(LayoutError) as err:
        _layout(layout={"type": "points", "file": str(path)})
    assert str(path) in str(err.value) and expected in str(err.value)


def test_index_runs_give_the_index_back() -> None:
    """The compiled gather reads a layout's frame index as runs of evenly spaced pixels."""
    rng = np.random.default_rng(8)
    cases = [np.array([5]), np.arange(10), np.arange(10)[::-1], np.array([3, 3, 3, 4, 5, 6]), rng.integers(0, 50, 40)]
    for index in cases:
        runs = layouts.index_runs(index)
        back = np.concatenate([first + step * np.arange(count) for first, step, count in runs])
        np.testing.assert_array_equal(back, index)
    dome = layouts.build(config.parse({"layout": {"serpentine": True}}))
    assert len(layouts.LedGather(dome).runs) < 2 * 360  # a run a vane, and a one-LED run at most between
