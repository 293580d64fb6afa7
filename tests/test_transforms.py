"""[[transforms]]: composed once into the layout's frame index, the same as numpy doing each step to the frame.

Pure steps against numpy (np.rot90, flips, slices, np.roll), the layouts they give (strided views kept where
the mapping still is one), bad entries named by file and key through layouts.build, `check-config` and the
daemon, and the simulator showing a flat picture on the dome.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from skyscreen_hw import config, layouts, transforms
from skyscreen_hw.config import TransformConfig
from skyscreen_hw.errors import LayoutError
from skyscreen_hw.sources.frame_v2 import remove_frames


@pytest.fixture(autouse=True)
def _no_v2_leftovers(display_name: str) -> Iterator[None]:
    """The daemons here make the v2 frame too: removed with the display's v1 files."""
    yield
    remove_frames(display_name)


def _layout(transforms_: list[dict], **sections: dict) -> layouts.Layout:
    return layouts.build(config.parse({**sections, "transforms": transforms_}, "wall.toml"))


def _shown(layout: layouts.Layout, frame: np.ndarray) -> np.ndarray:
    """What the LEDs show, through the layout's gather (strided views where it has them), checked against
    the plain index gather."""
    out = np.empty((layout.count, 3), np.uint8)
    layouts.LedGather(layout)(frame, out)
    np.testing.assert_array_equal(out, frame.reshape(-1, 3)[layout.frame_index])
    return out


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# -- pure: the chain against numpy ------------------------------------------------------------------------


def _numpy(frame: np.ndarray, t: TransformConfig, polar: bool) -> np.ndarray:
    """What one transform does to a picture, the plain numpy way."""
    if t.type == "crop":
        r0, rc = t.rows or (0, frame.shape[0])
        c0, cc = t.columns or (0, frame.shape[1])
        return frame[r0 : r0 + rc, c0 : c0 + cc]
    if t.type == "mirror":
        return frame[::-1] if t.axis == "rows" else frame[:, ::-1]
    if polar:
        return np.roll(frame, round(t.degrees * frame.shape[0] / 360), axis=0)
    return np.rot90(frame, -round(t.degrees / 90))  # clockwise


CHAINS = [
    ([TransformConfig("rotate", degrees=90)], False, (6, 6)),
    ([TransformConfig("rotate", degrees=180)], False, (6, 7)),
    ([TransformConfig("rotate", degrees=270)], False, (5, 5)),
    ([TransformConfig("rotate", degrees=-90)], False, (5, 5)),
    ([TransformConfig("rotate", degrees=30)], True, (12, 7)),
    ([TransformConfig("rotate", degrees=-60)], True, (12, 7)),
    ([TransformConfig("mirror", axis="rows")], False, (6, 7)),
    ([TransformConfig("mirror", axis="columns")], True, (6, 7)),
    ([TransformConfig("crop", rows=(2, 3), columns=(1, 4))], False, (6, 7)),
    ([TransformConfig("crop", columns=(3, 2))], False, (6, 7)),
    (
        [
            TransformConfig("crop", rows=(1, 6), columns=(0, 6)),
            TransformConfig("rotate", degrees=90),
            TransformConfig("mirror", axis="columns"),
            TransformConfig("crop", rows=(1, 4)),
        ],
        False,
        (8, 9),
    ),
    (
        [
            TransformConfig("mirror", axis="rows"),
            TransformConfig("rotate", degrees=90),
            TransformConfig("crop", rows=(0, 4)),
        ],
        True,
        (12, 5),
    ),
]


@pytest.mark.parametrize(("steps", "polar", "shape"), CHAINS)
def test_the_chain_pulls_every_picture_pixel_back_to_where_numpy_takes_it_from(
    steps: list[TransformConfig], polar: bool, shape: tuple[int, int]
) -> None:
    frame = _frame(*shape)
    picture = frame
    for t in steps:
        picture = _numpy(picture, t, polar)
    chain = transforms.compose(steps, shape, polar=polar)
    assert chain.shape == picture.shape[:2]
    rows, cols = np.divmod(np.arange(picture.shape[0] * picture.shape[1]), picture.shape[1])
    fr, fc = chain.pull(rows, cols)
    np.testing.assert_array_equal(frame[fr, fc], picture.reshape(-1, 3))


