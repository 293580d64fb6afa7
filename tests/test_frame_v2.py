"""The shared frame v2: buffered and interlaced frames, through real writers (Python and C) and real daemons.

Real /dev/shm files and POSIX semaphores; the daemon's side is either a real `python -m skyscreen_hw`
recording what it shows (``--record``), or a FrameReaderV2 driven here. Writers draw frame number ``n`` (the
header's ``written`` before their post) as R = n & 0xFF, G = n >> 8, B = (row + column) & 0xFF, as
examples/writer_v2.c does, so every recorded frame tells which frame it is and whether it is whole.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import posix_ipc
import pytest

from skyscreen_hw.errors import AlreadyRunningError, FrameError
from skyscreen_hw.outputs.record import read_recording
from skyscreen_hw.sources.frame_v2 import (
    HEADER_SIZE,
    FrameReaderV2,
    FrameWriterV2,
    Header,
    frames_path,
    frames_semaphore_names,
    remove_frames,
)
from skyscreen_hw.sources.shared_frame import semaphore_path

LOG = logging.getLogger("skyscreen.test.v2")
H, W = 6, 8
WAIT = 20.0  # seconds a test waits for what should happen within about one
ROOT = Path(__file__).parent.parent


@pytest.fixture
def display(display_name: str) -> Iterator[str]:
    """A display name of its own; its v1 and v2 files and semaphores are removed afterwards."""
    yield display_name
    remove_frames(display_name)


@pytest.fixture(scope="module")
def c_writer_v2() -> Iterator[Path]:
    """examples/writer_v2.c compiled with gcc -O2 -Wall -Wextra -Werror (no warnings allowed)."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to compile examples/writer_v2.c")
    where = Path(tempfile.mkdtemp(prefix="skyfr-writer-v2-"))
    try:
        where.chmod(0o755)
        binary = where / "writer_v2"
        source = ROOT / "examples" / "writer_v2.c"
        subprocess.run(
            ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(binary), str(source), "-pthread"], check=True
        )
        yield binary
    finally:
        shutil.rmtree(where, ignore_errors=True)


# -- helpers ----------------------------------------------------------------------------------------------


def daemon_text(name: str, slots: int = 4, fps: float = 60.0, h: int = H, w: int = W) -> str:
    return textwrap.dedent(
        f"""
        outputs = []
        [frame]
        name = "{name}"
        height = {h}
        width = {w}
        slots = {slots}
        [layout]
        type = "matrix"
        [color]
        gamma = 1.0
        [display]
        fps = {fps}
        [websocket]
        enabled = false
        """
    )


def numbered(n: int, h: int = H, w: int = W) -> np.ndarray:
    r, c = np.mgrid[0:h, 0:w]
    return np.stack([np.full_like(r, n & 0xFF), np.full_like(r, (n >> 8) & 0xFF), (r + c) & 0xFF], -1).astype(np.uint8)


WRITER = """
import sys, time
import numpy as np
from skyscreen_hw.sources.frame_v2 import FrameWriterV2

def numbered(n, h, w):
    r, c = np.mgrid[0:h, 0:w]
    return np.stack([np.full_like(r, n & 0xFF), np.full_like(r, (n >> 8) & 0xFF), (r + c) & 0xFF], -1).astype(np.uint8)

with FrameWriterV2({name!r}, timeout={timeout}, interlaced={interlaced}) as w:
    print(w.height, w.width, w.slots, flush=True)
    posted = 0
    for k in range({count}):
        slot = w.acquire()
        if slot is None:
            break
        n = w.frame_number
        picture = numbered(n, w.height, w.width)
        if w.interlaced:
            slot[w.parity::2] = picture[w.parity::2]
        else:
            slot[:] = picture
        w.post()
        posted += 1
        {extra}
    print(posted, flush=True)
"""


def python_writer(name: str, count: int, *, interlaced: bool = False, timeout: float = 2.0, extra: str = "pass"):
    script = WRITER.format(name=name, count=count, interlaced=interlaced, timeout=timeout, extra=extra)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> list[str]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}: {err}"
    return out.split("\n")


