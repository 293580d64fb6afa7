"""The power limit: whole frames scaled under [color] max_milliamps, hue kept, 0 disables it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from skyscreen_hw import config
from skyscreen_hw.color import Lookups
from skyscreen_hw.outputs.record import read_recording
from skyscreen_hw.power import PowerLimit
from skyscreen_hw.sources.shared_frame import FrameWriter

DOME = 360 * 288


def limit(max_ma: int, led_ma: float = 55.0, lookups: Lookups | None = None) -> PowerLimit:
    return PowerLimit(config.ColorConfig(max_milliamps=max_ma, led_milliamps=led_ma), lookups)


def test_full_white_dome_is_scaled_under_the_supply_limit() -> None:
    leds = np.full((DOME, 3), 255, np.uint8)
    power = limit(60_000)  # a 60 A supply; the dome at full white would draw 5.7 kA
    assert power.estimate_milliamps(leds) == DOME * 55.0
    power(leds)
    assert power.estimate_milliamps(leds) <= 60_000
    assert (leds == 2).all()  # the brightest level that fits: 3 would draw 67 A
    assert power.estimate_milliamps(np.full((DOME, 3), 3, np.uint8)) > 60_000
    assert power.frames_limited == 1


def test_the_scale_keeps_the_hue_and_spares_frames_under_the_limit() -> None:
    leds = np.tile(np.array([[200, 100, 0]], np.uint8), (1000, 1))
    power = limit(1_000)  # this frame would draw 1000 * 55 * 300/765 = 21.6 A
    power(leds)
    r, g, b = leds[0].astype(int)
    assert b == 0 and abs(r - 2 * g) <= 1 and 0 < r < 200
    small = np.full((10, 3), 255, np.uint8)
    power(small)  # 550 mA: under the limit, untouched
    assert (small == 255).all() and power.frames_limited == 1


def test_zero_disables_the_limit() -> None:
    leds = np.full((DOME, 3), 255, np.uint8)
    power = limit(0)
    assert not power.enabled
    power(leds)
    assert (leds == 255).all()


def test_the_scaled_frame_never_draws_more_than_the_limit_and_is_the_plain_formula(lookups: Lookups) -> None:
    rng = np.random.default_rng(11)
    for max_ma in (1, 500, 20_000, 1_000_000, 3_000_000):
        leds = rng.integers(0, 256, (DOME, 3), dtype=np.uint8)
        power = limit(max_ma, lookups=lookups)
        drawn = float(leds.astype(np.int64).sum()) * power.milliamps_per_unit
        want = np.floor(leds * (max_ma / drawn)).astype(np.uint8) if drawn > max_ma else leds.copy()
        assert power.estimate_milliamps(leds) == drawn
        power(leds)
        np.testing.assert_array_equal(leds, want)
        assert power.estimate_milliamps(leds) <= max_ma
        assert power.frames_limited == (1 if drawn > max_ma else 0)


def test_the_recording_shows_the_limited_frame(display_name: str, daemon_factory, tmp_path: Path) -> None:
    rec = tmp_path / "rec.rgb"
    text = textwrap.dedent(
        f"""
        outputs = []
        [frame]
        name = "{display_name}"
        width = 10
        height = 10
        [layout]
        type = "matrix"
        [color]
        gamma = 1.0
        max_milliamps = 1100
        led_milliamps = 55.0
        [websocket]
        enabled = false
        """
    )
    d = daemon_factory(text, "--record", str(rec))
    d.wait_for_log("running:")
    with FrameWriter(display_name, 10, 10, timeout=2.0) as w:
        w.frame[:] = 255  # 100 LEDs at full white: 5.5 A against a 1.1 A supply
        assert w.flush()
    assert d.stop() == 0
    frames = read_recording(rec, 100)
    white = [f for f in frames if f.any()]
    assert white and all(limit(1100).estimate_milliamps(f) <= 1100 for f in white)
    assert white[-1].max() == 51  # 255 * 1100 / 5500, rounded down
