"""Colour correction: the table on every byte, also on the way from a frame to the LEDs (the C lookups, and
numpy's two bytes a lookup); the power limit after it is exactly the plain formula."""

from __future__ import annotations

import json
import shutil
import sysconfig
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from skyscreen_hw import config, layouts
from skyscreen_hw.color import COMPILED, ColorCorrection, Lookups, gamma_table, pair_table, scaled_table
from skyscreen_hw.power import PowerLimit

RNG = np.random.default_rng(7)
BUILT = pytest.mark.skipif(COMPILED is None, reason="the C lookups (skyscreen_hw._tables) were not built here")


def colour(gamma: float = 2.2, brightness: float = 0.8, lookups: Lookups | None = None) -> ColorCorrection:
    return ColorCorrection(config.ColorConfig(gamma=gamma, brightness=brightness), lookups)


def test_the_c_lookups_are_built_wherever_a_c_compiler_and_the_python_headers_are() -> None:
    """The C module is optional at install; where it can be built it must have been (a silent fallback to
    numpy would cost every frame ~100 us)."""
    if shutil.which("gcc") is None or not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        pytest.skip("no gcc or no Python headers here: the numpy lookups serve")
    assert COMPILED is not None, "skyscreen_hw._tables was not built: reinstall with `pip install -e .`"


@BUILT
def test_the_c_lookups_refuse_a_wrong_table_or_lengths_naming_the_sizes() -> None:
    src, out = np.zeros(10, np.uint8), np.zeros(10, np.uint8)
    with pytest.raises(ValueError, match="table has 5 bytes"):
        COMPILED.lookup(src, np.zeros(5, np.uint8), out)
    with pytest.raises(ValueError, match="src 10 bytes, out 9"):
        COMPILED.lookup(src, np.zeros(256, np.uint8), out[:9])
    table, frame = np.zeros(256, np.uint8), np.zeros(12, np.uint8)  # 4 pixels
    for runs, leds, why in [
        ([[0, 1, 5]], 5, "inside the frame: no"),  # pixels 0..4 of 4
        ([[3, -1, 5]], 5, "inside the frame: no"),  # pixels 3..-1
        ([[0, 1, 0]], 0, "inside the frame: no"),  # no LEDs
        ([[0, 1, 2]], 3, "for 2 LEDs; out 9 bytes"),  # covers 2 LEDs, out holds 3
    ]:
        with pytest.raises(ValueError, match=why):
            COMPILED.gather_lookup(frame, np.array(runs, np.int32), table, out[: 3 * leds])
    one_run = np.array([[0, 1, 2]], np.int32)
    for drawn, colors in [([2], [[1, 2, 3]]), ([-1], [[1, 2, 3]]), ([0], [[1, 2, 3], [4, 5, 6]])]:
        with pytest.raises(ValueError, match=r"drawn \d+ bytes \(int32 LED numbers below the LEDs\)"):
            COMPILED.gather_lookup(
                frame, one_run, table, out[:6], np.array(drawn, np.int32), np.array(colors, np.uint8)
            )
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="0 <= s < 1 needed"):
            COMPILED.scale(src, bad, out)
    with pytest.raises(ValueError, match="frame 10 bytes"):
        COMPILED.gather_lookup(src, np.array([[0, 1, 2]], np.int32), table, out[:6])
    with pytest.raises(ValueError, match="frame 10 bytes"):
        COMPILED.gather_only(src, np.array([[0, 1, 2]], np.int32), table, out[:6])
    whole = np.zeros(30, np.uint8)  # 10 pixels; out over its first 2 would overwrite what it reads
    for gather in (COMPILED.gather_lookup, COMPILED.gather_only):
        with pytest.raises(ValueError, match="out overlaps what is read"):
            gather(whole, np.array([[4, 1, 2]], np.int32), table, whole[:6])
    assert (out == 0).all()


def test_the_pair_table_maps_both_bytes_of_every_pair_through_the_table() -> None:
    table = gamma_table(2.2, 0.8)
    pairs = np.arange(65536, dtype=np.uint16)
    np.testing.assert_array_equal(pair_table(table).view(np.uint8), table[pairs.view(np.uint8)])