def test_rotating_the_dome_turns_its_content_clockwise() -> None:
    """Frame row 0 (vane 0, at the top) shows at vane 90 (3 o'clock) after a 90-degree turn of 360 vanes."""
    layout = _layout([{"type": "rotate", "degrees": 90}], layout={"vanes": 360})
    vane_of_led = np.arange(layout.count) // 288
    rows = layout.frame_index // 288
    assert (rows[vane_of_led == 90] == 0).all() and (rows[vane_of_led == 0] == 270).all()
    x, y = layout.positions[vane_of_led == 90].T
    assert (x > 0).all() and np.allclose(y, 0, atol=1e-9)


# -- layouts: strided views where the composed mapping still is one ----------------------------------------


FAST = [
    ([{"type": "rotate", "degrees": 90}], {"layout": {"serpentine": True}}, 4),
    ([{"type": "rotate", "degrees": 37}, {"type": "mirror", "axis": "columns"}], {"layout": {"serpentine": True}}, 4),
    ([{"type": "mirror", "axis": "rows"}], {}, 1),
    ([{"type": "mirror", "axis": "columns"}], {"layout": {"orientation": "original"}}, 1),
    ([{"type": "crop", "rows": [10, 300], "columns": [8, 200]}], {"layout": {"serpentine": True}}, 2),
    (
        [{"type": "rotate", "degrees": 90}, {"type": "mirror", "axis": "rows"}],
        {
            "frame": {"width": 9, "height": 9},
            "layout": {"type": "matrix", "serpentine": True, "origin": "bottom-right"},
        },
        2,
    ),
    ([{"type": "rotate", "degrees": 270}], {"frame": {"width": 6, "height": 6}, "layout": {"type": "matrix"}}, 1),
]


@pytest.mark.parametrize(("steps", "sections", "views"), FAST)
def test_transformed_grids_keep_the_strided_fast_path(steps: list[dict], sections: dict, views: int) -> None:
    layout = _layout(steps, **sections)
    gather = layouts.LedGather(layout)
    assert gather.plan is not None
    h, w = layout.frame_shape
    frame = _frame(h, w, 5)
    plan = gather.plan(frame)
    assert len(plan) == views and all(np.shares_memory(v, frame) for _, v in plan)
    _shown(layout, frame)


def test_a_quarter_turned_matrix_shows_the_turned_frame_in_wiring_order() -> None:
    layout = _layout([{"type": "rotate", "degrees": 90}], frame={"width": 5, "height": 5}, layout={"type": "matrix"})
    frame = _frame(5, 5, 1)
    np.testing.assert_array_equal(_shown(layout, frame).reshape(5, 5, 3), np.rot90(frame, -1))


def test_mirrored_matrix_is_the_frame_flipped() -> None:
    frame = _frame(4, 6, 2)
    for axis, flipped in (("rows", frame[::-1]), ("columns", frame[:, ::-1])):
        layout = _layout([{"type": "mirror", "axis": axis}], frame={"width": 6, "height": 4}, layout={"type": "matrix"})
        np.testing.assert_array_equal(_shown(layout, frame).reshape(4, 6, 3), flipped)


def test_a_video_wall_of_two_daemons_shows_one_big_frame_between_them() -> None:
    """Each panel (a 6 x 4 matrix) crops its half of a 6 x 8 frame; side by side they are the whole frame."""
    frame = _frame(6, 8, 3)
    halves = []
    for first in (0, 4):
        layout = _layout(
            [{"type": "crop", "columns": [first, 4]}],
            frame={"width": 8, "height": 6},
            layout={"type": "matrix", "width": 4, "height": 6},
        )
        assert layout.count == 24 and layout.frame_shape == (6, 8)
        halves.append(_shown(layout, frame).reshape(6, 4, 3))
    np.testing.assert_array_equal(np.concatenate(halves, axis=1), frame)


