"""ws281x strips through the real rpi_ws281x package.

This machine is not a Raspberry Pi, so the strip itself cannot start. The package is imported for real
(its constants, its `PixelStrip`); only the `PixelStrip` object is replaced, at that one hardware
boundary, by `FakeStrip`, which records what our output hands over.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import ClassVar

import _rpi_ws281x as ws
import numpy as np
import pytest

from skyscreen_hw import config, layouts
from skyscreen_hw.errors import OutputError
from skyscreen_hw.outputs import open_output, plan, ws281x
from skyscreen_hw.outputs.base import OutputStats
from skyscreen_hw.outputs.worker import BACKOFF


class FakeStrip:
    """Stands in for rpi_ws281x.PixelStrip: same constructor, records pixels and shows."""

    instances: ClassVar[list[FakeStrip]] = []
    fail_begin: ClassVar[str | None] = None

    def __init__(self, num, pin, freq_hz=800000, dma=10, invert=False, brightness=255, channel=0, strip_type=None):
        self.args = dict(num=num, pin=pin, freq_hz=freq_hz, dma=dma, invert=invert, channel=channel)
        self.strip_type = strip_type
        self.pixels = [0] * num
        self.shown: list[list[int]] = []
        self.cleaned = False
        FakeStrip.instances.append(self)

    def begin(self) -> None:
        if FakeStrip.fail_begin:
            raise RuntimeError(FakeStrip.fail_begin)

    def setPixelColor(self, n: int, color: int) -> None:  # rpi_ws281x's name
        self.pixels[n] = color

    def show(self) -> None:
        self.shown.append(list(self.pixels))

    def _cleanup(self) -> None:
        self.cleaned = True


@pytest.fixture(autouse=True)
def _reset() -> None:
    FakeStrip.instances.clear()
    FakeStrip.fail_begin = None


@pytest.fixture
def log() -> logging.Logger:
    return logging.getLogger("skyscreen.test.ws281x")


def output_cfg(**kw: object) -> config.OutputConfig:
    return config.parse({"outputs": [{"type": "ws281x", **kw}]}).outputs[0]


def wait_shown(strip: FakeStrip, n: int) -> None:
    deadline = time.monotonic() + 3
    while len(strip.shown) < n and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(strip.shown) >= n


@pytest.mark.parametrize(
    ("order", "constant", "expected"),
    [
        ("", "WS2811_STRIP_GRB", [0x102030, 0xFFFFFF, 0x000000]),  # default: GRB strip, values in RGB
        ("RGB", "WS2811_STRIP_RGB", [0x102030, 0xFFFFFF, 0x000000]),
        ("BRG", "WS2811_STRIP_BRG", [0x102030, 0xFFFFFF, 0x000000]),
        ("GRBW", "SK6812_STRIP_GRBW", [0x10001020, 0xFF000000, 0x000000]),  # white takes the grey part
        ("RGBW", "SK6812_STRIP_RGBW", [0x10001020, 0xFF000000, 0x000000]),
    ],
)
def test_values_handed_to_the_strip_for_each_strip_type(order: str, constant: str, expected: list[int], log) -> None:
    out = ws281x.create(output_cfg(order=order, gpio=18), None, 0, 3, log, strip_factory=FakeStrip)
    (strip,) = FakeStrip.instances
    assert strip.strip_type == getattr(ws, constant)  # rpi_ws281x reorders the bytes for the strip type
    out.show(np.array([[0x10, 0x20, 0x30], [255, 255, 255], [0, 0, 0]], np.uint8))
    wait_shown(strip, 1)
    out.show(np.zeros((3, 3), np.uint8))
    out.close()
    assert strip.shown[0] == expected
    assert strip.shown[-1] == [0, 0, 0]
    assert strip.cleaned
    assert out.stats == OutputStats(frames_sent=2) and out.health == "ok" and out.kind == "ws281x"


@pytest.mark.parametrize(("gpio", "channel"), [(18, 0), (12, 0), (13, 1), (19, 1), (21, 0), (10, 0)])
def test_pins_channels_frequency_dma_invert(gpio: int, channel: int, log) -> None:
    cfg = output_cfg(gpio=gpio, frequency=400000, dma=5, invert=True)
    ws281x.create(cfg, None, 0, 7, log, strip_factory=FakeStrip).close()
    assert FakeStrip.instances[0].args == dict(num=7, pin=gpio, freq_hz=400000, dma=5, invert=True, channel=channel)


def test_a_w_that_is_not_last_is_a_clear_error(log) -> None:
    with pytest.raises(OutputError, match="RGBW strips take W last"):
        ws281x.create(output_cfg(order="WGRB"), None, 0, 3, log, strip_factory=FakeStrip)


def test_on_a_pi_a_failed_start_is_one_clear_error(tmp_path: Path, monkeypatch, log) -> None:
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\0")
    monkeypatch.setattr(ws281x, "MODEL_PATHS", [model])
    monkeypatch.setattr(ws281x.os, "geteuid", lambda: 1000)
    FakeStrip.fail_begin = "ws2811_init failed with code -5 (mmap() failed)"
    with pytest.raises(OutputError) as caught:
        ws281x.create(output_cfg(gpio=18), None, 0, 3, log, strip_factory=FakeStrip)
    message = str(caught.value)
    assert message.startswith("ws281x GPIO 18: cannot start: PWM on GPIO 18 needs root (/dev/mem)")
    assert "deploy/ws281x-pwm.conf" in message and "\n" not in message
    monkeypatch.setattr(ws281x, "Path", _without_spidev)
    with pytest.raises(OutputError, match="SPI is disabled: add dtparam=spi=on"):
        ws281x.create(output_cfg(gpio=10), None, 0, 3, log, strip_factory=FakeStrip)


def _without_spidev(*parts: object) -> Path:
    path = Path(*parts)  # type: ignore[arg-type]
    return Path("/nonexistent/spidev0.0") if str(path) == "/dev/spidev0.0" else path


def test_off_a_pi_the_real_strip_falls_back_to_the_simulator_with_one_warning(caplog) -> None:
    """The real PixelStrip: begin() fails here ("Hardware revision is not supported")."""
    cfg = config.parse(
        {"frame": {"width": 6, "height": 2}, "layout": {"type": "matrix"}, "outputs": [{"type": "ws281x", "gpio": 18}]}
    )
    layout = layouts.build(cfg)
    log = logging.getLogger("skyscreen.test.fallback")
    (planned,) = plan(cfg, layout)
    with caplog.at_level(logging.WARNING, logger=log.name):
        out = open_output(planned, layout, log)
    try:
        assert (out.name, out.kind) == ("simulator (12 LEDs)", "simulator")
    finally:
        out.close()
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "ws281x GPIO 18: cannot start off a Raspberry Pi" in warning and "in the simulator instead" in warning


def test_a_strip_whose_begin_failed_does_not_crash_the_interpreter_at_exit(display_name: str, tmp_path: Path) -> None:
    """rpi_ws281x 5.0.0's exit handler segfaults after a failed begin(); the daemon exits cleanly."""
    text = textwrap.dedent(
        f"""
        [frame]
        name = "{display_name}"
        width = 8
        height = 2
        [layout]
        type = "matrix"
        [websocket]
        enabled = false
        [[outputs]]
        type = "ws281x"
        gpio = 10
        """
    )
    cfg = tmp_path / "ws.toml"
    cfg.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "skyscreen_hw", "--config", str(cfg), "--duration", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr  # -11 would be the segfault
    assert "memory leak" not in result.stderr
    assert result.stderr.count("cannot start off a Raspberry Pi") == 1


