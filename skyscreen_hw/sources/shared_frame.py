"""The shared frame standard (BRIEF §2): a frame file in /dev/shm plus two POSIX named semaphores.

* Frame file ``/dev/shm/<name>.frame``: exactly ``height * width * 3`` bytes, row-major RGB, no header.
* Semaphores ``/<name>.ready`` and ``/<name>.done``, both starting at 0.
* Writer: write pixels, post ``ready``, wait (timed) for ``done``; then the buffer is the writer's again.
* Daemon: wait (timed) for ``ready``, copy the frame out, post ``done``.

``FrameReader`` is the daemon's side, ``FrameWriter`` the pattern program's (a numpy view + ``flush()``).
The reader copies with ``pread`` rather than through a mapping: a writer that truncates or re-creates the
file then costs a skipped frame, never a SIGBUS.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import logging
import mmap
import os
import time
from pathlib import Path
from types import TracebackType

import numpy as np
import posix_ipc

from skyscreen_hw.errors import AlreadyRunningError, FrameError

SHM_DIR = Path("/dev/shm")
MODE = 0o660
QUIET = 10.0  # seconds: a misbehaving writer's trouble is logged at most this often


def frame_path(name: str) -> Path:
    return SHM_DIR / f"{name}.frame"


def semaphore_names(name: str) -> tuple[str, str]:
    """The (ready, done) semaphore names of a display."""
    return f"/{name}.ready", f"/{name}.done"


def _open_semaphore(sem_name: str) -> posix_ipc.Semaphore:
    try:
        return posix_ipc.Semaphore(sem_name, posix_ipc.O_CREAT, mode=MODE, initial_value=0)
    except posix_ipc.PermissionsError:
        raise FrameError(
            f"semaphore {sem_name} (/dev/shm/sem.{sem_name[1:]}): permission denied"
            " (join the display's group, e.g. `usermod -aG skyscreen $USER`)"
        ) from None


def _drain(sem: posix_ipc.Semaphore) -> int:
    """Take every pending count of ``sem`` without waiting; return how many there were."""
    n = 0
    while True:
        try:
            sem.acquire(0)
        except posix_ipc.BusyError:
            return n
        n += 1


def _share_with_group(path: Path, group: str, log: logging.Logger) -> None:
    """Give ``path`` to ``group`` (if that group exists) with mode 0660, so the group's writers can use it."""
    try:
        gid = grp.getgrnam(group).gr_gid if group else -1
    except KeyError:
        gid = -1
    try:
        st = path.stat()
        if gid >= 0 and st.st_gid != gid:
            os.chown(path, -1, gid)
        if st.st_mode & 0o777 != MODE:  # only then: chmod of a file another user made needs CAP_FOWNER
            os.chmod(path, MODE)
    except OSError as exc:
        log.warning("cannot give %s to group %s with mode 0660: %s", path, group, exc)


