"""The shared frame standard through real shared memory, real semaphores and real writer processes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import posix_ipc
import pytest

from skyscreen_hw.errors import AlreadyRunningError
from skyscreen_hw.sources.shared_frame import FrameReader, FrameWriter, frame_path, semaphore_names

LOG = logging.getLogger("skyscreen.test")


def _writer_script(name: str, value: int, frames: int, h: int = 4, w: int = 5) -> str:
    return textwrap.dedent(
        f"""
        from skyscreen_hw.sources.shared_frame import FrameWriter
        with FrameWriter({name!r}, {h}, {w}) as w:
            taken = 0
            for i in range({frames}):
                w.frame[:] = {value}
                taken += w.flush(2.0)
            print(taken)
        """
    )


def _spawn_writer(name: str, value: int, frames: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _writer_script(name, value, frames)], stdout=subprocess.PIPE, text=True
    )


def test_reader_creates_exact_file_and_semaphores(display_name: str) -> None:
    reader = FrameReader(display_name, 4, 5, LOG)
    try:
        assert frame_path(display_name).stat().st_size == 4 * 5 * 3
        for sem in semaphore_names(display_name):
            assert posix_ipc.Semaphore(sem).value == 0
        assert reader.poll(0.01) is None  # nobody flushed
    finally:
        reader.close()


def test_python_writer_process_frames_reach_the_reader(display_name: str) -> None:
    reader = FrameReader(display_name, 4, 5, LOG)
    try:
        writer = _spawn_writer(display_name, 77, 5)
        seen = []
        deadline = time.monotonic() + 10
        while len(seen) < 5 and time.monotonic() < deadline:
            frame = reader.poll(0.1)
            if frame is not None:
                seen.append(frame.copy())
        out, _ = writer.communicate(timeout=10)
        assert out.strip() == "5"  # every flush was taken
        assert len(seen) == 5 and all((f == 77).all() for f in seen)
    finally:
        reader.close()


def test_flush_without_daemon_times_out_and_withdraws_the_frame(display_name: str) -> None:
    with FrameWriter(display_name, 4, 5, timeout=0.05) as w:
        start = time.monotonic()
        assert w.flush() is False
        assert time.monotonic() - start < 1.0
        assert w.ready.value == 0  # withdrawn: a daemon starting later won't take a stale frame


def test_writer_honours_writer_file(display_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRITER_FILE", str(frame_path(display_name)))
    reader = FrameReader(display_name, 4, 5, LOG)
    try:
        with FrameWriter(height=4, width=5, timeout=2.0) as w:
            assert w.name == display_name
            w.frame[:] = 9
            w.ready.release()
            frame = reader.poll(1.0)
            assert frame is not None and (frame == 9).all()
    finally:
        reader.close()


def test_stale_counts_are_drained_at_start(display_name: str, caplog: pytest.LogCaptureFixture) -> None:
    ready_name, done_name = semaphore_names(display_name)
    ready = posix_ipc.Semaphore(ready_name, posix_ipc.O_CREAT, initial_value=5)
    done = posix_ipc.Semaphore(done_name, posix_ipc.O_CREAT, initial_value=3)
    with caplog.at_level(logging.INFO, "skyscreen.test"):
        reader = FrameReader(display_name, 4, 5, LOG)
    try:
        assert ready.value == 0 and done.value == 0
        assert reader.poll(0.05) is None  # no phantom frame from the stale count
        assert "drained 5 stale count(s)" in caplog.text
    finally:
        reader.close()


def test_frame_file_of_another_geometry_is_resized_with_one_line(
    display_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    frame_path(display_name).write_bytes(b"\x01" * 100)
    with caplog.at_level(logging.INFO, "skyscreen.test"):
        reader = FrameReader(display_name, 4, 5, LOG)
    reader.close()
    assert frame_path(display_name).stat().st_size == 60
    assert [r.message for r in caplog.records].count(
        f"{frame_path(display_name)} was 100 bytes, expected 60 (4x5 RGB): resized"
    ) == 1


def test_second_reader_on_the_same_name_is_refused(display_name: str) -> None:
    first = FrameReader(display_name, 4, 5, LOG)
    try:
        with pytest.raises(AlreadyRunningError, match="already served by another skyscreen-hw"):
            FrameReader(display_name, 4, 5, LOG)
        # the first still works
        with FrameWriter(display_name, 4, 5) as w:
            w.frame[:] = 3
            w.ready.release()
            frame = first.poll(1.0)
            assert frame is not None and (frame == 3).all()
    finally:
        first.close()


def test_truncated_or_recreated_file_skips_the_frame_without_sigbus(display_name: str) -> None:
    reader = FrameReader(display_name, 4, 5, LOG)
    ready_name, _ = semaphore_names(display_name)
    ready = posix_ipc.Semaphore(ready_name)
    try:
        os.truncate(frame_path(display_name), 10)  # a writer truncated it
        ready.release()
        assert reader.poll(1.0) is None
        assert reader.frames_skipped == 1
        assert frame_path(display_name).stat().st_size == 60  # restored
        # a writer re-creates the file (a new inode, as numpy.memmap(mode="w+") after unlink does)
        frame_path(display_name).unlink()
        np.memmap(frame_path(display_name), np.uint8, "w+", shape=(4, 5, 3))[:] = 42
        ready.release()
        frame = reader.poll(1.0)
        assert frame is not None and (frame == 42).all()
    finally:
        reader.close()


def test_writer_killed_mid_flush_leaves_nothing_stale(display_name: str) -> None:
    """A writer killed while waiting for `done` leaves a `done` count; the next writer drains it."""
    reader = FrameReader(display_name, 4, 5, LOG)
    try:
        script = textwrap.dedent(
            f"""
            import os, signal
            from skyscreen_hw.sources.shared_frame import FrameWriter
            w = FrameWriter({display_name!r}, 4, 5)
            w.frame[:] = 1
            w.ready.release()
            os.kill(os.getpid(), signal.SIGKILL)  # killed between posting ready and taking done
            """
        )
        subprocess.run([sys.executable, "-c", script], timeout=30)
        frame = reader.poll(1.0)  # the dead writer's frame is taken; `done` is left over
        assert frame is not None and (frame == 1).all()
        writer = _spawn_writer(display_name, 2, 3)
        seen = []
        deadline = time.monotonic() + 10
        while len(seen) < 3 and time.monotonic() < deadline:
            frame = reader.poll(0.1)
            if frame is not None:
                seen.append(int(frame[0, 0, 0]))
        assert writer.communicate(timeout=10)[0].strip() == "3"
        assert seen == [2, 2, 2]
    finally:
        reader.close()


def test_c_writer_example_compiles_and_writes(display_name: str, tmp_path: Path) -> None:
    binary = tmp_path / "writer"
    source = Path(__file__).parent.parent / "examples" / "writer.c"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", str(binary), str(source), "-pthread"], check=True)
    reader = FrameReader(display_name, 6, 7, LOG)
    try:
        proc = subprocess.Popen([str(binary), display_name, "3", "6", "7"], stdout=subprocess.PIPE, text=True)
        frames = []
        deadline = time.monotonic() + 10
        while len(frames) < 3 and time.monotonic() < deadline:
            f = reader.poll(0.1)
            if f is not None:
                frames.append(f.copy())
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0 and out.strip() == "3 frames taken"
        rows, cols = np.mgrid[0:6, 0:7]
        for k, f in enumerate(frames):
            np.testing.assert_array_equal(f[..., 0], rows)
            np.testing.assert_array_equal(f[..., 1], cols)
            assert (f[..., 2] == k).all()
    finally:
        reader.close()


def test_a_writer_stopped_by_sigterm_while_waiting_for_the_daemon_exits_cleanly(display_name: str) -> None:
    """No daemon takes the frame: flush() waits; SIGTERM then ends the demo writer with exit 0, no traceback."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "skyscreen_hw", "demo", "rings", "--name", display_name],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)  # inside flush(), waiting on done
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Traceback" not in err, err