def shown(rec: Path, h: int = H, w: int = W, interlaced: bool = False) -> list[int]:
    """The frame number of every frame the daemon recorded (black frames, at start and stop, left out);
    each must be whole: one number everywhere (interlaced: n on rows of n's parity, n - 1 on the others)."""
    frames = read_recording(rec, h * w).reshape(-1, h, w, 3)
    r, c = np.mgrid[0:h, 0:w]
    numbers = []
    for f in frames:
        if not f.any():
            continue
        n = f[..., 0].astype(np.int64) + 256 * f[..., 1].astype(np.int64)
        top = int(n.max())
        mine = slice(top % 2, None, 2) if interlaced else slice(None)
        assert (f[mine, :, 2] == ((r + c) & 0xFF)[mine]).all(), "a frame that is no writer's"
        assert (n[mine] == top).all(), f"torn: {n}"
        if interlaced:  # the other rows: the frame before (or the black before the first)
            other = slice(1 - top % 2, None, 2)
            assert (n[other] == top - 1).all() or not f[other].any(), n
        numbers.append(top)
    return numbers


def once_in_order(numbers: list[int], expected: list[int]) -> None:
    """``numbers`` is ``expected``, each exactly once and in order; the last may repeat (the keepalive)."""
    last = len(numbers)
    while last > 1 and numbers[last - 1] == numbers[last - 2]:
        last -= 1
    assert numbers[:last] == expected, f"shown {numbers}"


def take_until(reader: FrameReaderV2, count: int, until: float = WAIT) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    deadline = time.monotonic() + until
    while len(frames) < count and time.monotonic() < deadline:
        frame = reader.poll(0.05)
        if frame is not None:
            frames.append(frame.copy())
    return frames


def settle(reader: FrameReaderV2, slots: int) -> list[int]:
    """Let the reader take frames and look at its counts (no writer left) until free + ready adds up to
    the slots with nothing pending; the numbers of the frames it took meanwhile."""
    taken: list[int] = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        frame = reader.poll(0.05)
        if frame is not None:
            taken.append(int(frame[0, 0, 0]))
        elif reader.free.value == slots and reader.ready.value == 0 and reader.pending == 0:
            return taken
    raise AssertionError(f"the counts never added up: free {reader.free.value}, ready {reader.ready.value}")


# -- the header and the files, as the daemon makes them ---------------------------------------------------


def test_the_daemon_makes_the_file_header_and_semaphores_byte_for_byte(display: str) -> None:
    reader = FrameReaderV2(display, H, W, 5, LOG)
    try:
        data = frames_path(display).read_bytes()
        assert len(data) == 64 + 5 * H * W * 3
        expected = b"SKYFRAME" + struct.pack("<IIIIII", 2, W, H, 5, 0, 0) + struct.pack("<QQ", 0, 0) + bytes(16)
        assert data[:64] == expected
        ready, free = (posix_ipc.Semaphore(s) for s in frames_semaphore_names(display))
        assert (ready.value, free.value) == (0, 5)
        assert oct(frames_path(display).stat().st_mode & 0o777) == "0o660"
        with pytest.raises(AlreadyRunningError, match="already served by another skyscreen-hw"):
            FrameReaderV2(display, H, W, 5, LOG)
    finally:
        reader.close()


def test_writer_learns_geometry_from_the_header_and_counts_in_it(display: str) -> None:
    reader = FrameReaderV2(display, 3, 9, 2, LOG)
    try:
        with FrameWriterV2(display) as w:
            assert (w.height, w.width, w.slots) == (3, 9, 2)
            for n in range(2):
                assert w.write(numbered(n, 3, 9), timeout=0.5)
            assert w.acquire(timeout=0.05) is None  # two ahead: no free slot until the daemon takes one
            assert w.pending == 2
            frames = take_until(reader, 2)
            assert [int(f[0, 0, 0]) for f in frames] == [0, 1]
            header = Header.of(frames_path(display).read_bytes()[:HEADER_SIZE])
            assert (header.written, header.taken, header.flags) == (2, 2, 0)
        with pytest.raises(FrameError, match="the display is 3x9, but this writer expects 4x9"):
            FrameWriterV2(display, height=4, width=9)
    finally:
        reader.close()


def test_a_writer_without_a_daemon_is_told_so(display: str) -> None:
    with pytest.raises(FrameError, match="no such file: no daemon serves display"):
        FrameWriterV2(display, wait=0.1)


