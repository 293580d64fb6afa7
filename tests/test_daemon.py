"""The frame path end to end: real daemon processes, real writers, the recording and the simulator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from skyscreen_hw import config, layouts
from skyscreen_hw.color import gamma_table
from skyscreen_hw.outputs.record import read_recording
from skyscreen_hw.sources.shared_frame import FrameWriter, frame_path

H, W = 12, 10  # a small dome: 12 vanes x 10 LEDs, serpentine


def dome_config(name: str, *, outputs: str = "outputs = []", extra: str = "") -> str:
    return (
        textwrap.dedent(
            f"""
        {outputs}
        [frame]
        name = "{name}"
        height = {H}
        width = {W}
        [layout]
        serpentine = true
        [color]
        gamma = 2.2
        brightness = 0.8
        [websocket]
        enabled = false
        """
        )
        + extra
    )


def expected_leds(frame: np.ndarray, name: str) -> np.ndarray:
    cfg = config.parse({"frame": {"name": name, "height": H, "width": W}, "layout": {"serpentine": True}})
    layout = layouts.build(cfg)
    return gamma_table(2.2, 0.8)[frame.reshape(-1, 3)[layout.frame_index]]


def wait_for(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def recorded(path: Path) -> np.ndarray:
    return read_recording(path, H * W) if path.exists() else np.zeros((0, H * W, 3), np.uint8)


def random_frame(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def test_python_writer_frames_are_recorded_through_serpentine_mapping_and_gamma(
    display_name: str, daemon_factory, tmp_path: Path
) -> None:
    rec = tmp_path / "out.rgb"
    d = daemon_factory(dome_config(display_name), "--record", str(rec))
    d.wait_for_log("running:")
    frames = [random_frame(i) for i in range(5)]
    with FrameWriter(display_name, H, W, timeout=2.0) as w:
        for f in frames:
            w.frame[:] = f
            assert w.flush()
    assert d.stop() == 0
    got = recorded(rec)
    want = [expected_leds(f, display_name) for f in frames]
    # every written frame appears, whole and in order (keepalive repeats are allowed between them)
    found = [i for i in range(len(got)) for k in range(5) if np.array_equal(got[i], want[k])]
    order = [next(k for k in range(5) if np.array_equal(got[i], want[k])) for i in found]
    assert sorted(set(order)) == [0, 1, 2, 3, 4] and order == sorted(order)
    assert not got[-1].any()  # the last frame is all black
    assert "stopped" in d.log


def test_c_writer_shows_through_the_daemon(display_name: str, daemon_factory, tmp_path: Path) -> None:
    binary = tmp_path / "writer"
    source = Path(__file__).parent.parent / "examples" / "writer.c"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(source), "-pthread"], check=True)
    rec = tmp_path / "out.rgb"
    d = daemon_factory(dome_config(display_name), "--record", str(rec))
    d.wait_for_log("running:")
    result = subprocess.run([str(binary), display_name, "4", str(H), str(W)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert d.stop() == 0
    got = recorded(rec)
    rows, cols = np.mgrid[0:H, 0:W]
    for k in range(4):
        frame = np.stack([rows, cols, np.full_like(rows, k)], axis=-1).astype(np.uint8)
        assert any(np.array_equal(g, expected_leds(frame, display_name)) for g in got), f"frame {k} missing"


def test_fps_caps_the_frames_taken(display_name: str, daemon_factory, tmp_path: Path) -> None:
    rec = tmp_path / "out.rgb"
    d = daemon_factory(dome_config(display_name, extra="[display]\nfps = 20\n"), "--record", str(rec))
    d.wait_for_log("running:")
    with FrameWriter(display_name, H, W, timeout=2.0) as w:
        start, taken = time.monotonic(), 0
        while time.monotonic() - start < 1.5:
            w.frame[:] = taken % 200 + 1
            taken += w.flush()
        elapsed = time.monotonic() - start
    # a writer flushing as fast as it can is paced by the display: about 20 a second, never much more
    assert taken <= 20 * elapsed + 2
    assert taken >= 10 * elapsed
    d.stop()


def test_writer_killed_mid_flush_next_writer_shows_within_a_second(
    display_name: str, daemon_factory, tmp_path: Path
) -> None:
    rec = tmp_path / "out.rgb"
    d = daemon_factory(dome_config(display_name), "--record", str(rec))
    d.wait_for_log("running:")
    script = textwrap.dedent(
        f"""
        from skyscreen_hw.sources.shared_frame import FrameWriter
        with FrameWriter({display_name!r}, {H}, {W}) as w:
            while True:
                w.frame[:] = 100
                w.flush()
        """
    )
    first = subprocess.Popen([sys.executable, "-c", script])
    wait_for(lambda: len(recorded(rec)) > 10, what="the first writer's frames")
    first.send_signal(signal.SIGKILL)
    first.wait()
    with FrameWriter(display_name, H, W, timeout=2.0) as w:
        w.frame[:] = 200
        start = time.monotonic()
        while not w.flush():
            pass
        shown_after = time.monotonic() - start
    assert shown_after < 1.0
    want = expected_leds(np.full((H, W, 3), 200, np.uint8), display_name)
    wait_for(lambda: any(np.array_equal(g, want) for g in recorded(rec)), 2.0, "the second writer's frame")
    assert d.proc.poll() is None
    d.stop()


def test_truncating_and_recreating_writers_do_not_kill_the_daemon(
    display_name: str, daemon_factory, tmp_path: Path
) -> None:
    rec = tmp_path / "out.rgb"
    d = daemon_factory(dome_config(display_name), "--record", str(rec))
    d.wait_for_log("running:")
    vandal = textwrap.dedent(
        f"""
        import numpy as np, os, time
        path = {str(frame_path(display_name))!r}
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            np.memmap(path, np.uint8, "w+", shape=(7,))        # truncates in place to another size
            os.truncate(path, 0)
            os.unlink(path)
            np.memmap(path, np.uint8, "w+", shape=({H}, {W}, 3))  # re-created: a new file
        """
    )
    poster = textwrap.dedent(
        f"""
        import posix_ipc, time
        ready = posix_ipc.Semaphore("/{display_name}.ready")
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            ready.release()
            time.sleep(0.002)
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", s]) for s in (vandal, poster)]
    for p in procs:
        p.wait(30)
    assert d.proc.poll() is None, d.log  # no SIGBUS, no crash
    with FrameWriter(display_name, H, W, timeout=2.0) as w:
        w.frame[:] = 33
        wait_for(w.flush, 3.0, "a frame taken after the vandalism")
    want = expected_leds(np.full((H, W, 3), 33, np.uint8), display_name)
    wait_for(lambda: any(np.array_equal(g, want) for g in recorded(rec)), 2.0, "the frame after the vandalism")
    # every recorded frame is whole: black, or uniform as written (never a mix)
    for g in recorded(rec):
        assert len(np.unique(g)) <= 2, "a torn frame was shown"
    assert d.log.count("frame skipped") <= 1  # logged rarely, not once per frame
    assert d.log.count("re-opened") <= 1
    assert d.stop() == 0


