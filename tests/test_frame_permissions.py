"""Who may open the shared frame: group members across users under fs.protected_regular, squatters refused.

Real users (created if missing, see ``frame_users``), real processes running as them (``as_user``: forked
and setuid, since the venv's interpreter may not be readable by them; the C writer exec'd as them), real
/dev/shm files and POSIX semaphores. Needs root; skipped otherwise.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import re
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import posix_ipc
import pytest

from skyscreen_hw.errors import AlreadyRunningError, FrameError
from skyscreen_hw.sources.shared_frame import FrameReader, FrameWriter, frame_path, semaphore_names

# the machine-wide fs.protected_regular sysctl and other users' writers: one test at a time, on one worker
pytestmark = pytest.mark.xdist_group("protected-regular")

LOG = logging.getLogger("skyscreen.test")
H, W = 4, 5
VALUES = [1, 2, 3, 4, 5]
WAIT = 30.0  # seconds a test process waits for the other side before giving up
SHM = Path("/dev/shm")


def lock_path(name: str) -> Path:
    return SHM / f"{name}.lock"


def semaphore_path(sem_name: str) -> Path:
    """glibc keeps the semaphore /NAME.ready as /dev/shm/sem.NAME.ready."""
    return SHM / f"sem.{sem_name[1:]}"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _display_paths(name: str) -> list[Path]:
    return [frame_path(name), *(semaphore_path(s) for s in semaphore_names(name))]


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


def take_frames(name: str, group: str, count: int) -> tuple[list[np.ndarray], list[str]]:
    """The daemon's side, in a process of its own: ``count`` frames (or what came in WAIT s) and its log."""
    lines = _Lines()
    log = logging.getLogger("skyscreen.test.daemon")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(lines)
    reader = FrameReader(name, H, W, log, group)
    frames = []
    try:
        deadline = time.monotonic() + WAIT
        while len(frames) < count and time.monotonic() < deadline:
            frame = reader.poll(0.1)
            if frame is not None:
                frames.append(frame.copy())
    finally:
        reader.close()
    return frames, lines.lines


def write_frames(name: str, group: str, values: list[int]) -> list[int]:
    """A pattern program: each value as one whole frame, retried until a daemon takes it; the values taken."""
    taken = []
    deadline = time.monotonic() + WAIT
    with FrameWriter(name, H, W, timeout=1.0, group=group) as w:
        for value in values:
            w.frame[:] = value
            while time.monotonic() < deadline:
                if w.flush():
                    taken.append(value)
                    break
    return taken


def _assert_group_file(path: Path, owner: str, group: str) -> None:
    st = path.stat()
    got = (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode))
    assert got == (owner, group, 0o660), f"{path}: owner, group, mode"


@pytest.mark.parametrize("first", ["daemon", "writer"])
@pytest.mark.parametrize("daemon_as", ["service user", "root"])
def test_group_member_writes_under_protected_regular(
    first: str, daemon_as: str, display_name: str, frame_users, as_user, protected_regular
) -> None:
    """fs.protected_regular=2: a writer in the display's group gets its frames through, whoever made the files.

    The daemon runs as the service user (like skyscreen.service) or root (like the PWM drop-in); the
    writer as another user, a member of the group. O_CREAT on an existing file another user owns in the
    sticky /dev/shm fails with EACCES under this setting, for root too.
    """
    daemon_user = frame_users.daemon if daemon_as == "service user" else "root"
    group = frame_users.group
    if first == "daemon":
        daemon = as_user(daemon_user, take_frames, display_name, group, len(VALUES))
        _wait_until(lambda: all(p.exists() for p in _display_paths(display_name)), "the daemon made the files")
        writer = as_user(frame_users.writer, write_frames, display_name, group, VALUES)
    else:
        writer = as_user(frame_users.writer, write_frames, display_name, group, VALUES)
        _wait_until(lambda: all(p.exists() for p in _display_paths(display_name)), "the writer made the files")
        daemon = as_user(daemon_user, take_frames, display_name, group, len(VALUES))
    frames, log = daemon.result()
    assert writer.result() == VALUES
    assert [int(f[0, 0, 0]) for f in frames] == VALUES and all((f == f[0, 0, 0]).all() for f in frames), log
    for path in _display_paths(display_name):  # whoever made them handed them to the group, mode 0660
        _assert_group_file(path, daemon_user if first == "daemon" else frame_users.writer, group)


