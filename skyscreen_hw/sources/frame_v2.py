"""The shared frame v2 (docs/frame-standard.md): buffered and interlaced frames through ``/dev/shm/<name>.frames``.

* The file: a 64-byte header, then ``slots`` frame slots of ``height * width * 3`` bytes (row-major RGB).
  Header, little-endian: 0 magic ``SKYFRAME``; 8 u32 version 2; 12 u32 width; 16 u32 height; 20 u32
  slots; 24 u32 flags (bit 0: interlaced), set by the writer; 28 u32 reserved; 32 u64 ``written``
  (frames posted, only writers change it); 40 u64 ``taken`` (frames taken, only the daemon changes it);
  48 16 bytes reserved.
* Semaphores ``/<name>.frames.ready`` (frames posted, not yet taken; starts at 0) and
  ``/<name>.frames.free`` (free slots; starts at ``slots``).
* Writer, one at a time (it holds an exclusive ``flock`` on the .frames file while it writes):
  ``sem_timedwait(free)``; fill slot ``written % slots``; ``written += 1``; ``sem_post(ready)``.
* Daemon, at most once a frame period: take ``ready``; copy slot ``taken % slots``; ``taken += 1``;
  ``sem_post(free)``. Interlaced frame ``n`` carries only the rows ``r % 2 == n % 2``.

``FrameReaderV2`` is the daemon's side: it alone creates the file (it sets geometry and slots) and
(re)initialises header, counters and semaphores at start, and reconciles them when a writer died
mid-handshake. It reads with ``pread`` (a truncated file costs a skipped frame, never a SIGBUS), checks
after each copy that no writer overran the slot, and never shows a frame it could not read whole.
``FrameWriterV2`` is a pattern program's side; ``SharedFrameV2Source`` the daemon's mixer source.

Permissions are those of the v1 frame (skyscreen_hw/sources/shared_frame.py): existing files and
semaphores opened without O_CREAT (fs.protected_regular), created whole, handed to the display's group,
squatters refused, and files or semaphores removed while running re-created.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import mmap
import os
import platform
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import posix_ipc

from skyscreen_hw.config import FrameConfig
from skyscreen_hw.errors import FrameError
from skyscreen_hw.mixer import Mixer
from skyscreen_hw.sources.frame_source import PacedFrameSource
from skyscreen_hw.sources.shared_frame import (
    CHECK_EVERY,
    DEFAULT_GROUP,
    DEFAULT_NAME,
    FRAME_SUFFIX,
    LOCK_SUFFIX,
    WRITER_TIMEOUT,
    DaemonReader,
    Ident,
    WriterSide,
    _create_whole,
    _drain,
    _fd_ident,
    _ident,
    _lock_holder,
    _permission_error,
    semaphore_pair,
    semaphore_path,
    shm_path,
)

MAGIC = b"SKYFRAME"
VERSION = 2
HEADER = struct.Struct("<8sIIIIIIQQ16s")  # magic, version, width, height, slots, flags, reserved, written, taken
HEADER_SIZE = HEADER.size  # 64
WRITTEN_AT, TAKEN_AT, FLAGS_AT = 32, 40, 24
COUNTER = struct.Struct("<Q")
FLAGS = struct.Struct("<I")
INTERLACED = 1  # flags bit 0
RECONCILE_EVERY = 0.25  # seconds between the daemon's looks at the counters (a dead writer costs < 1 s)
LOCK_RETRY = 0.005  # seconds between a writer's tries for the writer lock
WAIT_FOR_DAEMON = 2.0  # seconds a writer waits for a daemon to make the file (both starting at once)
FRAMES_SUFFIX = ".frames"  # the v2 frame file, /dev/shm/<name>.frames


def frames_path(name: str) -> Path:
    return shm_path(name, FRAMES_SUFFIX)


def frames_lock_path(name: str) -> Path:
    """The daemon's lock on the v2 frame (writers lock the .frames file itself, see FrameWriterV2)."""
    return shm_path(name, FRAMES_SUFFIX + LOCK_SUFFIX)


