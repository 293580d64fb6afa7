"""The shared frame standard (docs/frame-standard.md): a frame file in /dev/shm plus two POSIX named semaphores.

* Frame file ``/dev/shm/<name>.frame``: exactly ``height * width * 3`` bytes, row-major RGB, no header.
* Semaphores ``/<name>.ready`` and ``/<name>.done`` (glibc: ``/dev/shm/sem.<name>.ready``, ``.done``),
  both starting at 0.
* Writer: write pixels, post ``ready``, wait (timed) for ``done``; then the buffer is the writer's again.
* Daemon: wait (timed) for ``ready``, copy the frame out, post ``done``.

``FrameReader`` is the daemon's side, ``FrameWriter`` the pattern program's (a numpy view + ``flush()``).
The reader copies with ``pread`` rather than through a mapping: a writer that truncates or re-creates the
file then costs a skipped frame, never a SIGBUS.

Everything here opens an existing file or semaphore *without* O_CREAT and creates one only when it is
missing (exclusively, fully made before it appears under its name): with ``fs.protected_regular`` (1 on
most distributions, 2 on Debian and Raspberry Pi OS), opening with O_CREAT a file in the sticky /dev/shm
that another user owns fails with EACCES, even for members of the file's group, even for root.

The daemon trusts only what it owns itself or what belongs to the display's group with no write
permission for others; anything else (a "squatter" pre-creating the names) is refused with the command
that removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import logging
import mmap
import os
import pwd
import stat
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np
import posix_ipc

from skyscreen_hw.errors import AlreadyRunningError, FrameError

SHM_DIR = Path("/dev/shm")
MODE = 0o660
QUIET = 10.0  # seconds: a misbehaving writer's trouble is logged at most this often
CHECK_EVERY = 1.0  # seconds between the daemon's checks that its files and semaphores are still in place
CREATE_ATTEMPTS = 5  # open-or-create rounds before giving up on a name that keeps appearing and vanishing
DEFAULT_NAME = "skyscreen"
DEFAULT_GROUP = "skyscreen"
DEFAULT_HEIGHT = 360
DEFAULT_WIDTH = 288
WRITER_TIMEOUT = 1.0  # seconds a writer waits for the daemon to take a frame
PROC_LOCKS = Path("/proc/locks")
FRAME_SUFFIX = ".frame"  # the v1 frame file, /dev/shm/<name>.frame
LOCK_SUFFIX = ".lock"  # the daemon's lock, after the frame's name (v2: /dev/shm/<name>.frames.lock)

Ident = tuple[int, int]  # (st_dev, st_ino): which file a name stands for


def shm_path(name: str, suffix: str) -> Path:
    """``/dev/shm/<name><suffix>``: a display's frame file (``.frame``, ``.frames``) or its daemon's lock."""
    return SHM_DIR / f"{name}{suffix}"


def semaphore_pair(stem: str, second: str) -> tuple[str, str]:
    """The semaphore names ``/<stem>.ready`` and ``/<stem>.<second>``: writers post the first, the daemon the second."""
    return f"/{stem}.ready", f"/{stem}.{second}"


def frame_path(name: str) -> Path:
    return shm_path(name, FRAME_SUFFIX)


def lock_path(name: str) -> Path:
    return shm_path(name, LOCK_SUFFIX)


def semaphore_names(name: str) -> tuple[str, str]:
    """The (ready, done) semaphore names of a display."""
    return semaphore_pair(name, "done")


def semaphore_path(sem_name: str) -> Path:
    """Where glibc keeps a named semaphore: ``/x.ready`` is ``/dev/shm/sem.x.ready``."""
    return SHM_DIR / f"sem.{sem_name.lstrip('/')}"


# -- ownership ----------------------------------------------------------------------------------------


def _group_id(group: str) -> int | None:
    """The gid of ``group``, or None if it is empty or does not exist on this machine."""
    if not group:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def _own_group_id(group: str) -> int | None:
    """The gid of ``group`` if this process may hand its files to it (it is root or a member), else None."""
    gid = _group_id(group)
    if gid is None or os.geteuid() == 0 or gid == os.getegid() or gid in os.getgroups():
        return gid
    return None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _owner(st: os.stat_result) -> str:
    return f"owned by {_user_name(st.st_uid)}:{_group_name(st.st_gid)} with mode {stat.S_IMODE(st.st_mode):04o}"


def _untrusted_reason(st: os.stat_result, group: str, gid: int | None) -> str | None:
    """Why the daemon must not use a file with this stat, or None if it may.

    Trusted: a regular file owned by this process's user, or one belonging to the display's group with no
    write permission for others (only the group's members and root can give a file to the group, and they
    may draw anyway). Anything else may have been made by a local user outside the group to draw on the
    display or to stop the daemon.
    """
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_uid == os.geteuid():
        return None
    me = _user_name(os.geteuid())
    if gid is None:
        missing = f"; group {group!r} does not exist here" if group else ""
        return f"not this user's ({me}){missing}"
    if st.st_gid != gid:
        return f"neither this user ({me}) nor the display's group {group} owns it"
    if st.st_mode & stat.S_IWOTH:
        return "others may write it"
    return None


def _verify(path: Path, what: str, st: os.stat_result, group: str, gid: int | None) -> None:
    """Raise FrameError naming the owner and the fix unless the daemon may trust ``path`` (see above)."""
    reason = _untrusted_reason(st, group, gid)
    if reason is not None:
        raise FrameError(
            f"{path}: the {what} is {_owner(st)} ({reason}): another user could draw on the display or"
            f" block it; remove it (as its owner or root): rm {path}"
        )


def _permission_error(path: Path, what: str, group: str) -> FrameError:
    """A clear error for a file or semaphore this user may not open, naming its owner."""
    try:
        owner = f" ({_owner(path.lstat())})"
    except OSError:
        owner = ""
    return FrameError(
        f"{path}: cannot open the {what}: permission denied{owner}; join the display's group"
        f" (`usermod -aG {group or DEFAULT_GROUP} $USER`, then log in again), or remove it if it is not"
        f" the display's: rm {path}"
    )


def _hand_over(path: Path, st: os.stat_result, gid: int | None, log: logging.Logger | None, fd: int = -1) -> None:
    """Give a file this process owns to ``gid`` with mode 0660, so the group's writers and daemon can use it.

    Files of other users are left alone (changing them needs privileges the service does not have).
    """
    if st.st_uid != os.geteuid():
        return
    try:
        if gid is not None and st.st_gid != gid:
            if fd >= 0:
                os.fchown(fd, -1, gid)
            else:
                os.chown(path, -1, gid, follow_symlinks=False)
        if stat.S_IMODE(st.st_mode) != MODE:
            if fd >= 0:
                os.fchmod(fd, MODE)
            else:
                os.chmod(path, MODE)
    except OSError as exc:
        if log is not None:
            to = "" if gid is None else f" to group {_group_name(gid)}"
            log.warning("cannot give %s%s with mode 0660: %s", path, to, exc)


def _ident(path: Path) -> Ident | None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _fd_ident(fd: int) -> Ident:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


# -- files --------------------------------------------------------------------------------------------


def _create_whole(path: Path, size: int, gid: int | None, header: bytes = b"", replace: bool = False) -> int | None:
    """Create ``path`` at ``size`` bytes starting with ``header``, mode 0660, group ``gid``: made under a
    temporary name, then linked in, or renamed over the file there (``replace``).

    Nobody ever sees it half made (empty, or with the creator's umask). Returns the open fd, or None if
    ``path`` appeared meanwhile (linking; then open that one).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, MODE)
    try:
        os.ftruncate(fd, size)
        if header:
            os.pwrite(fd, header, 0)
        if gid is not None:
            with contextlib.suppress(OSError):  # not a member after all: the group stays the creator's
                os.fchown(fd, -1, gid)
        os.fchmod(fd, MODE)  # the umask took bits off
        if replace:
            os.rename(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return fd


def _open_or_create(
    path: Path, size: int, gid: int | None, what: str, group: str, header: bytes = b"", name_owner: bool = True
) -> int:
    """Open ``path`` read-write without O_CREAT; create it whole (``size`` bytes, starting with ``header``)
    only if missing; return the fd. ``name_owner``: say whose a path that is no regular file is."""
    for _ in range(CREATE_ATTEMPTS):
        try:
            return os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            pass
        except PermissionError:
            raise _permission_error(path, what, group) from None
        except OSError as exc:  # a symbolic link (O_NOFOLLOW), a socket, a directory...
            owner = ""
            if name_owner:
                with contextlib.suppress(OSError):
                    owner = f", {_owner(path.lstat())}"
            raise FrameError(
                f"{path}: cannot open the {what}: {exc.strerror} (not a regular file{owner});"
                f" remove it (as its owner or root): rm {path}"
            ) from None
        try:
            fd = _create_whole(path, size, gid, header)
        except OSError as exc:
            raise FrameError(f"{path}: cannot create the {what}: {exc.strerror}") from None
        if fd is not None:
            return fd
    raise FrameError(f"{path}: the {what} keeps appearing and vanishing; is something removing it?")


# -- semaphores ---------------------------------------------------------------------------------------


def _open_semaphore(sem_name: str, gid: int | None, group: str) -> tuple[posix_ipc.Semaphore, bool]:
    """Open an existing semaphore without O_CREAT; create it (O_CREAT | O_EXCL, value 0) only if missing.

    Returns (semaphore, created); a created one is handed to ``gid`` with mode 0660.
    """
    path = semaphore_path(sem_name)
    for _ in range(CREATE_ATTEMPTS):
        try:
            return posix_ipc.Semaphore(sem_name), False
        except posix_ipc.ExistentialError:
            pass
        except posix_ipc.PermissionsError:
            raise _permission_error(path, f"semaphore {sem_name}", group) from None
        try:
            sem = posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX, mode=MODE, initial_value=0)
        except posix_ipc.ExistentialError:
            continue
        except posix_ipc.PermissionsError:
            raise _permission_error(path, f"semaphore {sem_name}", group) from None
        with contextlib.suppress(OSError):
            _hand_over(path, path.lstat(), gid, None)
        return sem, True
    raise FrameError(f"{path}: the semaphore {sem_name} keeps appearing and vanishing; is something removing it?")