def test_one_writer_at_a_time(display: str) -> None:
    reader = FrameReaderV2(display, H, W, 4, LOG)
    try:
        first = python_writer(display, 1, extra="time.sleep(3)")
        assert first.stdout is not None and first.stdout.readline().split() == [str(H), str(W), "4"]
        with pytest.raises(
            FrameError, match=rf"another writer is writing to display '{display}' .*lock by pid {first.pid}"
        ):
            FrameWriterV2(display, timeout=0.2)
        first.kill()
        first.wait()
    finally:
        reader.close()


def test_the_standalone_v2_writer_of_the_standard_gets_frames_through(display: str) -> None:
    """docs/frame-standard.md stays true: its v2 writer without this package, against the daemon's side."""
    import re

    doc = (ROOT / "docs" / "frame-standard.md").read_text()
    (standalone,) = [b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "fcntl.flock(fd, fcntl.LOCK_EX)" in b]
    script = standalone.replace('name = "skyscreen"', f'name = "{display}"')
    script += (
        "\nprint(post(np.full((height, width, 3), 3, np.uint8)), post(np.full((height, width, 3), 4, np.uint8)))\n"
    )
    reader = FrameReaderV2(display, H, W, 4, LOG)
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert done.stdout.split() == ["True", "True"], done.stderr
        frames = take_until(reader, 2)
        assert [int(f[0, 0, 0]) for f in frames] == [3, 4] and all((f == f[0, 0, 0]).all() for f in frames)
    finally:
        reader.close()


# -- through a real daemon: buffered, in order, one a tick ------------------------------------------------


def test_python_writer_runs_ahead_and_every_frame_is_shown_once_in_order(
    display: str, daemon_factory, tmp_path: Path
) -> None:
    rec = tmp_path / "out.rgb"
    d = daemon_factory(daemon_text(display), "--record", str(rec))
    d.wait_for_log("running:")
    lines = finish(python_writer(display, 90))
    assert lines[0].split() == [str(H), str(W), "4"] and lines[1] == "90"
    time.sleep(0.5)  # the last frames still buffered are shown, one a tick
    assert d.stop() == 0
    once_in_order(shown(rec), list(range(90)))
    assert "Traceback" not in d.log


def test_a_writer_that_stalls_briefly_costs_no_frame(display: str, daemon_factory, tmp_path: Path) -> None:
    """Every 8 frames the writer stops drawing for about one frame period (a GC pause, a disk read): the
    display still has frames buffered each time (the writer finds some pending when it comes back), and
    every frame is shown once, in order. Stalls the machine made longer than 3 periods do not count."""
    rec = tmp_path / "out.rgb"
    d = daemon_factory(daemon_text(display, fps=30), "--record", str(rec))
    d.wait_for_log("running:")
    extra = (
        "if k % 8 == 7:\n"
        "            start = time.monotonic(); time.sleep(1 / 30)\n"
        "            if time.monotonic() - start < 3 / 30: print('pending', w.pending, flush=True)"
    )
    lines = finish(python_writer(display, 64, extra=extra))
    pending = [int(line.split()[1]) for line in lines if line.startswith("pending")]
    assert len(pending) >= 4 and min(pending) >= 1, pending
    time.sleep(0.5)
    assert d.stop() == 0
    once_in_order(shown(rec), list(range(64)))


def test_interlaced_python_writer_carries_half_the_rows(display: str, daemon_factory, tmp_path: Path) -> None:
    rec = tmp_path / "out.rgb"
    d = daemon_factory(daemon_text(display), "--record", str(rec))
    d.wait_for_log("running:")
    assert finish(python_writer(display, 40, interlaced=True))[1] == "40"
    time.sleep(0.5)
    assert d.stop() == 0
    once_in_order(shown(rec, interlaced=True), list(range(40)))  # frame 0's other rows: the black before it