@pytest.mark.parametrize("first", ["daemon", "writer"])
def test_c_writer_of_the_group_writes_under_protected_regular(
    first: str, display_name: str, frame_users, as_user, protected_regular, c_writer: Path
) -> None:
    """examples/writer.c as a group member, the daemon as the service user, fs.protected_regular=2."""
    group = frame_users.group
    pw = pwd.getpwnam(frame_users.writer)

    def start_writer() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(c_writer), display_name, "3", str(H), str(W), group],
            user=pw.pw_uid,
            group=pw.pw_gid,
            extra_groups=[frame_users.gid],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    if first == "daemon":
        daemon = as_user(frame_users.daemon, take_frames, display_name, group, 3)
        _wait_until(lambda: all(p.exists() for p in _display_paths(display_name)), "the daemon made the files")
        writer = start_writer()
    else:
        writer = start_writer()
        _wait_until(lambda: all(p.exists() for p in _display_paths(display_name)), "the writer made the files")
        daemon = as_user(frame_users.daemon, take_frames, display_name, group, 3)
    frames, log = daemon.result()
    out, err = writer.communicate(timeout=WAIT * 2)
    assert (writer.returncode, out.strip()) == (0, "3 frames taken"), err
    rows, cols = np.mgrid[0:H, 0:W]
    assert len(frames) == 3, log
    for f in frames:
        np.testing.assert_array_equal(f[..., 0], rows)
        np.testing.assert_array_equal(f[..., 1], cols)
    for path in _display_paths(display_name):
        _assert_group_file(path, frame_users.daemon if first == "daemon" else frame_users.writer, group)


# -- squatters ----------------------------------------------------------------------------------------


