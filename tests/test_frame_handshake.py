"""The handshake under trouble: files and semaphores removed while running, a writer posting without waiting.

Real writer processes, real POSIX semaphores and /dev/shm; the daemon's side is a FrameReader polled here.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import posix_ipc
import pytest

from skyscreen_hw.sources.shared_frame import FrameReader, frame_path, semaphore_names

LOG = logging.getLogger("skyscreen.test")
H, W = 4, 5
WAIT = 15.0  # seconds the test waits for something that should happen within about one
PERIOD = 1 / 120  # seconds: the daemon takes at most one frame a period (fps), whatever is pending


def semaphore_path(sem_name: str) -> Path:
    """glibc keeps the semaphore /NAME.ready as /dev/shm/sem.NAME.ready."""
    return Path(f"/dev/shm/sem.{sem_name[1:]}")


def _run_writer(script: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _take(reader: FrameReader, count: int, until: float = WAIT) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    deadline = time.monotonic() + until
    while len(frames) < count and time.monotonic() < deadline:
        frame = reader.poll(0.1)
        if frame is not None:
            frames.append(frame.copy())
    return frames


def _poll_until(reader: FrameReader, condition, what: str) -> None:
    """Keep the daemon polling (as its thread does) until ``condition()``; it checks its files once a second."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        assert reader.poll(0.1) is None, "no writer here: no frame expected"


class ControlledWriter:
    """A writer process that draws the value it reads on stdin, flushes, and prints what flush() returned."""

    def __init__(self, name: str, timeout: float) -> None:
        self.proc = _run_writer(
            f"""
            import sys
            from skyscreen_hw.sources.shared_frame import FrameWriter
            with FrameWriter({name!r}, {H}, {W}, timeout={timeout}) as w:
                for line in sys.stdin:
                    w.frame[:] = int(line)
                    print(w.flush(), flush=True)
            """
        )

    def show(self, reader: FrameReader, value: int) -> tuple[np.ndarray | None, str]:
        """Draw and flush ``value``; what the daemon's poll got and what flush() said."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{value}\n")
        self.proc.stdin.flush()
        frame = reader.poll(5.0)
        got = None if frame is None else frame.copy()
        said = self.proc.stdout.readline().strip()
        if not said:
            raise AssertionError(f"the writer died: {self.proc.communicate(timeout=10)[1]}")
        return got, said

    def stop(self) -> None:
        _, err = self.proc.communicate(timeout=10)
        assert self.proc.returncode == 0, err


# -- item: removed while running (logind's RemoveIPC=yes) ---------------------------------------------


@pytest.mark.parametrize("writer_comes", ["before the daemon noticed", "after the daemon re-created them"])
def test_semaphores_removed_while_running_are_reopened(
    writer_comes: str, display_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Both semaphores are unlinked under a running daemon: a new writer's frames still reach it."""
    reader = FrameReader(display_name, H, W, LOG)
    try:
        with caplog.at_level(logging.INFO, "skyscreen.test"):
            for sem_name in semaphore_names(display_name):
                posix_ipc.unlink_semaphore(sem_name)
            paths = [semaphore_path(s) for s in semaphore_names(display_name)]
            if writer_comes.startswith("after"):
                _poll_until(reader, lambda: all(p.exists() for p in paths), "the daemon re-created them")
            writer = _run_writer(
                f"""
                from skyscreen_hw.sources.shared_frame import FrameWriter
                with FrameWriter({display_name!r}, {H}, {W}, timeout=5.0) as w:
                    w.frame[:] = 6
                    print(sum(w.flush() for _ in range(3)))
                """
            )
            if writer_comes.startswith("before"):  # the daemon is not polled meanwhile: the writer makes them
                deadline = time.monotonic() + WAIT
                while not all(p.exists() for p in paths):
                    assert time.monotonic() < deadline and writer.poll() is None, "the writer made no semaphores"
                    time.sleep(0.02)
            frames = _take(reader, 3)
            out, err = writer.communicate(timeout=WAIT)
        assert out.strip() == "3", err
        assert [int(f.max()) for f in frames] == [6, 6, 6] and all((f == 6).all() for f in frames)
        removed = [r.message for r in caplog.records if "removed while running" in r.message]
        assert len(removed) == 1, caplog.text  # one line for both
        assert "re-created" in removed[0] if writer_comes.startswith("after") else "re-opened" in removed[0]
    finally:
        reader.close()


@pytest.mark.parametrize("who_notices", ["the writer", "the daemon"])
def test_frame_file_removed_under_a_running_writer_is_reopened(who_notices: str, display_name: str) -> None:
    """The frame file is removed between two frames: the writer's next frame still shows, whole.

    Either the writer notices first (its flush finds the file gone and makes a new one) or the daemon
    does (its once-a-second check re-creates it; the writer finds another file under the name).
    """
    reader = FrameReader(display_name, H, W, LOG)
    writer = ControlledWriter(display_name, timeout=5.0)
    try:
        frame, said = writer.show(reader, 5)
        assert frame is not None and (frame == 5).all() and said == "True"
        frame_path(display_name).unlink()
        if who_notices == "the daemon":
            _poll_until(reader, frame_path(display_name).exists, "the daemon re-created the frame file")
        frame, said = writer.show(reader, 6)
        assert frame is not None and (frame == 6).all(), frame  # not the zeros of a fresh file
        assert said == "True"
        assert frame_path(display_name).stat().st_size == H * W * 3
        frame, said = writer.show(reader, 7)
        assert frame is not None and (frame == 7).all() and said == "True"
        writer.stop()
    finally:
        writer.proc.kill()
        reader.close()