def _drain(sem: posix_ipc.Semaphore) -> int:
    """Take every pending count of ``sem`` without waiting; return how many there were."""
    n = 0
    while True:
        try:
            sem.acquire(0)
        except posix_ipc.BusyError:
            return n
        n += 1


def _lock_holder(ident: Ident) -> str:
    """' by pid N' for the process holding a flock on the file ``ident``, from /proc/locks, or ''."""
    try:
        lines = PROC_LOCKS.read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(ident[1]):
            return f" by pid {fields[4]}"
    return ""


def take_display_lock(path: Path, name: str, group: str, gid: int | None, log: logging.Logger) -> int:
    """Open (or create) the lock file ``path``, verify its owner and lock it exclusively; return its fd.

    AlreadyRunningError, naming the lock's owner and holder, when another daemon serves display ``name``.
    """
    fd = _open_or_create(path, 0, gid, "lock file", group)
    try:
        st = os.fstat(fd)
        _verify(path, "lock file", st, group, gid)
        _hand_over(path, st, gid, log, fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunningError(
                f"display {name!r} is already served by another skyscreen-hw (lock {path},"
                f" {_owner(st)}, held{_lock_holder((st.st_dev, st.st_ino)) or ' by another process'});"
                " stop it first, or give this one another [frame] name"
            ) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _semaphore_moved(sem: posix_ipc.Semaphore, idents: dict[str, Ident | None]) -> bool:
    """Whether the named semaphore ``sem`` was removed or replaced since ``idents`` noted which file it was."""
    before = idents.get(sem.name)
    return before is None or _ident(semaphore_path(sem.name)) != before


class DaemonReader:
    """What the daemon's sides of the v1 and v2 frames share: the display's lock, the frame file and two
    semaphores, each opened without O_CREAT (created whole only if missing), verified and handed to the
    display's group; noticing them removed or replaced; logging a writer's trouble rarely.

    Subclasses name the frame file in messages (``file_what``), the attributes of their semaphores
    (``semaphore_attrs``: ``ready`` and the daemon's), say how the file is made (``_new_file_header``) and
    fitted to the geometry (``_fit_size``), and set what those need before calling ``__init__``.
    """

    file_what = "frame file"
    semaphore_attrs: tuple[str, str] = ("ready", "done")
    name_owner = True  # an open refused because the path is no regular file names the path's owner

    ready: posix_ipc.Semaphore

    def __init__(
        self,
        name: str,
        path: Path,
        lock: Path,
        semaphores: tuple[str, str],
        file_bytes: int,
        log: logging.Logger,
        group: str,
    ) -> None:
        self.name = name
        self.path = path
        self.lock_path = lock
        self.file_bytes = file_bytes
        self.log = log
        self.group = group
        self._gid = _group_id(group)
        self._quiet_until: dict[str, float] = {}
        self._sem_ident: dict[str, Ident | None] = {}
        with contextlib.ExitStack() as undo:
            self._lock_fd = take_display_lock(lock, name, group, self._gid, log)
            undo.callback(os.close, self._lock_fd)
            self._fd = self._open_file(at_start=True)
            undo.callback(lambda: os.close(self._fd))
            for attr, sem_name in zip(self.semaphore_attrs, semaphores, strict=True):
                sem, _ = self._open_semaphore(sem_name)
                setattr(self, attr, sem)
                undo.callback(sem.close)
            undo.pop_all()

    # -- opening, verified ----------------------------------------------------------------------------

    def _new_file_header(self) -> bytes:
        """What a frame file this daemon makes starts with (the rest is zeros)."""
        return b""

    def _fit_size(self, fd: int, size: int, at_start: bool) -> int:
        """Make the open frame file ``fd`` of ``size`` bytes exactly ``file_bytes``; the fd to use from now on."""
        raise NotImplementedError

    def _open_file(self, at_start: bool = False) -> int:
        """Open (creating if needed) the frame file, verify its owner, make it exactly ``file_bytes``."""
        fd = _open_or_create(
            self.path, self.file_bytes, self._gid, self.file_what, self.group, self._new_file_header(), self.name_owner
        )
        try:
            st = os.fstat(fd)
            _verify(self.path, self.file_what, st, self.group, self._gid)
            if st.st_size != self.file_bytes:
                fd = self._fit_size(fd, st.st_size, at_start)
                st = os.fstat(fd)
            _hand_over(self.path, st, self._gid, self.log, fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_semaphore(self, sem_name: str) -> tuple[posix_ipc.Semaphore, bool]:
        """Open or create a semaphore, verify its owner and remember which file it is; (sem, created)."""
        path = semaphore_path(sem_name)
        sem, created = _open_semaphore(sem_name, self._gid, self.group)
        try:
            st = path.lstat()
            _verify(path, f"semaphore {sem_name}", st, self.group, self._gid)
            _hand_over(path, st, self._gid, self.log)
        except FileNotFoundError:  # removed between opening and looking: the next check re-creates it
            self._sem_ident[sem_name] = None
            return sem, created
        except BaseException:
            sem.close()
            raise
        self._sem_ident[sem_name] = (st.st_dev, st.st_ino)
        return sem, created

    # -- staying in place -----------------------------------------------------------------------------

    def _reopen_moved_file(self) -> str | None:
        """Re-open (re-creating) the frame file if it was removed or replaced: "removed" or "replaced", or None
        if it is still the one open."""
        ident = _ident(self.path)
        if ident == _fd_ident(self._fd):
            return None
        fd = self._open_file()
        os.close(self._fd)
        self._fd = fd
        return "removed" if ident is None else "replaced"

    def _reopen_moved_semaphores(self) -> tuple[list[str], bool]:
        """Re-open or re-create each semaphore that was removed or replaced (trouble logged rarely); the paths
        of those re-opened, and whether this daemon created any of them."""
        changed, created = [], False
        for attr in self.semaphore_attrs:
            old: posix_ipc.Semaphore = getattr(self, attr)
            if not _semaphore_moved(old, self._sem_ident):
                continue
            try:
                sem, made = self._open_semaphore(old.name)
            except FrameError as exc:
                self._log_rarely(logging.ERROR, f"sem {attr}", "%s", exc)
                continue
            setattr(self, attr, sem)
            old.close()
            changed.append(str(semaphore_path(old.name)))
            created = created or made
        return changed, created

    def _log_rarely(self, level: int, key: str, msg: str, *args: object) -> None:
        """Log ``msg`` unless the same kind of trouble was logged in the last QUIET seconds."""
        now = time.monotonic()
        if now >= self._quiet_until.get(key, 0.0):
            self.log.log(level, msg, *args)
            self._quiet_until[key] = now + QUIET

    def close(self) -> None:
        """Close the semaphores and file and release the lock; the frame and semaphores stay for writers."""
        for attr in self.semaphore_attrs:
            getattr(self, attr).close()
        os.close(self._fd)
        os.close(self._lock_fd)


class FrameReader(DaemonReader):
    """The daemon's side of a shared frame: creates it, takes frames, paces writers.

    Holds an exclusive lock on ``/dev/shm/<name>.lock`` so a second daemon on the same display fails
    at start with a clear error instead of stealing frames. Refuses files and semaphores that neither its
    user nor the display's ``group`` owns (see ``_untrusted_reason``), and about once a second checks that
    its frame file and semaphores are still the ones it opened, re-creating them if they were removed.
    """

    done: posix_ipc.Semaphore

    def __init__(self, name: str, height: int, width: int, log: logging.Logger, group: str = "") -> None:
        self.shape = (height, width, 3)
        self.size = height * width * 3
        super().__init__(name, frame_path(name), lock_path(name), semaphore_names(name), self.size, log, group)
        for sem in (self.ready, self.done):
            stale = _drain(sem)
            if stale:
                log.info("drained %d stale count(s) from semaphore %s", stale, sem.name)
        self.frame = np.zeros(self.shape, dtype=np.uint8)
        self.frames_taken = 0
        self.frames_skipped = 0
        self._next_check = time.monotonic() + CHECK_EVERY

    def _fit_size(self, fd: int, size: int, at_start: bool) -> int:
        if at_start and size:
            self.log.warning(
                "%s was %d bytes, expected %d (%dx%d RGB): resized",
                self.path,
                size,
                self.size,
                self.shape[0],
                self.shape[1],
            )
        os.ftruncate(fd, self.size)
        return fd

    # -- staying in place -----------------------------------------------------------------------------

    def _check_file(self) -> None:
        """Re-open the frame file if a writer replaced it (a new inode) or it was removed."""
        moved = self._reopen_moved_file()
        if moved == "removed":
            self._log_rarely(logging.WARNING, "removed", "%s was removed while running: re-created", self.path)
        elif moved == "replaced":
            self._log_rarely(logging.INFO, "replaced", "%s was replaced by a writer: re-opened", self.path)

    def _check_in_place(self) -> None:
        """About once a second: re-open or re-create the frame file and semaphores if they were removed.

        logind's RemoveIPC=yes removes a user's /dev/shm files and semaphores when they log out; without
        this, every later writer would post on new semaphores nobody waits on.
        """
        try:
            self._check_file()
        except FrameError as exc:
            self._log_rarely(logging.ERROR, "file", "%s", exc)
        changed, created = self._reopen_moved_semaphores()
        if changed:
            self.log.warning(
                "%s removed while running (logind's RemoveIPC=yes does that when the user who made them logs"
                " out): %s, writers reach the display again",
                " and ".join(changed),
                "re-created" if created else "re-opened the new one(s) a writer made",
            )

    # -- frames ---------------------------------------------------------------------------------------

    def poll(self, timeout: float) -> np.ndarray | None:
        """Wait at most ``timeout`` seconds for a flushed frame; return it (``self.frame``) or None.

        None means no frame came, a signal interrupted the wait, or the frame file had the wrong size or
        could not be re-opened (the frame is skipped, logged once per incident, and the file restored).
        Extra ``ready`` counts (a writer posting without waiting for ``done``) are drained, so every
        ``done`` answers exactly one frame and correct writers stay in step.
        """
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + CHECK_EVERY
            self._check_in_place()
        try:
            self.ready.acquire(max(timeout, 0.0))
        except (posix_ipc.BusyError, posix_ipc.SignalError):
            return None
        excess = _drain(self.ready) if self.ready.value else 0  # the value is a plain read: no exception
        if excess:
            self._log_rarely(
                logging.WARNING,
                "excess",
                "%d extra post(s) on semaphore %s (a writer posting without waiting for %s, or two writers"
                " at once?): drained, one frame taken",
                excess,
                self.ready.name,
                self.done.name,
            )
        try:
            if os.fstat(self._fd).st_nlink == 0:  # removed, or a writer renamed a new file over it
                self._check_file()
            got = os.preadv(self._fd, (self.frame,), 0)
        except FrameError as exc:
            self.frames_skipped += 1
            self._log_rarely(logging.ERROR, "file", "%s: frame skipped", exc)
            return None
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


class WriterSide:
    """What the pattern programs' sides of the v1 and v2 frames share: a mapped frame file and two semaphores
    (``ready`` and the daemon's, ``semaphore_attrs``), opened again when the daemon made them anew; closing
    as a context manager.

    Subclasses say how a semaphore is opened (``_open_semaphore``) and the frame file unmapped (``_unmap``).
    """

    semaphore_attrs: tuple[str, str] = ("ready", "done")

    ready: posix_ipc.Semaphore

    def _open_semaphore(self, sem_name: str, deadline: float) -> posix_ipc.Semaphore:
        """Open the semaphore ``sem_name`` (waiting for it at most until ``deadline``), noting which file it is."""
        raise NotImplementedError

    def _unmap(self) -> None:
        """Let go of the mapped frame file."""
        raise NotImplementedError

    def _open_semaphores(self, sem_names: tuple[str, str], deadline: float) -> None:
        """Open the writer's semaphores; if one cannot be, close those opened and unmap the frame file."""
        self._sem_ident: dict[str, Ident | None] = {}
        with contextlib.ExitStack() as undo:
            undo.callback(self._unmap)
            for attr, sem_name in zip(self.semaphore_attrs, sem_names, strict=True):
                sem = self._open_semaphore(sem_name, deadline)
                setattr(self, attr, sem)
                undo.callback(sem.close)
            undo.pop_all()

    def _check_semaphores(self) -> None:
        """If a semaphore was removed or replaced (the daemon made it anew), open the current one."""
        for attr in self.semaphore_attrs:
            old: posix_ipc.Semaphore = getattr(self, attr)
            if _semaphore_moved(old, self._sem_ident):
                setattr(self, attr, self._open_semaphore(old.name, time.monotonic()))
                old.close()

    def close(self) -> None:
        """Unmap the frame and close the semaphores (they and the file stay for the daemon)."""
        self._unmap()
        for attr in self.semaphore_attrs:
            getattr(self, attr).close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class FrameWriter(WriterSide):
    """A pattern program's side of the shared frame: ``frame`` is a numpy view, ``flush()`` shows it.

    ``FrameWriter()`` writes to the display named by ``SKYSCREEN_NAME`` (default ``skyscreen``). The
    environment variable ``WRITER_FILE`` (the original Skyscreen's) names the frame file instead; the
    display name is then the file's name without ``.frame``.

    The frame file must be ``height * width * 3`` bytes: a file of another size belongs to a display of
    another geometry and is a FrameError naming both. A missing file (no daemon yet) is created at this
    writer's size, handed to ``group`` (if this user is a member) with mode 0660. Always draw into
    ``w.frame``: if the file is removed or replaced, ``flush()`` maps the new one and ``frame`` changes.

    >>> with FrameWriter() as w:
    ...     w.frame[:] = (255, 0, 0)
    ...     w.flush()
    """

    done: posix_ipc.Semaphore

    def __init__(
        self,
        name: str | None = None,
        height: int = DEFAULT_HEIGHT,
        width: int = DEFAULT_WIDTH,
        timeout: float = WRITER_TIMEOUT,
        group: str = DEFAULT_GROUP,
    ) -> None:
        env_file = os.environ.get("WRITER_FILE")
        if env_file:
            self.path = Path(env_file)
            name = name or self.path.name.removesuffix(FRAME_SUFFIX)
        else:
            name = name or os.environ.get("SKYSCREEN_NAME") or DEFAULT_NAME
            self.path = frame_path(name)
        self.name = name
        self.timeout = timeout
        self.group = group
        self.shape = (height, width, 3)
        self.size = height * width * 3
        self._gid = _own_group_id(group)
        self._map, self._file = self._map_file()
        self.frame: np.ndarray = np.ndarray(self.shape, dtype=np.uint8, buffer=self._map)
        self._open_semaphores(semaphore_names(name), time.monotonic())
        _drain(self.done)

    def _map_file(self) -> tuple[mmap.mmap, Ident]:
        """Open (or create) the frame file, check its size against this writer's geometry, and map it."""
        fd = _open_or_create(self.path, self.size, self._gid, "frame file", self.group)
        try:
            st = os.fstat(fd)
            if st.st_size == 0:  # created by someone who has not sized it yet: growing never hurts
                os.ftruncate(fd, self.size)
            elif st.st_size != self.size:
                raise FrameError(
                    f"{self.path} is {st.st_size} bytes, but this writer expects {self.shape[0]}x{self.shape[1]}"
                    f" RGB = {self.size} bytes: the display has another geometry; give the writer the display's"
                    " height and width (FrameWriter(name, height, width); `skyscreen-hw demo` takes them from"
                    " the daemon's configuration, --config)"
                )
            return mmap.mmap(fd, self.size), (st.st_dev, st.st_ino)
        finally:
            os.close(fd)

    def _open_semaphore(self, sem_name: str, deadline: float) -> posix_ipc.Semaphore:
        """Open or create the semaphore (a v1 writer makes a missing one itself: it never waits for ``deadline``)."""
        sem, _ = _open_semaphore(sem_name, self._gid, self.group)
        self._sem_ident[sem_name] = _ident(semaphore_path(sem_name))
        return sem

    def _check_file(self) -> None:
        """If the frame file was removed or replaced, map the current one and carry the pixels over."""
        if _ident(self.path) == self._file:
            return
        mapping, ident = self._map_file()
        frame: np.ndarray = np.ndarray(self.shape, dtype=np.uint8, buffer=mapping)
        frame[:] = self.frame
        self._unmap()
        self._map, self._file, self.frame = mapping, ident, frame

    def flush(self, timeout: float | None = None) -> bool:
        """Hand the frame to the daemon and wait until it has been copied.

        Returns True once the daemon took the frame, False if no daemon took it within ``timeout``
        seconds (default: the writer's timeout) or a signal interrupted the wait; the frame is then
        withdrawn. Raises FrameError if the frame file was replaced by one of another geometry.
        """
        wait = self.timeout if timeout is None else timeout
        self._check_file()
        _drain(self.done)  # a `done` left from an earlier flush that gave up must not answer this one
        self.ready.release()
        try:
            self.done.acquire(wait)
            return True
        except (posix_ipc.BusyError, posix_ipc.SignalError):
            pass
        try:
            self.ready.acquire(0)  # withdraw the frame: no daemon took it
        except posix_ipc.BusyError:
            try:  # the daemon took it just now: its done is on the way
                self.done.acquire(wait)
                return True
            except (posix_ipc.BusyError, posix_ipc.SignalError):
                pass
        self._check_semaphores()  # nobody answered: were they removed under us?
        return False

    def _unmap(self) -> None:
        self.frame = np.empty((0, 0, 3), dtype=np.uint8)
        with contextlib.suppress(BufferError):  # someone still holds a view: the mapping goes with it
            self._map.close()