def make_object(kind: str, name: str, mode: int, gid: int) -> None:
    """Run as another user: pre-create one of a display's names with ``mode`` (and group ``gid`` if >= 0)."""
    if kind in ("ready", "done"):
        sem_name = dict(zip(("ready", "done"), semaphore_names(name), strict=True))[kind]
        posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX, mode=mode, initial_value=0).close()
        path = semaphore_path(sem_name)
    elif kind == "fifo":
        path = frame_path(name)
        os.mkfifo(path, mode)
    elif kind == "symlink":  # pointing where the daemon would create a file for the squatter
        frame_path(name).symlink_to(_link_target(name))
        return
    else:
        path = frame_path(name) if kind == "frame" else lock_path(name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
        os.write(fd, b"\xab" * (H * W * 3 if kind == "frame" else 0))
        os.close(fd)
    if gid >= 0:
        os.chown(path, -1, gid)
    os.chmod(path, mode)


def _link_target(name: str) -> Path:
    return SHM / f"{name}.target"


def _object_path(kind: str, name: str) -> Path:
    if kind in ("ready", "done"):
        return semaphore_path(dict(zip(("ready", "done"), semaphore_names(name), strict=True))[kind])
    return lock_path(name) if kind == "lock" else frame_path(name)


def _snapshot(path: Path) -> tuple[int, int, int, int, bytes]:
    st = path.lstat()
    content = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
    return st.st_ino, st.st_uid, st.st_gid, st.st_mode, content


def _assert_starts_and_takes_frames(name: str, group: str) -> None:
    """Once the squatted name is gone, a daemon starts on the display and a writer's frame gets through."""
    reader = FrameReader(name, H, W, LOG, group)
    try:
        with FrameWriter(name, H, W, group=group) as w:
            w.frame[:] = 7
            w.ready.release()
            frame = reader.poll(5.0)
            assert frame is not None and (frame == 7).all()
    finally:
        reader.close()


@pytest.mark.parametrize("kind", ["lock", "frame", "ready", "done", "fifo", "symlink"])
def test_a_squatter_outside_the_group_is_refused_naming_owner_and_fix(
    kind: str, display_name: str, frame_users, as_user
) -> None:
    """A local user outside the group pre-creates a name with mode 0666: the daemon refuses to start, says
    whose it is and the command that removes it, and leaves it (and the lock) untouched."""
    as_user(frame_users.squatter, make_object, kind, display_name, 0o666, -1).result()
    path = _object_path(kind, display_name)
    before = _snapshot(path)
    try:
        with pytest.raises(FrameError) as refused:
            FrameReader(display_name, H, W, LOG, frame_users.group)
        assert not _link_target(display_name).exists()  # nothing made through a link
    finally:
        _link_target(display_name).unlink(missing_ok=True)
    message = str(refused.value)
    assert str(path) in message and f"rm {path}" in message, message
    mode = "0777" if kind == "symlink" else "0666"
    assert f"owned by {frame_users.squatter}:{frame_users.squatter} with mode {mode}" in message, message
    if kind in ("fifo", "symlink"):
        assert "not a regular file" in message, message
    assert _snapshot(path) == before  # not chmod'ed, chown'ed, resized or written
    path.unlink()
    _assert_starts_and_takes_frames(display_name, frame_users.group)  # the lock was let go


@pytest.mark.parametrize(
    ("kind", "mode", "in_group", "reason"),
    [
        ("frame", 0o666, True, "others may write it"),
        ("ready", 0o662, True, "others may write it"),
        ("frame", 0o660, False, "neither this user (root) nor the display's group skyfr-display owns it"),
        ("done", 0o660, False, "neither this user (root) nor the display's group skyfr-display owns it"),
    ],
)
def test_files_of_the_group_open_to_others_or_of_another_group_are_refused(
    kind: str, mode: int, in_group: bool, reason: str, display_name: str, frame_users, as_user
) -> None:
    """A group member's file others may write, or one of the member's own group, is refused like a squatter's."""
    gid = frame_users.gid if in_group else -1
    as_user(frame_users.writer, make_object, kind, display_name, mode, gid).result()
    path = _object_path(kind, display_name)
    before = _snapshot(path)
    with pytest.raises(FrameError, match=re.escape(reason)) as refused:
        FrameReader(display_name, H, W, LOG, frame_users.group)
    assert f"rm {path}" in str(refused.value)
    assert _snapshot(path) == before
    path.unlink()
    _assert_starts_and_takes_frames(display_name, frame_users.group)


def test_without_the_group_on_this_machine_only_own_files_are_trusted(display_name: str, frame_users, as_user) -> None:
    """[frame] group names no group here (a laptop): a file of another user is refused, saying so."""
    as_user(frame_users.writer, make_object, "frame", display_name, 0o660, frame_users.gid).result()
    with pytest.raises(FrameError, match="group 'skyfr-no-such-group' does not exist here"):
        FrameReader(display_name, H, W, LOG, "skyfr-no-such-group")
    frame_path(display_name).unlink()
    _assert_starts_and_takes_frames(display_name, "skyfr-no-such-group")


def test_files_a_group_member_made_are_trusted(display_name: str, frame_users, as_user) -> None:
    """The writer (a member) made everything, handed to the group with 0660: the daemon (root) takes it."""
    as_user(frame_users.writer, write_frames, display_name, frame_users.group, []).result()
    for path in _display_paths(display_name):
        _assert_group_file(path, frame_users.writer, frame_users.group)
    _assert_starts_and_takes_frames(display_name, frame_users.group)


def test_a_lock_held_by_another_process_names_owner_and_holder(display_name: str) -> None:
    first = FrameReader(display_name, H, W, LOG)
    try:
        with pytest.raises(AlreadyRunningError) as refused:
            FrameReader(display_name, H, W, LOG)
        message = str(refused.value)
        assert f"lock {lock_path(display_name)}, owned by root:" in message, message
        assert f"held by pid {os.getpid()}" in message and "stop it first" in message, message
    finally:
        first.close()


def test_a_writer_outside_the_group_is_told_whose_file_it_is_and_how_to_join(
    display_name: str, frame_users, as_user
) -> None:
    """The daemon's files are 0660 for its group: a writer outside it gets one clear error; the display
    goes on serving writers of the group."""
    reader = FrameReader(display_name, H, W, LOG, frame_users.group)
    try:
        refused = as_user(frame_users.squatter, write_frames, display_name, frame_users.group, [1])
        with pytest.raises(AssertionError) as failed:
            refused.result()
        message = str(failed.value)
        assert "raised FrameError" in message and f"{frame_path(display_name)}: cannot open" in message, message
        assert f"owned by root:{frame_users.group} with mode 0660" in message, message
        assert f"usermod -aG {frame_users.group} $USER" in message, message
        writer = as_user(frame_users.writer, write_frames, display_name, frame_users.group, [2])
        frame = reader.poll(WAIT)
        assert frame is not None and (frame == 2).all()
        assert writer.result() == [2]
    finally:
        reader.close()


def test_semaphores_a_squatter_makes_after_a_removal_are_refused_while_running(
    display_name: str, frame_users, as_user, caplog: pytest.LogCaptureFixture
) -> None:
    """The semaphores are removed under the running daemon and a squatter makes its own (0666) before the
    daemon re-creates them: the daemon logs whose they are and how to remove them, once, and takes no
    frame the squatter posts."""
    reader = FrameReader(display_name, H, W, LOG, frame_users.group)
    try:
        for sem_name in semaphore_names(display_name):
            posix_ipc.unlink_semaphore(sem_name)
        for kind in ("ready", "done"):
            as_user(frame_users.squatter, make_object, kind, display_name, 0o666, -1).result()
        ready = posix_ipc.Semaphore(semaphore_names(display_name)[0])
        ready.release()  # the squatter's frame
        with caplog.at_level(logging.INFO, "skyscreen.test"):

            def refused() -> list[str]:
                return [r.message for r in caplog.records if "sem." in r.message and "rm " in r.message]

            deadline = time.monotonic() + WAIT
            while len(refused()) < 2:
                assert time.monotonic() < deadline, f"never refused: {caplog.text}"
                assert reader.poll(0.1) is None
            later = time.monotonic() + 2.5  # two more of the daemon's once-a-second checks
            while time.monotonic() < later:
                assert reader.poll(0.1) is None
        ready.close()
        assert len(refused()) == 2, caplog.text  # one line for each, not one a second
        for kind in ("ready", "done"):
            path = _object_path(kind, display_name)
            assert any(f"rm {path}" in line and frame_users.squatter in line for line in refused()), refused()
    finally:
        reader.close()