def test_semaphores_removed_under_a_running_writer_are_reopened_after_one_lost_frame(display_name: str) -> None:
    """The writer's semaphores vanish and the daemon re-creates them: the writer's next flush reports the
    frame not taken (it went to the old ones) and re-opens; from then on frames flow."""
    reader = FrameReader(display_name, H, W, LOG)
    writer = ControlledWriter(display_name, timeout=1.0)
    try:
        frame, said = writer.show(reader, 5)
        assert frame is not None and (frame == 5).all() and said == "True"
        for sem_name in semaphore_names(display_name):
            posix_ipc.unlink_semaphore(sem_name)
        paths = [semaphore_path(s) for s in semaphore_names(display_name)]
        _poll_until(reader, lambda: all(p.exists() for p in paths), "the daemon re-created the semaphores")
        frame, said = writer.show(reader, 6)
        assert (frame, said) == (None, "False")  # posted on the removed semaphores: nobody took it
        frame, said = writer.show(reader, 7)
        assert frame is not None and (frame == 7).all() and said == "True"
        writer.stop()
    finally:
        writer.proc.kill()
        reader.close()


# -- item: a burst of stale ready posts ----------------------------------------------------------------


def test_a_burst_of_ready_posts_does_not_tear_later_frames(display_name: str, caplog: pytest.LogCaptureFixture) -> None:
    """A writer posts `ready` 200 times without waiting, then a correct writer draws 100 frames.

    Each of the correct writer's frames is one value over the whole frame, drawn band by band, so a frame
    the daemon copied while the writer was drawing the next one shows two values. Every frame must be whole, each
    exactly once, in order: the daemon drains the excess posts (one log line), so each `done` answers
    exactly the frame it should. (Without that, the daemon, paced at its fps, takes the stale posts one a
    period for seconds, each `done` releasing the correct writer early.)
    """
    h, w, count = 360, 288, 100
    reader = FrameReader(display_name, h, w, LOG)
    try:
        bad = _run_writer(
            f"""
            from skyscreen_hw.sources.shared_frame import FrameWriter
            w = FrameWriter({display_name!r}, {h}, {w})
            w.frame[:] = 255
            for _ in range(200):
                w.ready.release()  # never waits for done
            """
        )
        assert bad.wait(WAIT) == 0
        with caplog.at_level(logging.INFO, "skyscreen.test"):
            stale = reader.poll(1.0)
            assert stale is not None and (stale == 255).all()  # the bad writer's frame, once
            good = _run_writer(
                f"""
                import time
                from skyscreen_hw.sources.shared_frame import FrameWriter
                with FrameWriter({display_name!r}, {h}, {w}, timeout=5.0) as w:
                    taken = 0
                    for value in range(1, {count} + 1):
                        for band in range(0, {h}, {h} // 8):  # drawn band by band, as patterns take time
                            w.frame[band : band + {h} // 8] = value
                            time.sleep(0.001)
                        taken += w.flush()
                    print(taken)
                """
            )
            frames = []  # (lowest, highest) value of every frame taken until the writer is gone
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                frame = reader.poll(0.1)
                if frame is not None:
                    frames.append((int(frame.min()), int(frame.max())))
                    time.sleep(PERIOD)  # like the daemon: at most one frame a period
                elif good.poll() is not None:
                    break
        torn = [f for f in frames if f[0] != f[1]]
        assert not torn, f"{len(torn)} of {len(frames)} frames torn"
        assert [lo for lo, _ in frames] == list(range(1, count + 1))
        out, err = good.communicate(timeout=WAIT)
        assert out.strip() == str(count), err
        drained = [r.message for r in caplog.records if "extra post(s) on semaphore" in r.message]
        assert len(drained) == 1 and drained[0].startswith("199 extra post(s)"), caplog.text
    finally:
        reader.close()


def test_a_frame_file_a_writer_renamed_over_the_path_is_read_from_the_next_frame(
    display_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A writer makes a new frame file and renames it over the path, then flushes: the daemon's very next
    poll reads the new file (the one it had open has no links left). That poll began before the rename, and
    the once-a-second check runs only as a poll begins (and not yet, a moment after the reader opened)."""
    reader = FrameReader(display_name, H, W, LOG)
    try:
        with caplog.at_level(logging.INFO, "skyscreen.test"):
            writer = _run_writer(
                f"""
                import os, posix_ipc
                path = {str(frame_path(display_name))!r}
                with open(path + ".new", "wb") as f:
                    f.write(bytes([9]) * {H * W * 3})
                os.rename(path + ".new", path)
                posix_ipc.Semaphore("/{display_name}.ready").release()
                posix_ipc.Semaphore("/{display_name}.done").acquire(5)
                """
            )
            frame = reader.poll(5.0)
            _, err = writer.communicate(timeout=WAIT)
        assert writer.returncode == 0, err
        assert frame is not None and (frame == 9).all(), frame
        assert "replaced by a writer: re-opened" in caplog.text
    finally:
        reader.close()
