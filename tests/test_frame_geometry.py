"""Writers and displays of different geometries, and a demo writer with no daemon to take its frames.

Real writer processes (Python, the compiled C example, `python -m skyscreen_hw demo`), real /dev/shm files
and POSIX semaphores; the daemon's side is a FrameReader polled here.
"""

from __future__ import annotations

import logging
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from skyscreen_hw.sources.shared_frame import FrameReader, FrameWriter, frame_path

LOG = logging.getLogger("skyscreen.test")
WAIT = 15.0  # seconds the test waits for something that should happen within about one


def _python_writer(name: str, height: int, width: int, value: int) -> subprocess.CompletedProcess[str]:
    """A writer process drawing one frame of ``value``; prints the FrameError it meets (exit 3) or the flush."""
    script = f"""
        import sys
        from skyscreen_hw.errors import FrameError
        from skyscreen_hw.sources.shared_frame import FrameWriter
        try:
            with FrameWriter({name!r}, {height}, {width}, timeout=5.0) as w:
                w.frame[:] = {value}
                print(w.flush())
        except FrameError as exc:
            print(exc, file=sys.stderr)
            sys.exit(3)
        """
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=WAIT * 2
    )


def _assert_reader_takes_a_4x5_frame(reader: FrameReader, name: str) -> None:
    """Nothing was lost: a writer of the display's geometry still gets its frame through."""
    with FrameWriter(name, 4, 5) as w:
        w.frame[:] = 9
        w.ready.release()
        frame = reader.poll(5.0)
        assert frame is not None and (frame == 9).all()


def test_python_writer_of_another_geometry_is_refused_naming_both_sizes(display_name: str) -> None:
    reader = FrameReader(display_name, 4, 5, LOG)
    try:
        result = _python_writer(display_name, 6, 7, 1)
        assert result.returncode == 3, result.stderr
        assert (
            f"{frame_path(display_name)} is 60 bytes, but this writer expects 6x7 RGB = 126 bytes" in result.stderr
        ), result.stderr
        assert frame_path(display_name).stat().st_size == 60  # not grown: the display's file is intact
        _assert_reader_takes_a_4x5_frame(reader, display_name)
    finally:
        reader.close()


def test_c_writer_of_another_geometry_exits_3_naming_both_sizes(display_name: str, c_writer: Path) -> None:
    reader = FrameReader(display_name, 4, 5, LOG)
    try:
        result = subprocess.run(
            [str(c_writer), display_name, "1", "6", "7"], capture_output=True, text=True, timeout=WAIT * 2
        )
        assert result.returncode == 3, result.stderr
        assert (
            f"{frame_path(display_name)} is 60 bytes, but this writer expects 6x7 RGB = 126 bytes" in result.stderr
        ), result.stderr
        assert frame_path(display_name).stat().st_size == 60
        _assert_reader_takes_a_4x5_frame(reader, display_name)
    finally:
        reader.close()


def test_a_writer_before_the_daemon_creates_the_file_at_its_size(
    display_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No daemon yet: the writer makes the file at its own size, mode 0660 (the daemon later resizes it to
    the display's, with one warning, and writers of the display's geometry then work)."""
    with FrameWriter(display_name, 6, 7, timeout=0.05) as w:
        assert w.flush() is False  # nobody takes it
    st = frame_path(display_name).stat()
    assert (st.st_size, stat.S_IMODE(st.st_mode)) == (126, 0o660)
    with caplog.at_level(logging.INFO, "skyscreen.test"):
        reader = FrameReader(display_name, 4, 5, LOG)
    try:
        assert [r.message for r in caplog.records].count(
            f"{frame_path(display_name)} was 126 bytes, expected 60 (4x5 RGB): resized"
        ) == 1
        _assert_reader_takes_a_4x5_frame(reader, display_name)
    finally:
        reader.close()


def test_frame_file_replaced_by_another_geometry_under_a_running_writer(display_name: str) -> None:
    """A daemon of another geometry re-made the file: the running writer's next flush says so, naming both."""
    reader = FrameReader(display_name, 4, 5, LOG)
    script = f"""
        import sys
        from skyscreen_hw.errors import FrameError
        from skyscreen_hw.sources.shared_frame import FrameWriter
        with FrameWriter({display_name!r}, 4, 5, timeout=5.0) as w:
            for line in sys.stdin:
                w.frame[:] = int(line)
                try:
                    print(w.flush(), flush=True)
                except FrameError as exc:
                    print("error:", exc, flush=True)
        """
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdin is not None and writer.stdout is not None
    try:
        writer.stdin.write("5\n")
        writer.stdin.flush()
        frame = reader.poll(5.0)
        assert frame is not None and (frame == 5).all() and writer.stdout.readline().strip() == "True"
        frame_path(display_name).unlink()
        frame_path(display_name).write_bytes(bytes(100))
        writer.stdin.write("6\n")
        writer.stdin.flush()
        said = writer.stdout.readline().strip()
        assert said.startswith(f"error: {frame_path(display_name)} is 100 bytes, but this writer expects 4x5"), said
        assert frame_path(display_name).read_bytes() == bytes(100)  # left alone: never grown or truncated
    finally:
        writer.kill()
        writer.wait()
        reader.close()


def test_demo_says_once_when_no_daemon_takes_its_frames_and_once_when_they_flow_again(
    display_name: str, tmp_path: Path
) -> None:
    config = tmp_path / "small.toml"
    config.write_text("[frame]\nheight = 4\nwidth = 5\n")
    err_path = tmp_path / "demo.err"
    with err_path.open("w") as err:
        demo = subprocess.Popen(
            [sys.executable, "-m", "skyscreen_hw", "--config", str(config), "demo", "bar", "--name", display_name],
            stderr=err,
            text=True,
        )
    reader = None
    try:

        def wait_for(text: str) -> None:
            deadline = time.monotonic() + WAIT
            while text not in err_path.read_text():
                assert time.monotonic() < deadline and demo.poll() is None, err_path.read_text()
                if reader is not None:
                    reader.poll(0.05)  # the daemon takes the demo's frames meanwhile
                else:
                    time.sleep(0.05)

        wait_for("no daemon is taking the frames")
        reader = FrameReader(display_name, 4, 5, LOG)
        wait_for("a daemon takes the frames again")
        for _ in range(5):  # frames keep flowing: nothing more is said
            assert reader.poll(5.0) is not None
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(WAIT) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        if reader is not None:
            reader.close()
    lines = err_path.read_text().splitlines()
    assert len(lines) == 2, lines
    assert lines[0] == (
        f"skyscreen-hw: warning: display {display_name!r}: no daemon is taking the frames"
        f" ({frame_path(display_name)}): start skyscreen-hw, or check --name; still trying"
    )
    assert lines[1] == f"skyscreen-hw: display {display_name!r}: a daemon takes the frames again"