@pytest.mark.parametrize("mode", ["progressive", "interlaced"])
def test_c_writer_learns_the_geometry_and_every_frame_is_shown_in_order(
    mode: str, display: str, daemon_factory, tmp_path: Path, c_writer_v2: Path
) -> None:
    rec = tmp_path / "out.rgb"
    d = daemon_factory(daemon_text(display, slots=3, h=5, w=7), "--record", str(rec))
    d.wait_for_log("running:")
    done = subprocess.run([str(c_writer_v2), display, "50", mode], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [f"{frames_path(display)}: 5x7, 3 slots", "50 frames posted"]
    time.sleep(0.5)
    assert d.stop() == 0
    numbers = shown(rec, 5, 7, interlaced=mode == "interlaced")
    once_in_order(numbers, list(range(50)))


def test_writers_honour_writer_file(display: str, c_writer_v2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The original's WRITER_FILE: the C and Python writers find the display (name, geometry) from the path."""
    reader = FrameReaderV2(display, H, W, 4, LOG)
    try:
        monkeypatch.setenv("WRITER_FILE", str(frames_path(display)))
        done = subprocess.run([str(c_writer_v2), "no-such-display", "3"], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 and "3 frames posted" in done.stdout, done.stderr
        monkeypatch.setenv("WRITER_FILE", f"/dev/shm/{display}.frame")  # the v1 path: its v2 file beside it
        with FrameWriterV2() as w:
            assert w.name == display and w.path == frames_path(display) and w.shape == (H, W, 3)
            assert w.write(numbered(3))
        assert [int(f[0, 0, 0]) for f in take_until(reader, 4)] == [0, 1, 2, 3]
    finally:
        reader.close()


# -- writers killed at any point: at most the frame being written is lost ----------------------------------


DYING = """
import os, signal, struct
import numpy as np
import posix_ipc
from skyscreen_hw.sources.frame_v2 import FrameWriterV2

def numbered(n, h, w):
    r, c = np.mgrid[0:h, 0:w]
    return np.stack([np.full_like(r, n & 0xFF), np.full_like(r, (n >> 8) & 0xFF), (r + c) & 0xFF], -1).astype(np.uint8)

w = FrameWriterV2({name!r})
for k in range(3):
    slot = w.acquire()
    slot[:] = numbered(w.frame_number, w.height, w.width)
    w.post()
slot = w.acquire()                                    # step 1: a free slot taken
if {point!r} == "after free":
    os.kill(os.getpid(), signal.SIGKILL)
slot[: w.height // 2] = numbered(w.frame_number, w.height, w.width)[: w.height // 2]
if {point!r} == "mid fill":
    os.kill(os.getpid(), signal.SIGKILL)
slot[:] = numbered(w.frame_number, w.height, w.width)
struct.pack_into("<Q", w._map, 32, w.frame_number + 1)  # step 3: written += 1
if {point!r} == "after count":
    os.kill(os.getpid(), signal.SIGKILL)
w.ready.release()                                     # step 4: posted
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("point", ["after free", "mid fill", "after count", "after post"])
def test_a_writer_killed_mid_handshake_loses_at_most_its_frame(
    point: str, display: str, daemon_factory, tmp_path: Path
) -> None:
    """The next writer starts at once and all its frames are taken; the daemon shows every whole frame in
    order (the one killed after counting it is shown: it was whole), and the counts add up again after."""
    rec = tmp_path / "out.rgb"
    d = daemon_factory(daemon_text(display), "--record", str(rec))
    d.wait_for_log("running:")
    dying = subprocess.run([sys.executable, "-c", DYING.format(name=display, point=point)], timeout=60)
    assert dying.returncode == -signal.SIGKILL
    lines = finish(python_writer(display, 30, timeout=1.0))
    assert lines[1] == "30"  # every frame of the next writer got a slot within its 1 s timeout
    time.sleep(1.5)  # the daemon's look at the counts, with no writer left
    assert d.stop() == 0
    whole = 4 if point in ("after count", "after post") else 3  # frames 0-2, and 3 when it was counted
    once_in_order(shown(rec), list(range(whole + 30)))
    ready, free = (posix_ipc.Semaphore(s) for s in frames_semaphore_names(display))
    assert ready.value + free.value == 4


def test_c_writers_killed_at_random_lose_nothing_whole(
    display: str, daemon_factory, tmp_path: Path, c_writer_v2: Path
) -> None:
    """Eight C writers in a row, each SIGKILLed at a random moment, then one that finishes: frame numbers
    come from the header, so the display must show one unbroken run 0, 1, 2, ... with nothing torn."""
    rec = tmp_path / "out.rgb"
    d = daemon_factory(daemon_text(display), "--record", str(rec))
    d.wait_for_log("running:")
    rng = np.random.default_rng(11)
    for _ in range(8):
        proc = subprocess.Popen([str(c_writer_v2), display, "100000"], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and "slots" in proc.stdout.readline()
        time.sleep(float(rng.uniform(0.02, 0.3)))
        proc.kill()
        proc.wait()
    done = subprocess.run([str(c_writer_v2), display, "20"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    time.sleep(1.5)
    assert d.stop() == 0
    numbers = shown(rec)
    once_in_order(numbers, list(range(numbers[-1] + 1)))
    assert numbers[-1] >= 20


def test_counts_of_a_dead_writer_are_reconciled_within_a_second(display: str, caplog: pytest.LogCaptureFixture) -> None:
    """Killed holding a free slot and with a whole frame counted but not posted: with no writer left the
    reader posts that frame for it and gives the slot back, in one log line naming the file."""
    reader = FrameReaderV2(display, H, W, 4, LOG)
    try:
        subprocess.run([sys.executable, "-c", DYING.format(name=display, point="after count")], timeout=60)
        with caplog.at_level(logging.INFO, LOG.name):
            assert settle(reader, 4) == [0, 1, 2, 3]
        assert f"{frames_path(display)}: counts reconciled with no writer there" in caplog.text
    finally:
        reader.close()


def test_a_slot_lost_with_a_killed_writer_comes_back_while_the_next_one_waits(
    display: str, caplog: pytest.LogCaptureFixture
) -> None:
    """One slot: the writer killed holding it takes the display's only free count along, while the next
    writer already waits for the writer lock; that one, holding the lock and waiting on `free` (so it holds
    no slot), gets the count back from the daemon and all its frames through."""
    reader = FrameReaderV2(display, H, W, 1, LOG)
    script = DYING.format(name=display, point="after free")
    script = script.replace("if 'after free' == \"after free\":", "if 'after free' == \"after free\":\n    input()")
    assert "input()" in script  # it waits to be killed until the next writer waits for the lock
    try:
        dying = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, text=True)
        taken = [int(f[0, 0, 0]) for f in take_until(reader, 3)]
        assert taken == [0, 1, 2]
        with caplog.at_level(logging.INFO, LOG.name):
            proc = python_writer(display, 5, timeout=10.0)  # waits for the lock while the first one lives
            time.sleep(1.5)
            assert dying.stdin is not None
            dying.stdin.write("\n")
            dying.stdin.flush()
            assert dying.wait(30) == -signal.SIGKILL
            while proc.poll() is None:
                taken += [int(f[0, 0, 0]) for f in take_until(reader, 1, 0.1)]
            taken += [int(f[0, 0, 0]) for f in take_until(reader, 1, 0.5)]
        assert finish(proc)[1] == "5" and taken == list(range(8))
        assert "1 free slot(s) given back" in caplog.text or "1 free slot(s) lost with a writer killed" in caplog.text
    finally:
        reader.close()


# -- bad input: a clear line naming the file, nothing torn -------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "value", "said"),
    [(0, b"NOTFRAME", "magic b'NOTFRAME', version 2"), (8, struct.pack("<I", 3), "magic b'SKYFRAME', version 3")],
)
def test_a_header_of_the_wrong_magic_or_version_is_refused_by_writers_and_restored_by_the_daemon(
    offset: int, value: bytes, said: str, display: str, c_writer_v2: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reader = FrameReaderV2(display, H, W, 4, LOG)
    path = frames_path(display)
    try:
        fd = os.open(path, os.O_RDWR)
        os.pwrite(fd, value, offset)
        os.close(fd)
        with pytest.raises(FrameError, match=f"{path}: not a shared frame v2 file: .*restart skyscreen-hw"):
            FrameWriterV2(display)
        done = subprocess.run([str(c_writer_v2), display, "1"], capture_output=True, text=True, timeout=30)
        assert done.returncode == 3 and str(path) in done.stderr, done.stderr
        with caplog.at_level(logging.INFO, LOG.name):
            take_until(reader, 1, 1.0)  # the daemon's next look restores it
        assert f"{path} says {said}" in caplog.text and "restored" in caplog.text
        with FrameWriterV2(display) as w:
            assert w.write(numbered(0))
        assert len(take_until(reader, 1)) == 1
    finally:
        reader.close()


def test_slots_changed_under_a_running_writer(display: str) -> None:
    """The daemon restarts with slots = 8: it makes the file anew (a new inode: the old mapping stays valid),
    the running writer re-maps it before its next frame, says so once, and goes on."""
    reader = FrameReaderV2(display, H, W, 4, LOG)
    proc = python_writer(display, 40, timeout=5.0, extra="time.sleep(0.02)")
    try:
        assert proc.stdout is not None and proc.stdout.readline().split() == [str(H), str(W), "4"]
        assert len(take_until(reader, 5)) == 5
        reader.close()
        reader = FrameReaderV2(display, H, W, 8, LOG)
        assert Header.of(frames_path(display).read_bytes()[:HEADER_SIZE]).slots == 8
        frames = []
        while proc.poll() is None:
            frames += take_until(reader, 1, 0.2)
        frames += take_until(reader, 8, 1.0)
        assert len(frames) >= 20 and all((f[..., 0] == f[0, 0, 0]).all() for f in frames)  # whole
        numbers = [int(f[0, 0, 0]) for f in frames]
        assert numbers == sorted(numbers) and numbers[-1] >= 20
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and out.split()[-1] == "40", err
        assert err.count(f"{frames_path(display)}: slots changed from 4 to 8") == 1, err
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        reader.close()


def test_counters_saying_more_than_slots_are_pending_drop_them_and_say_so(
    display: str, caplog: pytest.LogCaptureFixture
) -> None:
    reader = FrameReaderV2(display, H, W, 4, LOG)
    path = frames_path(display)
    try:
        fd = os.open(path, os.O_RDWR)
        os.pwrite(fd, struct.pack("<Q", 9), 32)  # written = 9 with nothing taken: 9 pending in 4 slots
        os.close(fd)
        ready, _ = (posix_ipc.Semaphore(s) for s in frames_semaphore_names(display))
        ready.release()
        with caplog.at_level(logging.INFO, LOG.name):
            assert take_until(reader, 1, 1.0) == []  # nothing shown from it
        assert f"{path}: its counters say 9 frames are pending, 0 posted (4 slots)" in caplog.text or (
            f"{path}: its counters say 9 frames are pending (4 slots)" in caplog.text
        ), caplog.text
        with FrameWriterV2(display) as w:
            assert w.frame_number == 9  # writers go on from the count
            assert w.write(numbered(9))
        assert [int(f[0, 0, 0]) for f in take_until(reader, 1)] == [9]
    finally:
        reader.close()


RECKLESS = """
import struct, time
import numpy as np
from skyscreen_hw.sources.frame_v2 import FrameWriterV2

w = FrameWriterV2({name!r})
r, c = np.mgrid[0:w.height, 0:w.width]
for n in range({count}):                               # never waits on free: posts without a free slot
    slot = w._views[n % w.slots]
    slot[..., 2] = (r + c) & 0xFF
    for row in range(w.height):                         # slowly, a row at a time: tearing would show
        slot[row, :, 0] = n & 0xFF
        slot[row, :, 1] = (n >> 8) & 0xFF
        time.sleep(0.0005)
    struct.pack_into("<Q", w._map, 32, n + 1)
    w.ready.release()
w.close()
"""


def test_a_writer_posting_without_a_free_slot_tears_nothing(display: str, daemon_factory, tmp_path: Path) -> None:
    rec = tmp_path / "out.rgb"
    d = daemon_factory(daemon_text(display, h=24), "--record", str(rec))
    d.wait_for_log("running:")
    subprocess.run([sys.executable, "-c", RECKLESS.format(name=display, count=200)], check=True, timeout=120)
    time.sleep(1.5)
    numbers = shown(rec, h=24)  # every recorded frame whole (shown() checks), in order
    assert numbers == sorted(numbers)
    lines = finish(python_writer(display, 10))  # and a writer keeping to the handshake gets through
    assert lines[1] == "10"
    time.sleep(0.5)
    assert d.stop() == 0
    assert shown(rec, h=24)[-1] >= 209
    assert f"{frames_path(display)}: " in d.log and "a writer posting without a free slot" in d.log, d.log


def test_slots_change_on_reload_needs_a_restart(display: str, daemon_factory) -> None:
    d = daemon_factory(daemon_text(display))
    d.wait_for_log("running:")
    d.config_path.write_text(daemon_text(display, slots=6))
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for_log("reload rejected")
    assert d.stop() == 0
    assert "[frame] slots changed: that needs a restart" in d.log


def test_file_and_semaphores_removed_while_running_are_made_anew(display: str) -> None:
    """logind's RemoveIPC: the reader makes them again within about a second; the writer re-maps."""
    reader = FrameReaderV2(display, H, W, 4, LOG)
    try:
        with FrameWriterV2(display, timeout=3.0) as w:
            assert w.write(numbered(0)) and len(take_until(reader, 1)) == 1
            frames_path(display).unlink()
            for sem in frames_semaphore_names(display):
                posix_ipc.unlink_semaphore(sem)
            deadline = time.monotonic() + WAIT
            while not (frames_path(display).exists() and semaphore_path(frames_semaphore_names(display)[1]).exists()):
                reader.poll(0.05)
                assert time.monotonic() < deadline, "never made anew"
            taken = []
            while not taken and time.monotonic() < deadline:
                w.write(numbered(1), timeout=0.2)
                taken = take_until(reader, 1, 0.3)
            assert taken and int(taken[0][0, 0, 0]) in (0, 1)
    finally:
        reader.close()


# -- permissions, as for v1: a group member under protected_regular, a squatter refused ----------------------


def _member_writes(name: str, frames: int) -> list[int]:
    with FrameWriterV2(name, timeout=5.0, wait=10.0) as w:
        return [int(w.write(numbered(n, w.height, w.width))) for n in range(frames)]


@pytest.mark.xdist_group("protected-regular")  # the machine-wide sysctl, other users' writers
def test_a_group_member_writes_v2_frames_under_protected_regular(
    display: str, frame_users, as_user, protected_regular
) -> None:
    """The daemon's side as root made the file (0660, the display's group); a writer of the group, another
    user, opens it without O_CREAT and its frames come through."""
    reader = FrameReaderV2(display, H, W, 4, LOG, frame_users.group)
    try:
        st = frames_path(display).stat()
        assert (st.st_gid, st.st_mode & 0o777) == (frame_users.gid, 0o660)
        writer = as_user(frame_users.writer, _member_writes, display, 6)
        frames = take_until(reader, 6)
        assert writer.result() == [1] * 6
        assert [int(f[0, 0, 0]) for f in frames] == list(range(6))
    finally:
        reader.close()


def _squat(path: str) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    os.fchmod(fd, 0o666)
    os.close(fd)


@pytest.mark.xdist_group("protected-regular")  # the machine-wide sysctl, other users' writers
def test_a_squatted_frames_file_is_refused_naming_owner_and_fix(display: str, frame_users, as_user) -> None:
    path = frames_path(display)
    as_user(frame_users.squatter, _squat, str(path)).result()
    with pytest.raises(FrameError) as refused:
        FrameReaderV2(display, H, W, 4, LOG, frame_users.group)
    message = str(refused.value)
    assert f"owned by {frame_users.squatter}:{frame_users.squatter} with mode 0666" in message
    assert f"rm {path}" in message
    assert path.stat().st_size == 0  # untouched


def test_the_modes_benchmark_reports_both_bars_and_leaves_nothing_in_shm(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A quick run of skyscreen_hw/benchmarks/modes.py: its two bars reported, its displays all removed."""
    import argparse

    from skyscreen_hw.benchmarks import RESULTS, modes, support

    names: list[str] = []
    make = support.display_name

    def recorded() -> str:
        names.append(make())
        return names[-1]

    monkeypatch.setattr(modes, "display_name", recorded)
    RESULTS.clear()
    modes.run(argparse.Namespace(rounds=3, window=0.3, repeats=1))
    text = capsys.readouterr().out
    assert [label for label, _ in RESULTS] == [
        "dome with rotate + mirror / plain dome, per frame",
        "daemon CPU per frame, v2 writer / v1 writer",
    ], text
    assert len(names) == 2 and not [p for name in names for p in support.display_files(name)]