@pytest.mark.parametrize("shape", [(103680, 3), (7, 3), (8, 3), (1, 3), (0, 3), (5,), (4, 5, 3)])
def test_correction_is_the_table_on_every_byte(shape: tuple[int, ...], lookups: Lookups) -> None:
    cc = colour(lookups=lookups)
    leds = RNG.integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(cc(leds, np.empty_like(leds)), cc.table[leds])


def test_in_place_non_contiguous_and_repeated_calls(lookups: Lookups) -> None:
    cc = colour(1.8, 0.6, lookups)
    leds = RNG.integers(0, 256, (1001, 3), dtype=np.uint8)
    want = cc.table[leds]
    same = leds.copy()
    assert cc(same, same) is same
    np.testing.assert_array_equal(same, want)
    out = np.zeros((1001, 6), np.uint8)[:, ::2]  # not contiguous
    np.testing.assert_array_equal(cc(leds[:, ::-1], out), want[:, ::-1])
    other = RNG.integers(0, 256, (1001, 3), dtype=np.uint8)
    np.testing.assert_array_equal(cc(other, np.empty_like(other)), cc.table[other])


def test_the_identity_table_is_a_copy(lookups: Lookups) -> None:
    cc = colour(1.0, 1.0, lookups)
    assert cc.identity
    leds = RNG.integers(0, 256, (99, 3), dtype=np.uint8)
    np.testing.assert_array_equal(cc(leds, np.empty_like(leds)), leds)


def reference(cc: ColorCorrection, limit: PowerLimit, leds: np.ndarray) -> np.ndarray:
    """Straightforward: the table, the sum of the corrected bytes, floor(value * max / drawn) when over."""
    corrected = cc.table[leds]
    drawn = float(corrected.astype(np.int64).sum()) * limit.milliamps_per_unit
    if drawn <= limit.max_milliamps:
        return corrected
    return np.floor(corrected * (limit.max_milliamps / drawn)).astype(np.uint8)


@pytest.mark.parametrize(("gamma", "brightness", "count"), [(2.2, 0.8, 103680), (1.0, 1.0, 1001), (2.8, 1.0, 10)])
def test_the_power_limit_after_the_correction_is_the_plain_formula(
    gamma: float, brightness: float, count: int, lookups: Lookups
) -> None:
    cc = colour(gamma, brightness, lookups)
    settings = config.ColorConfig(gamma=gamma, brightness=brightness, max_milliamps=1, led_milliamps=55.0)
    power = PowerLimit(settings, lookups)
    base = RNG.integers(0, 256, (count, 3), dtype=np.uint8)
    full = float(cc.table[base].astype(np.int64).sum()) * power.milliamps_per_unit
    # over, over again, under, under again, over after under, far over, black
    for level in (0.5, 0.7, 1.5, 2.0, 0.3, 0.01, None):
        limit = 1 if level is None else max(1, int(full * level))
        power.max_milliamps = limit
        leds = np.zeros_like(base) if level is None else base
        corrected = cc(leds, np.empty_like(leds))
        out = np.empty_like(leds)
        got = power.limit(corrected, out)
        assert got is (out if level is not None and level < 1 else corrected)
        np.testing.assert_array_equal(got, reference(cc, power, leds))
        assert power.estimate_milliamps(got) <= limit
        in_place = corrected.copy()
        power.limit(in_place, in_place)
        np.testing.assert_array_equal(in_place, got)
        base = np.roll(base, 1)
    assert power.frames_limited == 2 * 4


def test_a_disabled_limit_leaves_the_frame(lookups: Lookups) -> None:
    leds = RNG.integers(0, 256, (300, 3), dtype=np.uint8)
    power = PowerLimit(config.ColorConfig(), lookups)
    assert not power.enabled
    assert power.limit(leds, np.empty_like(leds)) is leds


