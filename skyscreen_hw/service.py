"""systemd integration: readiness, status, watchdog and journal logging; a no-op off systemd.

systemd-python (`systemd.daemon`, `systemd.journal`) is used when it is installed; without it the same
datagrams go to `$NOTIFY_SOCKET` directly (the protocol is one line per field, see sd_notify(3)), so the
service also works from a venv that could not build systemd-python.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Callable

STATUS_INTERVAL = 1.0  # seconds between STATUS= updates
LISTEN_FDS_START = 3  # sd_listen_fds(3)


def _systemd_daemon():  # the systemd.daemon module, or None when systemd-python is absent
    try:
        from systemd import daemon
    except ImportError:
        return None
    return daemon


class Service:
    """Talks to the service manager that started us (if any): READY, STATUS, WATCHDOG, STOPPING."""

    def __init__(self, notify_socket: str | None, watchdog_usec: int, log: logging.Logger) -> None:
        self.notify_socket = notify_socket
        self.watchdog_interval = watchdog_usec / 2e6 if watchdog_usec else 0.0  # ping at half the timeout
        self.log = log
        self._next_watchdog = 0.0
        self._next_status = 0.0
        self._sock: socket.socket | None = None
        self._daemon = _systemd_daemon() if notify_socket else None

    @classmethod
    def from_environment(cls, log: logging.Logger) -> Service:
        """Read `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` as systemd sets them."""
        notify = os.environ.get("NOTIFY_SOCKET") or None
        usec = 0
        pid = os.environ.get("WATCHDOG_PID")
        if not pid or pid == str(os.getpid()):
            try:
                usec = int(os.environ.get("WATCHDOG_USEC", "0"))
            except ValueError:
                log.warning("ignoring WATCHDOG_USEC=%r: not a number", os.environ["WATCHDOG_USEC"])
        return cls(notify, usec, log)

    def notify(self, message: str) -> None:
        """Send one sd_notify message; failures are logged, never raised (the LEDs matter more)."""
        if self.notify_socket is None:
            return
        try:
            if self._daemon is not None:
                self._daemon.notify(message)
                return
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            address = self.notify_socket
            if address.startswith("@"):
                address = "\0" + address[1:]
            self._sock.sendto(message.encode(), address)
        except OSError as exc:
            self.log.warning("sd_notify to %s failed: %s", self.notify_socket, exc)
            self.notify_socket = None  # say it once, then stay quiet

    def ready(self, status: str) -> None:
        self.notify(f"READY=1\nSTATUS={status}")
        self._next_status = time.monotonic() + STATUS_INTERVAL

    def tick(self, status: Callable[[], str], alive: Callable[[], bool] = lambda: True) -> None:
        """Called by the frame clock every round: watchdog pings and STATUS updates, each rate-limited.

        The pings come from the clock itself, so a clock stuck in an output stops them; ``alive()`` False
        (an output reports itself stalled) withholds them too, and systemd restarts the service. Both
        callables are called only when due.
        """
        if self.notify_socket is None:
            return
        now = time.monotonic()
        if self.watchdog_interval and now >= self._next_watchdog and alive():
            self.notify("WATCHDOG=1")
            self._next_watchdog = now + self.watchdog_interval
        if now >= self._next_status:
            self.notify(f"STATUS={status()}")
            self._next_status = now + STATUS_INTERVAL

    def reloading(self) -> None:
        """RELOADING=1 with the CLOCK_MONOTONIC time systemd 253+ wants; READY=1 must follow (`ready`)."""
        self.notify(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.notify("STOPPING=1\nSTATUS=stopping: blanking the outputs")

    def listen_fds(self) -> list[int]:
        """Sockets passed by socket activation (skyscreen.socket), or [] when started without one.

        As sd_listen_fds(3): only when `$LISTEN_PID` is this process; the variables are unset afterwards
        and the descriptors are made close-on-exec.
        """
        daemon = _systemd_daemon()
        if daemon is not None:
            return list(daemon.listen_fds(True))
        pid = os.environ.get("LISTEN_PID")
        count = os.environ.get("LISTEN_FDS", "0")
        for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(name, None)
        if pid != str(os.getpid()) or not count.isdigit():
            return []
        fds = list(range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)))
        for fd in fds:
            os.set_inheritable(fd, False)
        return fds

    def close(self) -> None:
        """Close the notify socket (the last thing the daemon's shutdown does)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# -- logging ---------------------------------------------------------------------------------------------

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class _KernelStylePriority(logging.Formatter):
    """`<N>message` lines: journald reads the prefix as the priority (sd-daemon(3)) on a stream."""

    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno, 6)
        return f"<{prio}>{super().format(record)}"


class _Terminal(logging.Formatter):
    """`skyscreen-hw: message`, with `warning:` / `error:` in front of the ones that need a look."""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"skyscreen-hw: {level}{super().format(record)}"


def _stderr_is_journal() -> bool:
    """True when stderr is the journal stream systemd connected us to (`$JOURNAL_STREAM`)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    try:
        st = os.fstat(sys.stderr.fileno())
        return bool(value) and st.st_dev == int(dev) and st.st_ino == int(ino)
    except (OSError, ValueError, AttributeError):
        return False


def setup_logging(verbose: bool = False) -> logging.Logger:
    """The `skyscreen` logger: to the journal with priorities under systemd, to stderr otherwise."""
    log = logging.getLogger("skyscreen")
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
    handler: logging.Handler
    if _stderr_is_journal():
        try:
            from systemd.journal import JournalHandler

            handler = JournalHandler(SYSLOG_IDENTIFIER="skyscreen-hw")
            handler.setFormatter(logging.Formatter("%(message)s"))
        except ImportError:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(_KernelStylePriority("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Terminal())
    log.addHandler(handler)
    return log