def test_a_cropped_dome_takes_its_vanes_from_the_window() -> None:
    layout = _layout([{"type": "crop", "rows": [100, 180], "columns": [0, 288]}])
    assert layout.count == 180 * 288 and layout.frame_shape == (360, 288)
    assert layout.frame_index[0] == 100 * 288 and layout.frame_index[-1] == 279 * 288 + 287


def test_flat_samples_the_frame_at_each_leds_position_aspect_kept_and_centred() -> None:
    """The dome on a 360 x 288 frame as a flat picture: column and row grow with x and y at one scale, the
    dome's middle at the frame's middle, its 4 m across filling the 288 columns."""
    layout = _layout([{"type": "flat"}])
    assert layout.view_plan is None  # a gather, prepared once
    rows, cols = np.divmod(layout.frame_index, 288)
    x, y = layout.positions.T
    scale = 287 / (x.max() - x.min())
    assert np.abs(cols - ((x - x.min()) * scale)).max() <= 0.5 + 1e-9
    assert np.abs(rows - ((y - y.min()) * scale + (359 - 287) / 2)).max() <= 0.5 + 1e-9
    assert cols.min() == 0 and cols.max() == 287 and rows.min() == 36 and rows.max() == 323


def test_flat_after_a_quarter_turn_turns_the_flat_picture() -> None:
    plain = _layout([{"type": "flat"}], frame={"width": 64, "height": 64}, layout={"vanes": 90, "leds_per_vane": 30})
    turned = _layout(
        [{"type": "rotate", "degrees": 90}, {"type": "flat"}],
        frame={"width": 64, "height": 64},
        layout={"vanes": 90, "leds_per_vane": 30},
    )
    frame = _frame(64, 64, 4)
    np.testing.assert_array_equal(_shown(turned, frame), _shown(plain, np.ascontiguousarray(np.rot90(frame, -1))))


# -- bad entries: named by file and key, from layouts.build, check-config and the daemon -------------------


BAD = [
    (
        [{"type": "crop", "rows": [300, 100]}],
        {},
        "wall.toml: [[transforms]] #1 rows: [300, 100] takes rows 300..399, but the picture has 360 rows here",
    ),
    (
        [{"type": "mirror"}, {"type": "crop", "columns": [0, 289]}],
        {},
        "wall.toml: [[transforms]] #2 columns: [0, 289] takes columns 0..288, but the picture has 288 columns",
    ),
    (
        [{"type": "crop", "rows": [0, 100]}, {"type": "crop", "rows": [50, 51]}],
        {},
        "[[transforms]] #2 rows: [50, 51] takes rows 50..100, but the picture has 100 rows here",
    ),
    (
        [{"type": "rotate", "degrees": 7.5}],
        {},
        "wall.toml: [[transforms]] #1 degrees: 7.5 is not a whole number of vanes (the dome has 360 vanes, 1"
        " degrees apart): the dome turns by whole vanes only, e.g. 7 or 8",
    ),
    (
        [{"type": "rotate", "degrees": 12}],
        {"layout": {"vanes": 72}},
        "[[transforms]] #1 degrees: 12 is not a whole number of vanes (the dome has 72 vanes, 5 degrees apart)",
    ),
    (
        [{"type": "rotate", "degrees": 45}],
        {"layout": {"type": "matrix"}},
        "wall.toml: [[transforms]] #1 degrees: 45 is not a quarter turn: a flat picture turns by 90, 180 or 270",
    ),
    (
        [{"type": "rotate", "degrees": 90}],
        {"layout": {"type": "matrix"}},
        "[[transforms]] #1 degrees: a 90-degree turn needs a square picture, but it is 360x288 (rows x columns)"
        " here: turned it would be 288x360",
    ),
    (
        [{"type": "rotate", "degrees": 30}, {"type": "flat"}],
        {},
        "[[transforms]] #1 degrees: 30 is not a quarter turn: a flat picture turns by 90, 180 or 270 degrees (a"
        " dome's own picture turns by whole vanes; before flat the picture is flat)",
    ),
    (
        [{"type": "flat"}, {"type": "mirror"}],
        {},
        "wall.toml: [[transforms]] #1 type: flat must be the last transform",
    ),
]


