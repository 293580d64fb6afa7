"""The recording (--record) onto a disk that fills up: a real 64 KiB tmpfs, mounted for each test.

Mounting needs root (and a kernel that lets this process mount); the tests skip, saying so, where it
cannot. The file system is unmounted again whatever the test does.
"""

from __future__ import annotations

import logging
import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from skyscreen_hw.errors import OutputError
from skyscreen_hw.outputs.base import Output, OutputStats
from skyscreen_hw.outputs.record import Recorder, read_recording
from skyscreen_hw.sources.shared_frame import FrameWriter

DISK_SIZE = 64 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A directory on a fresh tmpfs of DISK_SIZE bytes."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a full disk is a tmpfs mounted for the test, which needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE // 1024}k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a {DISK_SIZE // 1024} KiB tmpfs for a full disk: {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path, leave: int) -> None:
    """Fill the disk with a file so that `leave` bytes stay free."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    (disk / "filler").write_bytes(bytes(free - leave))
    st = os.statvfs(disk)
    assert st.f_bavail * st.f_frsize == leave


def frames(n: int, count: int) -> list[np.ndarray]:
    return [np.random.default_rng(i).integers(0, 256, (n, 3), dtype=np.uint8) for i in range(count)]


@pytest.fixture
def log() -> logging.Logger:
    return logging.getLogger("skyscreen.test.record")


def test_a_recording_is_an_output_that_appends_whole_frames(tmp_path: Path, log) -> None:
    path = tmp_path / "rec.rgb"
    path.write_bytes(bytes(6))  # an earlier recording of two 1-LED frames: appended to
    rec = Recorder(path, log)
    assert isinstance(rec, Output) and rec.kind == "record" and rec.name == f"recording {path}"
    shown = frames(1, 3)
    for f in shown:
        rec.show(f)
    rec.close()
    assert rec.stats == OutputStats(frames_sent=3) and rec.health == "ok" and not rec.stalled
    np.testing.assert_array_equal(read_recording(path, 1), [np.zeros((1, 3), np.uint8)] * 2 + shown)


def test_a_recording_that_cannot_be_opened_is_a_clear_error(tmp_path: Path, log) -> None:
    with pytest.raises(OutputError, match=r"--record .*/missing/rec.rgb: cannot open for writing: No such file"):
        Recorder(tmp_path / "missing" / "rec.rgb", log)


@pytest.mark.parametrize(
    ("leave", "leds"),
    [
        (DISK_SIZE, 100),  # 300-byte frames on an empty disk: the frame that meets the end is a short write
        (4096, 2000),  # 6000-byte frames, one page free: the first frame is already short
        (0, 100),  # a full disk: the first write fails outright (ENOSPC)
    ],
)
def test_a_full_disk_stops_the_recording_at_the_last_whole_frame(small_disk: Path, leave: int, leds: int, log, caplog):
    if leave < DISK_SIZE:
        fill(small_disk, leave)
    path = small_disk / "rec.rgb"
    shown = frames(leds, 2 * DISK_SIZE // (leds * 3) + 5)  # twice what the disk holds
    with caplog.at_level(logging.DEBUG, logger=log.name):
        rec = Recorder(path, log)
        for f in shown:
            rec.show(f)  # never raises
        rec.close()
    size = path.stat().st_size
    assert size % (leds * 3) == 0  # no partial frame at the end
    kept = size // (leds * 3)
    assert kept == leave // (leds * 3)
    assert rec.stats == OutputStats(frames_sent=kept, frames_failed=len(shown) - kept)
    np.testing.assert_array_equal(read_recording(path, leds), np.array(shown[:kept]).reshape(-1, leds, 3))
    (record,) = caplog.records  # one line, however many frames failed after it
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert message.startswith(f"--record {path}: writing failed: ") and "recording stopped" in message
    assert "free space and restart" in message
    assert rec.health.startswith("recording stopped: ")
    assert ("No space left on device" if leave == 0 else "bytes could be written") in rec.health
    assert not rec.stalled  # a full disk is no reason for the watchdog to restart the daemon


def test_the_daemon_records_onto_a_full_disk_and_keeps_running(
    small_disk: Path, display_name: str, daemon_factory
) -> None:
    """The real daemon with --record onto a disk with one page free: the second frame does not fit."""
    h = w = 30  # 900 LEDs, 2700-byte frames: one fits in the 4096 bytes left
    fill(small_disk, 4096)
    path = small_disk / "out.rgb"
    config = textwrap.dedent(
        f"""
        outputs = []
        [frame]
        name = "{display_name}"
        height = {h}
        width = {w}
        [layout]
        type = "matrix"
        [websocket]
        enabled = false
        """
    )
    d = daemon_factory(config, "--record", str(path), "--duration", "2")
    d.wait_for_log("running:")
    with FrameWriter(display_name, h, w, timeout=1.0) as writer:
        for i in range(5):  # frames beyond the keepalive ones: writes that fail outright, not just short
            writer.frame[:] = i
            writer.flush()  # True while the daemon runs; its --duration may end it meanwhile
    assert d.proc.wait(30) == 0, d.log  # --duration ran out: one black frame to every output, exit 0
    log = d.log
    assert "Traceback" not in log
    assert log.count("writing failed") == 1, log
    assert f"--record {path}: writing failed: " in log and "recording stopped" in log
    assert path.stat().st_size == h * w * 3  # the first frame; the partial second one was cut off
