"""Benchmarks: the C reference does the daemon's work exactly; quick smoke runs report bars and leave /dev/shm clean."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from skyscreen_hw import config, layouts
from skyscreen_hw.benchmarks import RESULTS, frame, support, websocket
from skyscreen_hw.color import gamma_table
from skyscreen_hw.sources.shared_frame import FrameWriter

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")


@pytest.fixture
def made_displays(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every display name the benchmarks make; the test checks nothing of theirs is left in /dev/shm."""
    names: list[str] = []
    make = support.display_name

    def recorded() -> str:
        names.append(make())
        return names[-1]

    for module in (support, frame, websocket):
        monkeypatch.setattr(module, "display_name", recorded)
    monkeypatch.delenv("SKYSCREEN_BENCH_TREES", raising=False)
    return names


@pytest.mark.parametrize("consumer", ["C reference", "Python floor"])
def test_the_references_map_the_frame_onto_the_serpentine_dome_through_the_gamma_table(
    consumer: str, display_name: str, tmp_path: Path
) -> None:
    if consumer == "C reference":
        if shutil.which("gcc") is None:
            pytest.skip("no gcc")
        binary, why = frame._compile(str(tmp_path))
        assert binary, why
        command = [binary]
    else:
        command = [sys.executable, str(frame.FLOOR_SOURCE)]
    picture = np.random.default_rng(9).integers(0, 256, (36, 28, 3), dtype=np.uint8)
    out = tmp_path / "leds.rgb"
    with FrameWriter(display_name, 36, 28, timeout=5.0) as writer:
        proc = subprocess.Popen([*command, display_name, "36", "28", "2.2", "0.8", "60", str(out), "1"])
        try:
            writer.frame[:] = picture
            assert writer.flush()
            assert proc.wait(10) == 0
        finally:
            support.stop_process(proc)
    layout = layouts.build(config.parse({"frame": {"height": 36, "width": 28}, "layout": {"serpentine": True}}))
    want = gamma_table(2.2, 0.8)[picture.reshape(-1, 3)[layout.frame_index]]
    np.testing.assert_array_equal(np.fromfile(out, np.uint8).reshape(-1, 3), want)


@needs_gcc
def test_the_frame_benchmark_reports_every_bar_and_leaves_nothing_in_shm(
    made_displays: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    RESULTS.clear()
    frame.run(argparse.Namespace(rounds=3, window=0.3, repeats=1))
    text = capsys.readouterr().out
    labels = [label for label, _ in RESULTS]
    for bar in ("daemon / C reference", "canvas overlay adds", "active power limit adds"):
        assert any(label.startswith(bar) for label in labels), text
    assert all(status in ("PASS", "FAIL") for _, status in RESULTS), text
    assert len(made_displays) == 7  # the steps' own display, the C reference's, the floor's and four daemons'
    assert not [p for name in made_displays for p in support.display_files(name)]


def test_the_websocket_benchmark_reports_its_bar_and_leaves_nothing_in_shm(
    made_displays: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    RESULTS.clear()
    websocket.run(argparse.Namespace(rounds=1, messages=20))
    text = capsys.readouterr().out
    assert [label for label, _ in RESULTS] == ["websocket words/s, daemon / bare server"], text
    assert len(made_displays) == 1
    assert not [p for name in made_displays for p in support.display_files(name)]


def test_shm_is_cleaned_when_a_benchmark_fails() -> None:
    with tempfile.TemporaryDirectory() as tmp, pytest.raises(RuntimeError), support.displays() as names:
        names.append(support.display_name())
        FrameWriter(names[0], 4, 4).close()
        assert support.display_files(names[0])
        daemon = support.DaemonProcess(tmp, "this is not toml")
        try:
            daemon.wait_running(timeout=20)
        finally:
            daemon.stop()
    assert not support.display_files(names[0])