def frames_semaphore_names(name: str) -> tuple[str, str]:
    """The (ready, free) semaphore names of a display's v2 frame."""
    return semaphore_pair(f"{name}{FRAMES_SUFFIX}", "free")


GLIBC = platform.libc_ver()[0] == "glibc"
POINTER_BYTES = struct.calcsize("P")


def semaphore_waiters(sem_name: str) -> int | None:
    """How many threads wait on a named semaphore, read from glibc's ``sem_t`` in /dev/shm; None where that
    cannot be known (another C library, no file). 64-bit glibc keeps ``value | nwaiters << 32`` in its first
    8 bytes, 32-bit glibc ``nwaiters`` at byte 12."""
    if not GLIBC:
        return None
    try:
        data = semaphore_path(sem_name).read_bytes()
    except OSError:
        return None
    if POINTER_BYTES == 8 and len(data) >= 8:
        return struct.unpack_from("=Q", data)[0] >> 32
    if POINTER_BYTES == 4 and len(data) >= 16:
        return struct.unpack_from("=I", data, 12)[0]
    return None


def remove_frames(name: str) -> None:
    """Remove a display's v2 file, lock and semaphores, whatever state they are in (tests, tools)."""
    for path in (frames_path(name), frames_lock_path(name)):
        path.unlink(missing_ok=True)
    for sem in frames_semaphore_names(name):
        with contextlib.suppress(posix_ipc.ExistentialError):
            posix_ipc.unlink_semaphore(sem)


@dataclass(frozen=True)
class Header:
    """The 64-byte header of a .frames file."""

    magic: bytes
    version: int
    width: int
    height: int
    slots: int
    flags: int = 0
    written: int = 0
    taken: int = 0
    reserved: bytes = bytes(4 + 16)

    @classmethod
    def of(cls, data: bytes) -> Header:
        magic, version, width, height, slots, flags, res1, written, taken, res2 = HEADER.unpack_from(data)
        return cls(magic, version, width, height, slots, flags, written, taken, struct.pack("<I", res1) + res2)

    @classmethod
    def new(cls, height: int, width: int, slots: int) -> Header:
        return cls(MAGIC, VERSION, width, height, slots)

    def pack(self) -> bytes:
        res1 = struct.unpack("<I", self.reserved[:4])[0]
        return HEADER.pack(
            self.magic, self.version, self.width, self.height, self.slots, self.flags, res1, self.written,
            self.taken, self.reserved[4:],
        )  # fmt: skip

    @property
    def frame_bytes(self) -> int:
        return self.height * self.width * 3

    @property
    def file_bytes(self) -> int:
        return HEADER_SIZE + self.slots * self.frame_bytes

    def problem(self, path: Path) -> str | None:
        """Why this is not a v2 header a writer may use, or None."""
        if self.magic == bytes(len(MAGIC)):
            return f"{path}: not made yet (its header is empty): is a daemon starting?"
        if self.magic != MAGIC or self.version != VERSION:
            return (
                f"{path}: not a shared frame v2 file: magic {self.magic!r}, version {self.version} (expected"
                f" {MAGIC!r}, {VERSION}); something else wrote it, or the daemon is of another version:"
                " restart skyscreen-hw to make it anew"
            )
        if not (self.width and self.height and self.slots):
            return f"{path}: the header says {self.height}x{self.width} with {self.slots} slots: not usable"
        return None


