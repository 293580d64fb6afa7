"""The canvas overlay: byte masks prepared when the canvas changes equal the simple masked copy, bit for bit."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from skyscreen_hw import config, layouts
from skyscreen_hw.color import ColorCorrection
from skyscreen_hw.compositor import CanvasOverlay, canvas_samples
from skyscreen_hw.sources import instructions as ins
from skyscreen_hw.sources.canvas import Canvas


class Texture:
    """A CanvasLike with any picture: random colours, drawn where ``alpha``."""

    SIZE = Canvas.SIZE

    def __init__(self, rgb: np.ndarray, alpha: np.ndarray) -> None:
        self.version = 1
        self.rgb, self.alpha = rgb, alpha

    def texture(self) -> tuple[np.ndarray, np.ndarray]:
        return self.rgb, self.alpha

    def redraw(self, rgb: np.ndarray, alpha: np.ndarray) -> None:
        self.rgb, self.alpha = rgb, alpha
        self.version += 1


def simple_overlay(layout: layouts.Layout, canvas: Texture | Canvas, leds: np.ndarray) -> np.ndarray:
    """The straightforward way: each LED's brightest drawn sample, np.copyto(..., where=drawn) over a copy."""
    rgb, alpha = canvas.texture()
    flat = rgb.reshape(-1, 3).astype(np.int64)
    colour = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    key = (alpha.reshape(-1).astype(np.int64) << 31) | ((colour != 0).astype(np.int64) << 30) | colour
    best = np.max([key[index] for index in canvas_samples(layout, canvas.SIZE)], axis=0)
    drawn = (best >> 31).astype(bool)
    picture = np.column_stack([(best >> 16) & 0xFF, (best >> 8) & 0xFF, best & 0xFF]).astype(np.uint8)
    out = leds.copy()
    np.copyto(out, picture, where=drawn[:, None])
    return out


def random_texture(rng: np.random.Generator, drawn: float) -> tuple[np.ndarray, np.ndarray]:
    size = Canvas.SIZE
    rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    rgb[rng.random((size, size)) < 0.2] = 0  # some drawn black too
    return rgb, rng.random((size, size)) < drawn


@pytest.mark.parametrize("kind", ["dome", "matrix"])
def test_the_overlay_is_the_simple_masked_copy_bit_for_bit(kind: str) -> None:
    cfg = config.parse({"layout": {"type": kind, "serpentine": True}, "frame": {"width": 64, "height": 48}})
    layout = layouts.build(cfg)
    rng = np.random.default_rng(5)
    texture = Texture(*random_texture(rng, 0.3))
    overlay = CanvasOverlay(layout, texture)
    assert overlay.changed
    for drawn in (0.3, 0.01, 0.9, 1.0):
        texture.redraw(*random_texture(rng, drawn))
        for _ in range(2):
            leds = rng.integers(0, 256, (layout.count, 3), dtype=np.uint8)
            before = leds.copy()
            got = overlay.draw(leds)
            assert not overlay.changed
            np.testing.assert_array_equal(got, simple_overlay(layout, texture, leds))
            np.testing.assert_array_equal(leds, before)  # the source's LEDs are not modified
            assert got is not leds


def test_an_empty_canvas_returns_the_leds_themselves_and_a_real_canvas_matches_too() -> None:
    layout = layouts.build(config.parse({}))
    canvas = Canvas()
    overlay = CanvasOverlay(layout, canvas)
    leds = np.random.default_rng(1).integers(0, 256, (layout.count, 3), dtype=np.uint8)
    assert overlay.draw(leds) is leds
    canvas.apply(1, ins.decode(ins.pack([ins.char(x, 12, 3, 1, 0, "A") for x in range(6, 26)])))
    canvas.apply(2, ins.decode(ins.pack(ins.colour_block(14, 14, 17, 15, 0, 15, 3))))
    assert overlay.changed
    first = overlay.draw(leds)
    np.testing.assert_array_equal(first, simple_overlay(layout, canvas, leds))
    assert overlay.draw(leds) is first  # a reused array
    canvas.clear(1)
    canvas.clear(2)
    assert overlay.draw(leds) is leds


def test_drawing_a_frame_allocates_nothing() -> None:
    layout = layouts.build(config.parse({}))
    rng = np.random.default_rng(2)
    overlay = CanvasOverlay(layout, Texture(*random_texture(rng, 0.5)))
    leds = rng.integers(0, 256, (layout.count, 3), dtype=np.uint8)
    overlay.draw(leds)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for _ in range(3):
            overlay.draw(leds)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024