@pytest.mark.parametrize(("steps", "sections", "message"), BAD)
def test_transforms_that_cannot_apply_are_named_by_file_and_key(
    steps: list[dict], sections: dict, message: str
) -> None:
    with pytest.raises(LayoutError) as err:
        _layout(steps, **sections)
    assert message in str(err.value)


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wall.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_check_config_and_the_daemon_fail_alike_on_a_crop_beyond_the_frame(tmp_path: Path, display_name: str) -> None:
    path = _toml(
        tmp_path,
        f"""
        outputs = []
        [frame]
        name = "{display_name}"
        [websocket]
        enabled = false
        [[transforms]]
        type = "crop"
        rows = [300, 100]
        """,
    )
    line = f"skyscreen-hw: error: {path}: [[transforms]] #1 rows: [300, 100] takes rows 300..399"
    for args in (["check-config", str(path)], ["--config", str(path), "--duration", "5"]):
        done = subprocess.run([sys.executable, "-m", "skyscreen_hw", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and done.stderr.startswith(line), done.stderr
        assert "Traceback" not in done.stderr


def test_layout_png_shows_the_transforms(tmp_path: Path) -> None:
    """`skyscreen-hw layout --png`: each LED in the color of the frame pixel it shows; a mirror of the columns
    swaps the colors of the left and right halves of a matrix."""
    import pygame

    from skyscreen_hw.layout_drawing import frame_colors
    from skyscreen_hw.outputs.simulator import pixel_positions

    plain = _toml(tmp_path, '[frame]\nwidth = 16\nheight = 8\n[layout]\ntype = "matrix"\n')
    mirrored = tmp_path / "mirrored.toml"
    mirrored.write_text(plain.read_text() + '[[transforms]]\ntype = "mirror"\naxis = "columns"\n')
    seen = []
    for cfg in (plain, mirrored):
        png = tmp_path / f"{cfg.stem}.png"
        done = subprocess.run(
            [sys.executable, "-m", "skyscreen_hw", "--config", str(cfg), "layout", "--png", str(png), "--size", "300"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        layout = layouts.build(config.load(cfg))
        picture = pygame.surfarray.array3d(pygame.image.load(str(png))).transpose(1, 0, 2)
        px = pixel_positions(layout, 300)
        middle = px[17:31]  # LEDs 17..30 (row 1, away from the first and last LED's markers)
        np.testing.assert_array_equal(picture[middle[:, 1], middle[:, 0]], frame_colors(layout)[17:31])
        seen.append(picture[middle[:, 1], middle[:, 0]])
        if cfg is mirrored:
            assert "transform: mirror columns" in done.stdout
    np.testing.assert_array_equal(seen[0][:, 0], seen[1][::-1, 0])  # red (the frame column) runs the other way


def test_the_simulator_shows_a_flat_picture_undistorted_on_the_dome(
    tmp_path: Path, display_name: str, daemon_factory
) -> None:
    """A real daemon with the simulator and a real writer: a flat picture of four colored quadrants shows as
    four quadrants of the round dome (without flat, the dome would show four rings' worth of vanes)."""
    import pygame

    from skyscreen_hw.outputs.simulator import pixel_positions
    from skyscreen_hw.sources.shared_frame import FrameWriter

    h, w, size = 90, 72, 300
    text = textwrap.dedent(
        f"""
        [[outputs]]
        type = "simulator"
        size = {size}
        [frame]
        name = "{display_name}"
        height = {h}
        width = {w}
        [color]
        gamma = 1.0
        [websocket]
        enabled = false
        [[transforms]]
        type = "flat"
        """
    )
    snapshot = tmp_path / "flat.png"
    d = daemon_factory(text, "--snapshot", str(snapshot))
    d.wait_for_log("running:")
    frame = np.zeros((h, w, 3), np.uint8)
    frame[: h // 2, : w // 2] = (255, 0, 0)
    frame[: h // 2, w // 2 :] = (0, 255, 0)
    frame[h // 2 :, : w // 2] = (0, 0, 255)
    frame[h // 2 :, w // 2 :] = (255, 255, 0)
    with FrameWriter(display_name, h, w, timeout=5.0) as writer:
        writer.frame[:] = frame
        assert writer.flush() and writer.flush()  # the second is taken once the first was shown
    assert d.stop() == 0
    picture = pygame.surfarray.array3d(pygame.image.load(str(snapshot))).transpose(1, 0, 2)
    layout = layouts.build(config.load(d.config_path))
    px = pixel_positions(layout, size)
    x, y = layout.positions.T
    clear = (np.abs(x) > 0.15) & (np.abs(y) > 0.15)  # away from the lines between quadrants
    shown = picture[px[clear, 1], px[clear, 0]]
    expected = np.select(
        [(x < 0) & (y < 0), (x >= 0) & (y < 0), (x < 0) & (y >= 0)],
        [np.array([255, 0, 0])[:, None], np.array([0, 255, 0])[:, None], np.array([0, 0, 255])[:, None]],
        np.array([255, 255, 0])[:, None],
    ).T[clear]
    assert (shown == expected).all(axis=1).mean() > 0.99  # dots of neighbours may overlap a pixel or two


def test_a_reload_applies_new_transforms_and_rejects_bad_ones(
    tmp_path: Path, display_name: str, daemon_factory
) -> None:
    """SIGHUP with a mirror added: the next frame is shown mirrored; then a crop beyond the frame: rejected,
    naming the entry and key, the mirrored mapping kept."""
    import signal
    import time

    from skyscreen_hw.outputs.record import read_recording
    from skyscreen_hw.sources.shared_frame import FrameWriter

    base = textwrap.dedent(
        f"""
        outputs = []
        [frame]
        name = "{display_name}"
        height = 4
        width = 5
        [layout]
        type = "matrix"
        [color]
        gamma = 1.0
        [websocket]
        enabled = false
        """
    )
    mirror = '[[transforms]]\ntype = "mirror"\naxis = "columns"\n'
    rec = tmp_path / "out.rgb"
    d = daemon_factory(base, "--record", str(rec))
    d.wait_for_log("running:")
    frame = _frame(4, 5, 8)

    def reload(text: str, line: str) -> None:
        count = d.log.count(line)
        d.config_path.write_text(text)
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while d.log.count(line) == count:
            assert time.monotonic() < deadline, d.log
            time.sleep(0.05)

    def shown() -> list[np.ndarray]:
        return [f for f in read_recording(rec, 20).reshape(-1, 4, 5, 3) if f.any()] if rec.exists() else []

    with FrameWriter(display_name, 4, 5, timeout=5.0) as w:
        w.frame[:] = frame
        assert w.flush()
        deadline = time.monotonic() + 20
        while not shown():  # taken is not yet shown: the reload must come after the frame was
            assert time.monotonic() < deadline, d.log
            time.sleep(0.02)
        reload(base + mirror, "reloaded:")
        assert w.flush()
        reload(base + mirror + '[[transforms]]\ntype = "crop"\ncolumns = [3, 3]\n', "reload rejected")
        assert w.flush()
    time.sleep(0.3)
    assert d.stop() == 0
    seen = shown()
    assert any((f == frame).all() for f in seen) and (seen[-1] == frame[:, ::-1]).all()
    assert "[[transforms]] #2 columns: [3, 3] takes columns 3..5, but the picture has 5 columns" in d.log