def test_a_wedged_strip_reports_stalled_until_it_returns(log) -> None:
    """A render that never returns (DMA wedged) makes the output `stalled`, which stops the daemon's watchdog."""
    release = threading.Event()

    class WedgedStrip(FakeStrip):
        def show(self) -> None:
            release.wait(10)
            super().show()

    out = ws281x.create(output_cfg(), None, 0, 3, log, strip_factory=WedgedStrip)
    out.stall_seconds = 0.2
    out.show(np.zeros((3, 3), np.uint8))
    time.sleep(0.5)
    assert out.stalled
    release.set()
    wait_shown(FakeStrip.instances[0], 1)
    time.sleep(0.05)
    assert not out.stalled
    out.close()


def most_attempts(seconds: float) -> int:
    """The most attempts a worker that backs off after each failure can make in `seconds`."""
    attempts, slept = 1, 0.0
    while slept + BACKOFF[min(attempts, len(BACKOFF)) - 1] <= seconds:
        slept += BACKOFF[min(attempts, len(BACKOFF)) - 1]
        attempts += 1
    return attempts


def test_a_strip_whose_render_fails_backs_off_stalls_and_recovers(log, caplog) -> None:
    """rpi_ws281x raises RuntimeError when ws2811_render fails: each failure counts, the first is logged,
    the worker backs off instead of retrying at once, and after the stall time the output is stalled."""
    failing = threading.Event()
    failing.set()
    attempts: list[float] = []

    class FailingStrip(FakeStrip):
        def show(self) -> None:
            attempts.append(time.monotonic())
            if failing.is_set():
                raise RuntimeError("ws2811_render failed with code -14 (Failed to execute SPI transfer)")
            super().show()

    with caplog.at_level(logging.INFO, logger=log.name):
        out = ws281x.create(output_cfg(), None, 0, 3, log, strip_factory=FailingStrip, stall_seconds=0.5)
        start = time.monotonic()
        while not out.stalled and time.monotonic() - start < 10:
            out.show(np.full((3, 3), 7, np.uint8))
            time.sleep(1 / 60)
        elapsed = time.monotonic() - start
        tried = len(attempts)
        assert out.stalled and elapsed > 0.5
        assert out.health.startswith("stalled: no frame went out") and "SPI transfer" in out.health
        assert tried <= most_attempts(elapsed)  # at 60 fps without a backoff it would be ~60 a second
        failing.clear()  # the strip renders again
        deadline = time.monotonic() + 5
        while out.stalled and time.monotonic() < deadline:
            out.show(np.full((3, 3), 7, np.uint8))
            time.sleep(1 / 60)
        assert not out.stalled and out.health == "ok"
        out.close()
    stats = out.stats
    assert stats.frames_failed >= tried and stats.frames_sent >= 1
    assert FakeStrip.instances[0].shown[-1] == [0x070707] * 3
    messages = [r.getMessage() for r in caplog.records]
    assert sum("SPI transfer" in m and "stalled" not in m for m in messages) == 1
    assert sum(": stalled: " in m for m in messages) == 1
    assert sum("no longer stalled" in m for m in messages) == 1
