"""Colour correction: the table on every byte (the C lookups, and numpy's two bytes a lookup); with a power
limit, exactly power(color(...))."""

from __future__ import annotations

import shutil
import sysconfig
import tracemalloc
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from skyscreen_hw import config
from skyscreen_hw.color import COMPILED, ColorCorrection, PairLookup, gamma_table, pair_table
from skyscreen_hw.power import PowerLimit

RNG = np.random.default_rng(7)
BUILT = pytest.mark.skipif(COMPILED is None, reason="the C lookups (skyscreen_hw._tables) were not built here")


@pytest.fixture(params=[pytest.param(COMPILED, id="C", marks=BUILT), pytest.param(None, id="numpy")])
def lookups(request: pytest.FixtureRequest) -> ModuleType | None:
    """Each implementation of the lookups: the C module, and numpy's."""
    return request.param


def colour(gamma: float = 2.2, brightness: float = 0.8, compiled: ModuleType | None = None) -> ColorCorrection:
    return ColorCorrection(config.ColorConfig(gamma=gamma, brightness=brightness), compiled)


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
        COMPILED.lookup_total(src, np.zeros(256, np.uint8), out[:9])
    assert (out == 0).all()


def test_the_pair_table_maps_both_bytes_of_every_pair_through_the_table() -> None:
    table = gamma_table(2.2, 0.8)
    pairs = np.arange(65536, dtype=np.uint16)
    np.testing.assert_array_equal(pair_table(table).view(np.uint8), table[pairs.view(np.uint8)])


@pytest.mark.parametrize("shape", [(103680, 3), (7, 3), (8, 3), (1, 3), (0, 3), (5,), (4, 5, 3)])
def test_correction_is_the_table_on_every_byte(shape: tuple[int, ...], lookups: ModuleType | None) -> None:
    cc = colour(compiled=lookups)
    leds = RNG.integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(cc(leds, np.empty_like(leds)), cc.table[leds])


def test_in_place_non_contiguous_and_repeated_calls(lookups: ModuleType | None) -> None:
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


def test_the_identity_table_is_a_copy(lookups: ModuleType | None) -> None:
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
def test_correction_with_a_power_limit_is_exactly_the_limit_after_the_correction(
    gamma: float, brightness: float, count: int, lookups: ModuleType | None
) -> None:
    cc = colour(gamma, brightness, lookups)
    settings = config.ColorConfig(gamma=gamma, brightness=brightness, max_milliamps=1, led_milliamps=55.0)
    fused, separate = PowerLimit(settings), PowerLimit(settings)
    base = RNG.integers(0, 256, (count, 3), dtype=np.uint8)
    full = float(cc.table[base].astype(np.int64).sum()) * fused.milliamps_per_unit
    # over, over again (the measure-first path), under, under again, over after under, far over, black
    for level in (0.5, 0.7, 1.5, 2.0, 0.3, 0.01, None):
        limit = 1 if level is None else max(1, int(full * level))
        fused.max_milliamps = separate.max_milliamps = limit
        leds = np.zeros_like(base) if level is None else base
        out = np.empty_like(leds)
        got = cc(leds, out, fused)
        assert got is out
        want = separate(cc(leds, np.empty_like(leds)))
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got, reference(cc, fused, leds))
        assert fused.last_scale == separate.last_scale
        assert fused.estimate_milliamps(got) <= limit
        base = np.roll(base, 1)
    assert fused.frames_limited == separate.frames_limited == 4


def test_correction_with_a_power_limit_in_place(lookups: ModuleType | None) -> None:
    cc = colour(compiled=lookups)
    settings = config.ColorConfig(gamma=2.2, brightness=0.8, max_milliamps=1, led_milliamps=55.0)
    fused, separate = PowerLimit(settings), PowerLimit(settings)
    base = RNG.integers(0, 256, (1001, 3), dtype=np.uint8)
    full = float(cc.table[base].astype(np.int64).sum()) * fused.milliamps_per_unit
    for level in (2.0, 0.5, 0.4, 2.0):  # under, over after under, over after over, under after over
        fused.max_milliamps = separate.max_milliamps = int(full * level)
        leds = base.copy()
        assert cc(leds, leds, fused) is leds
        np.testing.assert_array_equal(leds, separate(cc(base, np.empty_like(base))))
    assert fused.frames_limited == separate.frames_limited == 2


def test_a_disabled_limit_is_plain_correction(lookups: ModuleType | None) -> None:
    cc = colour(compiled=lookups)
    leds = RNG.integers(0, 256, (300, 3), dtype=np.uint8)
    power = PowerLimit(config.ColorConfig())
    assert not power.enabled
    np.testing.assert_array_equal(cc(leds, np.empty_like(leds), power), cc.table[leds])


def test_no_frame_sized_allocation_per_frame(lookups: ModuleType | None) -> None:
    cc = colour(compiled=lookups)
    power = PowerLimit(config.ColorConfig(max_milliamps=10_000))
    leds = RNG.integers(0, 256, (103680, 3), dtype=np.uint8)
    out = np.empty_like(leds)
    cc(leds, out)
    cc(leds, out, power)
    cc(leds, out, power)  # both paths of the limit have run: over after under, over after over
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for _ in range(3):
            cc(leds, out)
            cc(leds, out, power)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert power.frames_limited == 5
    # no frame-sized array (311 kB; the table lookup used to widen its indices into a new 1.2 MB array);
    # numpy's iterator takes one transient 32 kB buffer to build the scaled pair table of a limited frame
    assert peak < 48 * 1024


@pytest.mark.parametrize("count", [1, 7, 1001, 103680])
def test_measure_then_lookup_widening_once_is_exactly_the_chunked_path(count: int) -> None:
    """The measure-first path (widened whole, one index for both lookups) against the chunked total and lookup,
    also on an odd byte count, strided input, a strided destination and in place."""
    cc = colour()
    settings = config.ColorConfig(gamma=2.2, brightness=0.8, max_milliamps=1, led_milliamps=55.0)
    power = PowerLimit(settings)
    wide = RNG.integers(0, 256, (count, 6), dtype=np.uint8)
    for leds in (wide[:, :3].copy(), wide[:, ::2], wide[:, 3:].copy()):
        units = PairLookup().total(leds, _sums16(cc), cc.table)
        assert units == int(cc.table[leds].astype(np.int64).sum())
        for level in (0.5, 2.0, 0.3):  # over, under, over
            power.max_milliamps = max(1, int(units * power.milliamps_per_unit * level))
            cc._limited = True  # force the measure-first path
            out = np.empty((count, 6), np.uint8)[:, 1:4] if level == 0.3 else np.empty_like(leds)
            got = cc(leds, out, power)
            assert got is out
            np.testing.assert_array_equal(got, reference(cc, power, leds))
            inplace = leds.copy()
            cc._limited = True
            assert cc(inplace, inplace, power) is inplace
            np.testing.assert_array_equal(inplace, got)


def _sums16(cc: ColorCorrection) -> np.ndarray:
    u = np.arange(65536)
    return (cc.table[u >> 8].astype(np.uint32) + cc.table[u & 0xFF]).astype(np.uint16)