class FrameReader:
    """The daemon's side of a shared frame: creates it, takes frames, paces writers.

    Holds an exclusive lock on ``/dev/shm/<name>.lock`` so a second daemon on the same display fails
    at start with a clear error instead of stealing frames.
    """

    def __init__(self, name: str, height: int, width: int, log: logging.Logger, group: str = "") -> None:
        self.name = name
        self.shape = (height, width, 3)
        self.size = height * width * 3
        self.path = frame_path(name)
        self.log = log
        self.group = group
        self._quiet_until: dict[str, float] = {}
        self._lock_fd = self._lock()
        try:
            self._fd = self._open_file(at_start=True)
            ready_name, done_name = semaphore_names(name)
            self.ready = _open_semaphore(ready_name)
            self.done = _open_semaphore(done_name)
        except BaseException:
            self._release_lock()
            raise
        for sem in (self.ready, self.done):
            stale = _drain(sem)
            if stale:
                log.info("drained %d stale count(s) from semaphore %s", stale, sem.name)
            _share_with_group(SHM_DIR / f"sem.{sem.name[1:]}", group, log)
        self.frame = np.zeros(self.shape, dtype=np.uint8)
        self.frames_taken = 0
        self.frames_skipped = 0

    def _lock(self) -> int:
        lock_path = SHM_DIR / f"{self.name}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, MODE)
        except OSError as exc:
            raise FrameError(f"{lock_path}: cannot open lock file: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunningError(
                f"display {self.name!r} is already served by another skyscreen-hw (lock {lock_path});"
                " stop it first, or give this one another [frame] name"
            ) from None
        return fd

    def _release_lock(self) -> None:
        os.close(self._lock_fd)

    def _open_file(self, at_start: bool = False) -> int:
        """Open (creating if needed) the frame file and make it exactly ``size`` bytes."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, MODE)
        except OSError as exc:
            raise FrameError(
                f"{self.path}: cannot open frame file: {exc.strerror}"
                " (is it owned by another user? remove it, or join its group)"
            ) from None
        actual = os.fstat(fd).st_size
        if actual != self.size:
            if at_start and actual:
                self.log.warning(
                    "%s was %d bytes, expected %d (%dx%d RGB): resized",
                    self.path,
                    actual,
                    self.size,
                    self.shape[0],
                    self.shape[1],
                )
            os.ftruncate(fd, self.size)
        _share_with_group(self.path, self.group, self.log)
        return fd

    def _check_file(self) -> None:
        """Re-open the frame file if a writer replaced it (a new inode) or removed it."""
        try:
            replaced = os.stat(self.path).st_ino != os.fstat(self._fd).st_ino
        except FileNotFoundError:
            replaced = True
        if replaced:
            self._log_rarely(logging.INFO, "replaced", "%s was replaced by a writer: re-opened", self.path)
            os.close(self._fd)
            self._fd = self._open_file()

    def _log_rarely(self, level: int, key: str, msg: str, *args: object) -> None:
        """Log ``msg`` unless the same kind of trouble was logged in the last QUIET seconds."""
        now = time.monotonic()
        if now >= self._quiet_until.get(key, 0.0):
            self.log.log(level, msg, *args)
            self._quiet_until[key] = now + QUIET

    def poll(self, timeout: float) -> np.ndarray | None:
        """Wait at most ``timeout`` seconds for a flushed frame; return it (a reused array) or None.

        None means no frame came, a signal interrupted the wait, or the frame file had the wrong size
        (the frame is skipped, logged once per incident, and the file restored to its size).
        """
        try:
            self.ready.acquire(max(timeout, 0.0))
        except (posix_ipc.BusyError, posix_ipc.SignalError):
            return None
        try:
            self._check_file()
            got = os.preadv(self._fd, [memoryview(self.frame).cast("B")], 0)
        finally:
            self.done.release()
        if got != self.size:
            self.frames_skipped += 1
            self._log_rarely(
                logging.WARNING,
                "short",
                "%s held %d of %d bytes (a writer truncated it?): frame skipped, file restored",
                self.path,
                got,
                self.size,
            )
            if os.fstat(self._fd).st_size < self.size:
                os.ftruncate(self._fd, self.size)
            return None
        self.frames_taken += 1
        return self.frame

    def close(self) -> None:
        """Close the semaphores and file and release the lock; the frame and semaphores stay for writers."""
        self.ready.close()
        self.done.close()
        os.close(self._fd)
        self._release_lock()


class FrameWriter:
    """A pattern program's side of the shared frame: ``frame`` is a numpy view, ``flush()`` shows it.

    ``FrameWriter()`` writes to the default ``skyscreen`` display. The environment variable
    ``WRITER_FILE`` (the original Skyscreen's) names the frame file instead; the display name is then the
    file's name without ``.frame``.

    >>> with FrameWriter() as w:
    ...     w.frame[:] = (255, 0, 0)
    ...     w.flush()
    """

    def __init__(self, name: str | None = None, height: int = 360, width: int = 288, timeout: float = 1.0) -> None:
        env_file = os.environ.get("WRITER_FILE")
        if env_file:
            self.path = Path(env_file)
            name = name or self.path.name.removesuffix(".frame")
        else:
            name = name or os.environ.get("SKYSCREEN_NAME") or "skyscreen"
            self.path = frame_path(name)
        self.name = name
        self.timeout = timeout
        size = height * width * 3
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, MODE)
        except OSError as exc:
            raise FrameError(
                f"{self.path}: cannot open frame file: {exc.strerror}"
                " (join the display's group, e.g. `usermod -aG skyscreen $USER`)"
            ) from None
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)  # grow only: writers never truncate
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.frame: np.ndarray = np.ndarray((height, width, 3), dtype=np.uint8, buffer=self._map)
        ready_name, done_name = semaphore_names(name)
        self.ready = _open_semaphore(ready_name)
        self.done = _open_semaphore(done_name)
        _drain(self.done)

    def flush(self, timeout: float | None = None) -> bool:
        """Hand the frame to the daemon and wait until it has been copied.

        Returns True once the daemon took the frame, False if no daemon took it within ``timeout``
        seconds (default: the writer's timeout) or a signal interrupted the wait; the frame is then
        withdrawn.
        """
        wait = self.timeout if timeout is None else timeout
        self.ready.release()
        try:
            self.done.acquire(wait)
            return True
        except (posix_ipc.BusyError, posix_ipc.SignalError):
            pass
        try:
            self.ready.acquire(0)  # withdraw the frame: no daemon took it
            return False
        except posix_ipc.BusyError:
            pass
        try:  # the daemon took it just now: its done is on the way
            self.done.acquire(wait)
        except (posix_ipc.BusyError, posix_ipc.SignalError):
            return False
        return True

    def close(self) -> None:
        """Unmap the frame and close the semaphores (they and the file stay for the daemon)."""
        self.frame = np.empty((0, 0, 3), dtype=np.uint8)
        with contextlib.suppress(BufferError):
            self._map.close()
        self.ready.close()
        self.done.close()

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