def random_drawing(rng: np.random.Generator, canvas: Canvas) -> None:
    """Pixels (black ones too), every character code, rectangles and block text from a few sessions; some quit."""
    n = int(rng.integers(1, 400))
    x, y = rng.integers(0, 32, n), rng.integers(0, 32, n)
    colour, code = rng.integers(0, 4096, n), rng.integers(0, 128, n)
    pixels = (1 << 29) | (x << 24) | (1 << 21) | (y << 16) | colour
    chars = (2 << 29) | (x << 24) | (2 << 21) | (y << 16) | ((colour & 0x3F) << 8) | code
    words = np.where(rng.random(n) < 0.5, pixels, chars).tolist()
    session = int(rng.integers(1, 4))
    canvas.apply(session, ins.decode(ins.pack(words)))
    r, g, b = (int(v) for v in rng.integers(0, 16, 3))
    left, top, right, bottom = (int(v) for v in rng.integers(0, 32, 4))
    canvas.apply(session + 1, ins.decode(ins.pack(ins.colour_block(left, top, right, bottom, r, g, b))))
    if rng.random() < 0.3:
        canvas.apply(4, ins.decode(ins.pack([ins.block_start(), *ins.block_text("text\nover\tit", 3, 0, 2), ins.QUIT])))
    if rng.random() < 0.3:
        canvas.clear(int(rng.integers(1, 5)))


@pytest.mark.parametrize("kind", ["dome", "matrix"])
def test_a_real_canvas_packs_its_own_picture_bit_for_bit_with_the_texture_path(kind: str) -> None:
    """`Canvas.packed` (cell order, no RGB picture) against the texture: the same overlay, bit for bit."""
    cfg = config.parse({"layout": {"type": kind, "serpentine": True}, "frame": {"width": 64, "height": 48}})
    layout = layouts.build(cfg)
    rng = np.random.default_rng(8)
    canvas = Canvas()
    packed, via_texture = CanvasOverlay(layout, canvas), CanvasOverlay(layout, Texture(*canvas.texture()))
    assert packed._packer is not None and via_texture._packer is None
    for _ in range(12):
        random_drawing(rng, canvas)
        assert isinstance(via_texture.canvas, Texture)
        via_texture.canvas.redraw(*canvas.texture())
        leds = rng.integers(0, 256, (layout.count, 3), dtype=np.uint8)
        got = packed.draw(leds).copy()
        np.testing.assert_array_equal(got, via_texture.draw(leds))
        np.testing.assert_array_equal(got, simple_overlay(layout, canvas, leds))
    for session in range(1, 6):
        canvas.clear(session)
    leds = rng.integers(0, 256, (layout.count, 3), dtype=np.uint8)
    assert packed.draw(leds) is leds


@pytest.mark.parametrize("kind", ["dome", "matrix"])
def test_gathered_corrected_and_drawn_over_in_one_pass_is_the_table_after_the_overlay(kind: str, lookups) -> None:
    """What the pipeline does (`ColorCorrection.gather` with the overlay, its colours through the same table)
    against the straightforward order: gather, overlay, then the table on every byte; also the sum it gives."""
    cfg = config.parse(
        {"layout": {"type": kind, "serpentine": True}, "frame": {"width": 64, "height": 48}, "color": {"gamma": 2.5}}
    )
    layout = layouts.build(cfg)
    gather = layouts.LedGather(layout)
    color = ColorCorrection(cfg.color, lookups)
    rng = np.random.default_rng(9)
    texture = Texture(*random_texture(rng, 0.3))
    overlay = CanvasOverlay(layout, texture, color)
    plain = CanvasOverlay(layout, texture)
    out = np.empty((layout.count, 3), np.uint8)
    for drawn in (0.3, 0.01, 1.0):
        texture.redraw(*random_texture(rng, drawn))
        frame = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        assert overlay.update()
        total = color.gather(frame, gather, out, overlay)
        want = color.table[plain.draw(gather(frame, np.empty_like(out)))]
        np.testing.assert_array_equal(out, want)
        assert total in (None, int(want.astype(np.int64).sum()))
        assert (total is None) == (lookups.compiled is None)
        out[:] = 0
        assert color.frame_pass(gather, out, summed=False)(frame, overlay) is None  # the pass without the sum
        np.testing.assert_array_equal(out, want)