@pytest.mark.parametrize("wiring", ["serpentine", "straight", "points"])
def test_gathering_through_the_table_is_the_gather_then_the_table(
    wiring: str, lookups: Lookups, tmp_path: Path
) -> None:
    """One pass where compiled (the layout's index and the table together), else the gather and then the table."""
    if wiring == "points":
        points = tmp_path / "points.json"
        points.write_text(json.dumps([{"point": [i % 7, i // 7, 0]} for i in range(40)]))
        table = {"layout": {"type": "points", "file": str(points)}, "frame": {"height": 6, "width": 9}}
    else:
        table = {"layout": {"serpentine": wiring == "serpentine"}, "frame": {"height": 36, "width": 20}}
    cfg = config.parse({**table, "color": {"gamma": 2.4, "brightness": 0.9}}, "(test)")
    layout = layouts.build(cfg)
    gather = layouts.LedGather(layout)
    cc = ColorCorrection(cfg.color, lookups)
    frame = RNG.integers(0, 256, (cfg.frame.height, cfg.frame.width, 3), dtype=np.uint8)
    out = np.empty((layout.count, 3), np.uint8)
    total = cc.gather(frame, gather, out)
    want = cc.table[frame.reshape(-1, 3)[layout.frame_index]]
    np.testing.assert_array_equal(out, want)
    assert total == (None if lookups.compiled is None else int(want.astype(np.int64).sum()))
    for summed in (True, False):  # the pass the frame clock prepares: the same bytes, the sum only if asked
        out[:] = 0
        total = cc.frame_pass(gather, out, summed)(frame, None)
        np.testing.assert_array_equal(out, want)
        assert total == (int(want.astype(np.int64).sum()) if summed and lookups.compiled is not None else None)
    identity = ColorCorrection(config.ColorConfig(gamma=1.0, brightness=1.0), lookups)
    identity.gather(frame, gather, out)
    np.testing.assert_array_equal(out, frame.reshape(-1, 3)[layout.frame_index])


def test_no_frame_sized_allocation_per_frame(lookups: Lookups) -> None:
    cc = colour(lookups=lookups)
    cfg = config.parse({"layout": {"serpentine": True}}, "(test)")
    gather = layouts.LedGather(layouts.build(cfg))
    power = PowerLimit(config.ColorConfig(max_milliamps=10_000), lookups)
    frame = RNG.integers(0, 256, (360, 288, 3), dtype=np.uint8)
    leds = np.empty((103680, 3), np.uint8)
    out = np.empty_like(leds)
    cc.gather(frame, gather, leds)
    power.limit(cc(leds, leds), out)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for _ in range(3):
            cc.gather(frame, gather, leds)
            cc(leds, leds)
            power.limit(leds, out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert power.frames_limited == 4
    # no frame-sized array (311 kB; a table lookup by np.take would widen its indices into a new 2.5 MB array);
    # numpy's own transient buffers only: 32 kB to build a new pair table, 64 kB to sum bytes into uint64
    assert peak < 100 * 1024


def test_scaling_is_exactly_the_scaled_table_for_any_scale(lookups: Lookups) -> None:
    """The compiled scaling multiplies where a 16-bit multiplier gives the table's 256 bytes, else looks up."""
    src = np.tile(np.arange(256, dtype=np.uint8), 7)
    # scales on and next to the steps of floor(v * s), and random ones
    tricky = [n / v for v in (3, 7, 128, 255) for n in range(1, v)]
    scales = [*tricky, *(np.nextafter(s, 0) for s in tricky), *RNG.random(300), 1e-9, 0.999999999]
    for scale in scales:
        table = scaled_table(float(scale))
        out = np.empty_like(src)
        assert lookups.scale(src, float(scale), out) is out
        np.testing.assert_array_equal(out, table[src])


def test_the_sum_of_bytes_is_exact_past_a_32_bit_block(lookups: Lookups) -> None:
    """The compiled sum adds in blocks of 2**24 bytes (each block's sum fits 32 bits): a block and more, all
    255, sums to exactly that, past what 32 bits hold."""
    src = np.full(17_000_000, 255, np.uint8)
    assert lookups.total(src) == 255 * src.size > 2**32