def test_daemon_restarted_under_a_running_writer(display_name: str, daemon_factory, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from skyscreen_hw.sources.shared_frame import FrameWriter
        with FrameWriter({display_name!r}, {H}, {W}, timeout=0.2) as w:
            while True:
                w.frame[:] = 50
                w.flush()
        """
    )
    writer = subprocess.Popen([sys.executable, "-c", script])
    try:
        for round_ in range(2):
            rec = tmp_path / f"out{round_}.rgb"
            d = daemon_factory(dome_config(display_name), "--record", str(rec))
            d.wait_for_log("running:")
            want = expected_leds(np.full((H, W, 3), 50, np.uint8), display_name)
            wait_for(lambda: any(np.array_equal(g, want) for g in recorded(rec)), 5.0, "writer frames")  # noqa: B023
            assert d.stop() == 0
    finally:
        writer.kill()
        writer.wait()


def test_second_daemon_on_the_same_display_fails_clearly(display_name: str, daemon_factory, tmp_path: Path) -> None:
    rec = tmp_path / "out.rgb"
    first = daemon_factory(dome_config(display_name), "--record", str(rec))
    first.wait_for_log("running:")
    second = daemon_factory(dome_config(display_name))
    assert second.proc.wait(30) == 1
    lines = second.log.strip().splitlines()
    assert lines[-1].startswith("skyscreen-hw: error: display") and "already served" in lines[-1]
    assert "Traceback" not in second.log
    assert first.proc.poll() is None
    with FrameWriter(display_name, H, W, timeout=2.0) as w:
        w.frame[:] = 7
        assert w.flush()  # the first daemon still takes frames
    assert first.stop() == 0


def test_duration_stops_with_a_black_frame(display_name: str, daemon_factory, tmp_path: Path) -> None:
    rec = tmp_path / "out.rgb"
    d = daemon_factory(dome_config(display_name), "--record", str(rec), "--duration", "1")
    d.wait_for_log("running:")
    with FrameWriter(display_name, H, W, timeout=2.0) as w:
        w.frame[:] = 255
        assert w.flush()
    assert d.proc.wait(10) == 0
    got = recorded(rec)
    assert got[:-1].any() and not got[-1].any()


def _png_pixels(path: Path) -> np.ndarray:
    """The PNG's pixels as (height, width, 3), read back with pygame."""
    import pygame

    return pygame.surfarray.array3d(pygame.image.load(str(path))).transpose(1, 0, 2)


def test_simulator_snapshot_shows_each_led_at_its_position(display_name: str, daemon_factory, tmp_path: Path) -> None:
    from skyscreen_hw.outputs.simulator import pixel_positions

    png = tmp_path / "snap.png"
    outputs = '[[outputs]]\ntype = "simulator"\nsize = 200\n'
    d = daemon_factory(dome_config(display_name, outputs=outputs), "--snapshot", str(png))
    d.wait_for_log("running:")
    frame = random_frame(42)
    with FrameWriter(display_name, H, W, timeout=2.0) as w:
        w.frame[:] = frame
        assert w.flush()
    time.sleep(0.3)
    assert d.stop() == 0
    picture = _png_pixels(png)
    cfg = config.parse({"frame": {"height": H, "width": W}, "layout": {"serpentine": True}})
    pixels = pixel_positions(layouts.build(cfg), 200)
    leds = expected_leds(frame, display_name)
    np.testing.assert_array_equal(picture[pixels[:, 1], pixels[:, 0]], leds)


def test_sigterm_while_no_writer_stops_promptly(display_name: str, daemon_factory) -> None:
    d = daemon_factory(dome_config(display_name))
    d.wait_for_log("running:")
    start = time.monotonic()
    os.kill(d.proc.pid, signal.SIGTERM)
    assert d.proc.wait(5) == 0
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize("pattern", ["noise", "rainbow", "rings", "spiral", "bar"])
def test_demo_patterns_move(display_name: str, daemon_factory, tmp_path: Path, pattern: str) -> None:
    rec = tmp_path / "out.rgb"
    d = daemon_factory(dome_config(display_name), "--record", str(rec))
    d.wait_for_log("running:")
    result = subprocess.run(
        [sys.executable, "-m", "skyscreen_hw", "--config", str(d.config_path), "demo", pattern, "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    d.stop()
    frames = recorded(rec)
    lit = [f for f in frames if f.any()]
    assert len(lit) >= 10, "the demo's frames were not shown"
    assert len({f.tobytes() for f in lit}) >= 5, "the pattern does not move"