class FrameReaderV2(DaemonReader):
    """The daemon's side of the v2 frame: makes it, takes frames in order, reconciles counts after a crash.

    Holds an exclusive lock on ``/dev/shm/<name>.frames.lock``. ``take`` copies the next frame into the
    caller's buffer; about every RECONCILE_EVERY seconds it also checks that file and semaphores are still
    in place and the header and counts add up, and puts them right (logging what it did, naming the path).
    """

    file_what = "v2 frame file"
    semaphore_attrs = ("ready", "free")
    name_owner = False

    free: posix_ipc.Semaphore

    def __init__(self, name: str, height: int, width: int, slots: int, log: logging.Logger, group: str = "") -> None:
        self.shape = (height, width, 3)
        self.slots = slots
        self.header = Header.new(height, width, slots)
        self.size = self.header.frame_bytes
        self.taken = 0
        self.written = 0  # as last read from the header
        self.flags = 0
        self.frames_taken = 0
        self.frames_skipped = 0
        self.last = np.zeros(self.shape, dtype=np.uint8)  # the last frame taken, for interlacing (poll())
        self._buffers = (np.zeros(self.shape, dtype=np.uint8), self.last)
        self._quiet_written = -1  # `written` at the last reconciliation look
        super().__init__(
            name,
            frames_path(name),
            frames_lock_path(name),
            frames_semaphore_names(name),
            self.header.file_bytes,
            log,
            group,
        )
        self._initialise("at start")
        self._next_check = time.monotonic() + RECONCILE_EVERY
        self._next_place_check = time.monotonic() + CHECK_EVERY

    # -- opening and (re)initialising -----------------------------------------------------------------

    def _new_file_header(self) -> bytes:
        return self.header.pack()

    def _fit_size(self, fd: int, size: int, at_start: bool) -> int:
        """Replace the open file ``fd`` of the wrong ``size`` (another geometry or slots) with a whole new one (a
        new inode, so a writer still mapping the old one never faults); where that is not allowed, resize it in
        place. The fd to use from now on."""
        if at_start and size:
            self.log.warning(
                "%s was %d bytes, expected %d (%dx%d RGB, %d slots): made anew",
                self.path,
                size,
                self.header.file_bytes,
                self.shape[0],
                self.shape[1],
                self.slots,
            )
        try:
            made = _create_whole(self.path, self.header.file_bytes, self._gid, self.header.pack(), replace=True)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EACCES):
                raise FrameError(f"{self.path}: cannot make the v2 frame file anew: {exc.strerror}") from None
            os.ftruncate(fd, self.header.file_bytes)  # not ours to replace (sticky /dev/shm): resize in place
            return fd
        os.close(fd)
        if made is None:
            raise FrameError(f"{self.path}: cannot make the v2 frame file anew")
        return made

    def _initialise(self, why: str) -> None:
        """Header, counters and semaphores as new: nothing pending, every slot free."""
        os.pwrite(self._fd, self.header.pack(), 0)
        self.taken = self.written = self.flags = 0
        self._quiet_written = -1
        stale = _drain(self.ready)
        self._set_free(self.slots)
        if stale:
            self.log.info("%s: %s, %d frame(s) posted but not taken were dropped", self.path, why, stale)

    def _set_free(self, value: int) -> int:
        """Make the free semaphore ``value`` (posting or taking counts); how many it was off."""
        now = self.free.value
        for _ in range(value - now):
            self.free.release()
        for _ in range(now - value):
            with contextlib.suppress(posix_ipc.BusyError):
                self.free.acquire(0)
        return now - value

    def _write_taken(self) -> None:
        os.pwrite(self._fd, COUNTER.pack(self.taken), TAKEN_AT)

    def _read_header(self) -> Header | None:
        data = os.pread(self._fd, HEADER_SIZE, 0)
        return Header.of(data) if len(data) == HEADER_SIZE else None

    # -- staying in place and reconciling -------------------------------------------------------------

    def _check_file(self) -> bool:
        """Re-make the file if it was removed or replaced; True if it was (everything starts afresh)."""
        moved = self._reopen_moved_file()
        if moved is None:
            return False
        self._initialise("re-made")
        level = logging.WARNING if moved == "removed" else logging.INFO
        self._log_rarely(level, moved, "%s was %s while running: made anew, writers re-open it", self.path, moved)
        return True

    def _check_semaphores(self) -> None:
        changed, _ = self._reopen_moved_semaphores()
        if changed:
            self._initialise("semaphores re-made")
            self.log.warning(
                "%s removed while running: re-made, writers reach the display again", " and ".join(changed)
            )

    def _skip_to_newest(self, reason: str) -> None:
        """Counters that say more frames are pending than there are slots: nothing there can be trusted
        whole; drop them all, everything pending is taken and every slot free again."""
        self.frames_skipped += 1
        self._log_rarely(
            logging.WARNING,
            "overrun",
            "%s: %s (%d slots): a writer posting without a free slot, or counters changed by hand; the pending"
            " frames were dropped, writers go on from frame %d",
            self.path,
            reason,
            self.slots,
            self.written,
        )
        _drain(self.ready)
        self.taken = self.written
        self._write_taken()
        self._set_free(self.slots)

    def _maintain(self) -> None:
        """The look every RECONCILE_EVERY seconds: file and semaphores in place (about once a second),
        header intact, counts adding up."""
        now = time.monotonic()
        if now >= self._next_place_check:
            self._next_place_check = now + CHECK_EVERY
            try:
                if self._check_file():
                    return
            except FrameError as exc:
                self._log_rarely(logging.ERROR, "file", "%s", exc)
                return
            self._check_semaphores()
        head = self._checked_header()
        if head is None:
            return
        self.written = head.written
        self.reconcile()

    def _checked_header(self) -> Header | None:
        """The header, if it still says what the daemon wrote; else None, having restored it (logged) and
        started afresh."""
        head = self._read_header()
        if head is not None and (head.magic, head.version, head.width, head.height, head.slots) == (
            MAGIC,
            VERSION,
            self.shape[1],
            self.shape[0],
            self.slots,
        ):
            return head
        if head is None:
            said = "is shorter than its header"
            if os.fstat(self._fd).st_size < self.header.file_bytes:
                os.ftruncate(self._fd, self.header.file_bytes)
        else:
            said = f"says magic {head.magic!r}, version {head.version}, {head.height}x{head.width}, {head.slots} slots"
        self._log_rarely(
            logging.ERROR,
            "header",
            "%s %s, not what this daemon made (%r, %d, %dx%d, %d slots): something overwrote it; restored,"
            " pending frames dropped",
            self.path,
            said,
            MAGIC,
            VERSION,
            self.shape[0],
            self.shape[1],
            self.slots,
        )
        self.frames_skipped += 1
        self._initialise("header restored")
        return None

    def reconcile(self) -> None:
        """Put the counts right after a writer died mid-handshake (``self.written`` freshly read).

        Always: more pending than slots, or fewer than nothing, drops what is pending; more free and ready
        counts together than slots gives back the extra free ones. When no writer holds its lock and none
        has posted since the last look, everything is exact: a frame a dead writer filled and counted but
        never posted is posted for it, and ``free`` is every slot not pending.
        """
        pending = self.written - self.taken
        ready = self.ready.value  # ready first: a writer moving a count from free to ready is never counted twice
        free = self.free.value
        if pending == 0 and ready == 0 and free == self.slots:  # exact, as when idle: nothing to put right
            self._quiet_written = self.written
            return
        if pending > self.slots or pending < 0 or ready > self.slots:
            self._skip_to_newest(f"its counters say {pending} frames are pending, {ready} posted")
            return
        if free + ready > self.slots:
            extra = self._set_free(self.slots - ready)
            self._log_rarely(logging.INFO, "free", "%s: %d free slot count(s) too many, taken back", self.path, extra)
        elif self._give_back_lost(pending, free):
            return
        quiet = self.written == self._quiet_written
        self._quiet_written = self.written
        if not quiet:
            return
        try:  # no writer holds its lock, and none may start while the counts are set
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        try:
            head = self._read_header()
            if head is None or head.written != self.written:
                return
            adopted = pending - self.ready.value
            for _ in range(adopted):
                self.ready.release()
            for _ in range(-adopted):
                with contextlib.suppress(posix_ipc.BusyError):
                    self.ready.acquire(0)
            off = self._set_free(self.slots - pending)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        if adopted or off:
            posts = (
                f"{adopted} whole frame(s) it counted posted for it"
                if adopted > 0
                else f"{-adopted} stray post(s) dropped"
                if adopted
                else "posts right"
            )
            frees = f"{-off} free slot(s) given back" if off < 0 else f"{off} free count(s) taken back" if off else ""
            self.log.warning(
                "%s: counts reconciled with no writer there (one died mid-frame?): %s%s",
                self.path,
                posts,
                f", {frees}" if frees else "",
            )

    def _give_back_lost(self, pending: int, free: int) -> bool:
        """Free slots lost with a writer killed holding one, while the next writer runs: True if given back.

        With one writer at a time holding at most one slot, ``free + pending`` is ``slots`` or ``slots - 1``
        (the writer is filling one); anything less is lost for sure. When the writer waits on ``free`` (glibc
        says how many wait) it holds none, so ``free + pending`` must be ``slots`` exactly. ``pending`` and
        ``free`` count only if ``written`` did not move while they were read (read again here).
        """
        head = self._read_header()
        if head is None or head.written != self.written:
            return False
        expected = self.slots - 1
        if free == 0 and (semaphore_waiters(self.free.name) or 0) > 0:
            expected = self.slots
        lost = expected - pending - free
        if lost <= 0:
            return False
        for _ in range(lost):
            self.free.release()
        self._log_rarely(
            logging.WARNING,
            "lost",
            "%s: %d free slot(s) lost with a writer killed in the middle of a frame, given back",
            self.path,
            lost,
        )
        return True

    # -- frames ---------------------------------------------------------------------------------------

    def take(self, out: np.ndarray, previous: np.ndarray, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the next frame and copy it into ``out``; True if it came whole.

        ``previous`` is the last frame shown from here: an interlaced frame takes its other rows from it.
        False: nothing came, a signal interrupted the wait, or the frame was skipped (logged, counted).
        """
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + RECONCILE_EVERY
            self._maintain()
        try:
            self.ready.acquire(max(timeout, 0.0))
        except (posix_ipc.BusyError, posix_ipc.SignalError):
            return False
        n = self.taken
        head = self._checked_header()
        if head is None:
            return False
        self.written, self.flags = head.written, head.flags
        if self.written <= n:  # a post with no frame counted: a writer posting without writing
            self._log_rarely(
                logging.WARNING,
                "stray",
                "%s: a post on %s with no frame written (written %d, taken %d): ignored",
                self.path,
                self.ready.name,
                self.written,
                n,
            )
            return False
        if self.written - n > self.slots:
            self._skip_to_newest(f"its counters say {self.written - n} frames are pending")
            return False
        # with this frame in hand, writers keeping to the handshake leave at most slots - 1 counts in free and
        # ready together (read in this order, a writer moving one along is never counted twice): more means
        # one posts without taking free slots, and may be writing into this very slot
        ready = self.ready.value
        if self.free.value + ready > self.slots - 1:
            self._skip_to_newest(f"{ready + 1} frames posted while {self.free.value} slots were still free")
            return False
        got = os.preadv(self._fd, [memoryview(out).cast("B")], HEADER_SIZE + (n % self.slots) * self.size)
        after = self._read_header()
        self.taken = n + 1
        self._write_taken()
        self.free.release()
        if got != self.size:
            self.frames_skipped += 1
            self._log_rarely(
                logging.WARNING,
                "short",
                "%s: slot %d held %d of %d bytes (a writer truncated the file?): frame skipped, file restored",
                self.path,
                n % self.slots,
                got,
                self.size,
            )
            if os.fstat(self._fd).st_size < self.header.file_bytes:
                os.ftruncate(self._fd, self.header.file_bytes)
            return False
        # a writer that waits for free slots cannot finish frame n + slots (slot n's again) before `free` is
        # posted for frame n: if one did, it wrote over the slot while it was read
        if after is not None and after.written - n > self.slots:
            self.written = after.written
            self._skip_to_newest(f"a writer wrote over slot {n % self.slots} while it was read")
            return False
        if self.flags & INTERLACED:
            other = 1 - n % 2
            out[other::2] = previous[other::2]
        self.frames_taken += 1
        return True

    def poll(self, timeout: float) -> np.ndarray | None:
        """The next frame (``self.last``, a buffer of the reader's own) or None: ``take`` for tests and tools."""
        out, previous = self._buffers
        if not self.take(out, previous, timeout):
            return None
        self._buffers = (previous, out)
        self.last = out
        return out

    @property
    def pending(self) -> int:
        """Frames written but not taken, as last seen."""
        return max(self.written - self.taken, 0)


class FrameWriterV2(WriterSide):
    """A pattern program's side of the v2 frame: up to ``slots`` frames ahead of the display, maybe interlaced.

    The daemon makes the file; the writer learns height, width and slots from its header (``height`` and
    ``width`` given here are only checked against it). ``FrameWriterV2()`` writes to the display named by
    ``SKYSCREEN_NAME`` (default ``skyscreen``); ``WRITER_FILE`` (the original Skyscreen's variable) names
    the file instead, ``NAME.frames`` (or ``NAME.frame``: its v2 file beside it). One writer at a time: it
    holds an exclusive ``flock`` on the file from start to ``close()``.

    >>> with FrameWriterV2() as w:
    ...     frame = w.acquire()          # the next free slot, (height, width, 3); None if none came in time
    ...     frame[:] = (255, 0, 0)
    ...     w.post()                     # shown in order, one a frame period
    ...     w.write(picture)             # the same in one call; interlaced: only this frame's rows

    Interlaced (``interlaced=True``): frame number ``n`` carries only the rows ``r % 2 == n % 2`` (``parity``);
    the daemon keeps the other rows from the frame before.
    """

    semaphore_attrs = ("ready", "free")

    free: posix_ipc.Semaphore

    def __init__(
        self,
        name: str | None = None,
        timeout: float = WRITER_TIMEOUT,
        interlaced: bool = False,
        group: str = DEFAULT_GROUP,
        wait: float = WAIT_FOR_DAEMON,
        height: int | None = None,
        width: int | None = None,
    ) -> None:
        env_file = os.environ.get("WRITER_FILE")
        if env_file:
            given = Path(env_file)
            stem = given.name.removesuffix(FRAMES_SUFFIX).removesuffix(FRAME_SUFFIX)
            name = name or stem
            self.path = given if given.name.endswith(FRAMES_SUFFIX) else given.with_name(f"{stem}{FRAMES_SUFFIX}")
        else:
            name = name or os.environ.get("SKYSCREEN_NAME") or DEFAULT_NAME
            self.path = frames_path(name)
        self.name = name
        self.timeout = timeout
        self.interlaced = interlaced
        self.group = group
        self.log = logging.getLogger("skyscreen")
        self._acquired: int | None = None  # the frame number of a slot taken from `free`, not posted yet
        deadline = time.monotonic() + wait
        self._fd, self._map, self.header, self._file = self._open(deadline)
        self.height, self.width, self.slots = self.header.height, self.header.width, self.header.slots
        self.shape = (self.height, self.width, 3)
        want = (height or self.height, width or self.width)
        if want != (self.height, self.width):
            self._unmap()
            raise FrameError(
                f"{self.path}: the display is {self.height}x{self.width}, but this writer expects {want[0]}x"
                f"{want[1]}: draw at the display's size (FrameWriterV2 learns it: leave height and width out)"
            )
        self._views = self._slot_views()
        self._open_semaphores(frames_semaphore_names(name), deadline)

    # -- opening --------------------------------------------------------------------------------------

    def _open(self, deadline: float) -> tuple[int, mmap.mmap, Header, Ident]:
        """Open the daemon's file (waiting until ``deadline`` for it), lock it, check its header, map it."""
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                if time.monotonic() >= deadline:
                    raise FrameError(
                        f"{self.path}: no such file: no daemon serves display {self.name!r} (start skyscreen-hw;"
                        " it makes the v2 frame file, and its [frame] name is the display's name)"
                    ) from None
                time.sleep(0.05)
                continue
            except PermissionError:
                raise _permission_error(self.path, "v2 frame file", self.group) from None
            except OSError as exc:
                raise FrameError(
                    f"{self.path}: cannot open the v2 frame file: {exc.strerror} (not a regular file?)"
                ) from None
            try:
                self._lock(fd)
                head = Header.of(os.pread(fd, HEADER_SIZE, 0).ljust(HEADER_SIZE, b"\0"))
                problem = head.problem(self.path)
                if problem is not None and head.magic == bytes(len(MAGIC)) and time.monotonic() < deadline:
                    os.close(fd)  # a daemon making it right now: look again
                    time.sleep(0.05)
                    continue
                if problem is not None:
                    raise FrameError(problem)
                st = os.fstat(fd)
                if st.st_size < head.file_bytes:
                    raise FrameError(
                        f"{self.path} is {st.st_size} bytes, but its header says {head.height}x{head.width} RGB"
                        f" in {head.slots} slots = {head.file_bytes} bytes: it was cut short; restart"
                        " skyscreen-hw to make it anew"
                    )
                return fd, mmap.mmap(fd, head.file_bytes), head, (st.st_dev, st.st_ino)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.close(fd)
                raise

    def _lock(self, fd: int) -> None:
        """The writer lock: one writer at a time; waits up to ``timeout`` for another to finish."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _lock_holder(_fd_ident(fd)) or " by another process"
                    raise FrameError(
                        f"{self.path}: another writer is writing to display {self.name!r} (it holds the file's"
                        f" lock{holder}): one writer at a time; stop it first"
                    ) from None
                time.sleep(LOCK_RETRY)

    def _open_semaphore(self, sem_name: str, deadline: float) -> posix_ipc.Semaphore:
        """Open a semaphore the daemon made (never create one: `free` must start at `slots`)."""
        path = semaphore_path(sem_name)
        while True:
            try:
                sem = posix_ipc.Semaphore(sem_name)
            except posix_ipc.ExistentialError:
                if time.monotonic() >= deadline:
                    raise FrameError(
                        f"{path}: no such semaphore: no daemon serves display {self.name!r} (start skyscreen-hw)"
                    ) from None
                time.sleep(0.05)
                continue
            except posix_ipc.PermissionsError:
                raise _permission_error(path, f"semaphore {sem_name}", self.group) from None
            self._sem_ident[sem_name] = _ident(path)
            return sem

    def _slot_views(self) -> list[np.ndarray]:
        size = self.header.frame_bytes
        return [
            np.ndarray(self.shape, dtype=np.uint8, buffer=self._map, offset=HEADER_SIZE + i * size)
            for i in range(self.slots)
        ]

    # -- before each frame: still the daemon's file, as it was --------------------------------------------

    def _current(self) -> Header:
        return Header.of(self._map[:HEADER_SIZE])

    def _check(self) -> None:
        """The file still the one mapped and its header still this geometry; re-map when the daemon made it
        anew (with other slots: said once); FrameError when it is no v2 file or another geometry now."""
        head = self._current()
        problem = head.problem(self.path)
        same = (head.width, head.height, head.slots) == (self.width, self.height, self.slots)
        if _ident(self.path) == self._file and problem is None and same:
            return
        if problem is not None and not head.magic == bytes(len(MAGIC)):
            raise FrameError(problem)
        slots = self.slots
        self._unmap()
        self._acquired = None  # the daemon starts afresh with a new file: nothing of ours is pending there
        self._fd, self._map, self.header, self._file = self._open(time.monotonic() + WAIT_FOR_DAEMON)
        if (self.header.height, self.header.width) != (self.height, self.width):
            raise FrameError(
                f"{self.path}: the display is {self.header.height}x{self.header.width} now, this writer draws"
                f" {self.height}x{self.width}: the daemon restarted with another geometry; restart the writer"
            )
        self.slots = self.header.slots
        self._views = self._slot_views()
        if self.slots != slots:
            self.log.warning(
                "%s: slots changed from %d to %d (the daemon restarted with another [frame] slots): re-mapped",
                self.path,
                slots,
                self.slots,
            )
        else:
            self.log.info("%s was made anew by the daemon: re-mapped", self.path)

    # -- frames ---------------------------------------------------------------------------------------

    def acquire(self, timeout: float | None = None) -> np.ndarray | None:
        """Wait (at most ``timeout`` s, default the writer's) for a free slot; its (height, width, 3) view.

        None when no slot came free in time (no daemon takes frames, or it is stuck) or a signal came.
        The slot is this writer's until ``post()``; asking again before posting returns the same one.
        """
        self._check()
        if self._acquired is not None:
            return self._views[self._acquired % self.slots]
        try:
            self.free.acquire(self.timeout if timeout is None else timeout)
        except (posix_ipc.BusyError, posix_ipc.SignalError):
            self._check_semaphores()  # nobody freed a slot: were they made anew under us?
            return None
        self._check()  # the daemon may have made the file anew while this writer waited
        head = self._current()
        flags = INTERLACED if self.interlaced else 0
        if head.flags != flags:
            FLAGS.pack_into(self._map, FLAGS_AT, flags)
        self._acquired = head.written
        return self._views[head.written % self.slots]

    @property
    def frame_number(self) -> int:
        """The number of the acquired frame (``written`` before this frame's post), else of the next one."""
        return self._acquired if self._acquired is not None else self._current().written

    @property
    def parity(self) -> int:
        """Interlaced: the rows (r % 2) the acquired frame carries."""
        return self.frame_number % 2

    @property
    def pending(self) -> int:
        """Frames posted that the daemon has not taken yet."""
        head = self._current()
        return max(head.written - head.taken, 0)

    @property
    def taken(self) -> int:
        """Frames the daemon has taken (the header's ``taken``)."""
        return self._current().taken

    def post(self) -> None:
        """Show the acquired slot: ``written += 1``, then ``sem_post(ready)``."""
        if self._acquired is None:
            raise FrameError(f"{self.path}: post() without a slot: call acquire() first")
        COUNTER.pack_into(self._map, WRITTEN_AT, self._acquired + 1)
        self._acquired = None
        self.ready.release()

    def write(self, picture: np.ndarray, timeout: float | None = None) -> bool:
        """Acquire a slot, copy ``picture`` (only this frame's rows when interlaced), post; False if no slot
        came free within ``timeout``."""
        slot = self.acquire(timeout)
        if slot is None:
            return False
        if self.interlaced:
            rows = self.parity
            slot[rows::2] = picture[rows::2]
        else:
            slot[...] = picture
        self.post()
        return True

    def _unmap(self) -> None:
        self._views = []
        with contextlib.suppress(BufferError):  # someone still holds a view: the mapping goes with it
            self._map.close()
        with contextlib.suppress(OSError):
            os.close(self._fd)  # and the writer lock with it

    def close(self) -> None:
        """Give back a slot acquired but not posted, unmap, let go of the lock, close the semaphores."""
        if self._acquired is not None:
            self._acquired = None
            self.free.release()
        super().close()


class SharedFrameV2Source(PacedFrameSource):
    """Frames posted by v2 writers through ``/dev/shm/<name>.frames``: exactly one a tick, in order.

    The next frame is taken only once the clock took the last one (see `PacedFrameSource`), so the
    display shows every v2 frame, one a frame period, never skipping; the clock never waits on it.
    """

    kind = "shared frame v2"

    def __init__(self, config: FrameConfig, mixer: Mixer, log: logging.Logger) -> None:
        reader = FrameReaderV2(config.name, config.height, config.width, config.slots, log, config.group)
        super().__init__("shared frame v2", config, mixer, log, reader)

    def _take(self, timeout: float) -> bool:
        # into the back buffer, the other rows of an interlaced frame from the front (the last one)
        return bool(self.reader.take(self.back, self.front, timeout))
