"""Serial LED controllers (Adalight, TPM2) through pyserial: a device path or any pyserial URL.

`show()` never blocks the frame clock: it encodes the frame into a one-slot mailbox and returns; a writer
thread sends the latest frame, never faster than the wire carries (a frame that arrives while the
previous one is still on the wire replaces the waiting one and counts as dropped). A write that stalls
longer than `write_timeout` is abandoned. When the controller goes away, the writer reconnects with a
short backoff and resumes on its own, logging once when it is lost and once when it is back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from skyscreen_hw.config import OutputConfig
from skyscreen_hw.errors import OutputError
from skyscreen_hw.layouts import Layout
from skyscreen_hw.outputs.framing import Framer

BACKOFF = (0.05, 0.1, 0.2, 0.4, 0.5)  # seconds between reconnection attempts; the last one repeats
CLOSE_WAIT = 2.0  # seconds close() waits for the last (black) frame to go out
STALL_SECONDS = 5.0  # a write or open taking longer than this (past its timeout) means the port is wedged


def _open_serial(url: str, baud: int, write_timeout: float) -> Any:
    import serial

    return serial.serial_for_url(url, baudrate=baud, write_timeout=write_timeout, timeout=0, exclusive=True)


def _is_permission(exc: BaseException) -> bool:
    return isinstance(exc, PermissionError) or getattr(exc, "errno", None) == 13 or "Permission denied" in str(exc)


class SerialOutput:
    """One serial controller taking `count` LEDs."""

    def __init__(
        self,
        cfg: OutputConfig,
        count: int,
        log: logging.Logger,
        opener: Callable[[str, int, float], Any] = _open_serial,
    ) -> None:
        self.port_name = cfg.port
        self.baud = cfg.baud
        self.write_timeout = cfg.write_timeout
        self.log = log
        self.name = f"serial {cfg.port} ({cfg.protocol}, {cfg.wire_order}, {count} LEDs)"
        self.framer = Framer(cfg.protocol, count, cfg.wire_order)
        self.wire_seconds = len(self.framer.buffer) * 10 / cfg.baud  # 8N1: 10 bits a byte
        self.frames_dropped = 0
        self.frames_written = 0
        self.stall_seconds = STALL_SECONDS
        self._busy_since: float | None = None  # when the writer entered a port call (write, open)
        self._opener = opener
        self._port: Any = None
        self._slot: bytes | None = None
        self._cond = threading.Condition()
        self._closing = False
        self._lost = False
        try:
            self._port = opener(cfg.port, cfg.baud, cfg.write_timeout)
        except Exception as exc:  # pyserial raises SerialException/OSError/ValueError for bad ports
            if _is_permission(exc):
                raise OutputError(
                    f"serial {cfg.port}: permission denied; add the user to group 'skyscreen' (or 'dialout')"
                    " and install udev/99-skyscreen.rules"
                ) from None
            if isinstance(exc, ValueError):
                raise OutputError(f"serial {cfg.port}: {exc}") from None
            self._lost = True
            log.warning("serial %s: cannot open (%s); will keep trying to connect", cfg.port, exc)
        self._thread = threading.Thread(target=self._run, name=f"serial {cfg.port}", daemon=True)
        self._thread.start()

    @property
    def stalled(self) -> bool:
        """True while one port call has hung for longer than `stall_seconds` (the daemon stops the watchdog)."""
        since = self._busy_since
        return since is not None and time.monotonic() - since > self.stall_seconds

    def show(self, leds: np.ndarray) -> None:
        frame = bytes(self.framer.encode(leds))
        with self._cond:
            if self._slot is not None:
                self.frames_dropped += 1
            self._slot = frame
            self._cond.notify()

    def close(self) -> None:
        """Let the last frame out (bounded wait), stop the writer, close the port."""
        deadline = time.monotonic() + CLOSE_WAIT
        with self._cond:
            while self._slot is not None and not self._lost and time.monotonic() < deadline:
                self._cond.wait(0.05)
            self._closing = True
            self._cond.notify_all()
        self._thread.join(CLOSE_WAIT)
        if self._port is not None:
            try:
                self._port.close()
            except Exception as exc:  # closing a vanished device may fail; nothing is left to do
                self.log.debug("serial %s: close: %s", self.port_name, exc)
            self._port = None

    # -- the writer thread --------------------------------------------------------------------------

    def _run(self) -> None:
        next_write = 0.0
        attempt = 0
        while True:
            if self._port is None:
                if self._wait_closing(BACKOFF[min(attempt, len(BACKOFF) - 1)]):
                    return
                attempt += 1
                self._busy_since = time.monotonic()
                try:
                    self._reconnect()
                finally:
                    self._busy_since = None
                continue
            attempt = 0
            with self._cond:
                while self._slot is None and not self._closing:
                    self._cond.wait()
                if self._slot is None:
                    return
                frame = self._slot
            delay = next_write - time.monotonic()
            if delay > 0 and self._wait_closing(delay, drain=True):
                return
            with self._cond:  # the newest frame, taken when the wire is free
                frame, self._slot = self._slot or frame, None
                self._cond.notify_all()
            start = self._busy_since = time.monotonic()
            try:
                self._write(frame)
            finally:
                self._busy_since = None
            next_write = start + self.wire_seconds

    def _wait_closing(self, seconds: float, drain: bool = False) -> bool:
        """Sleep `seconds` (new frames don't cut it short); True if the output is closing meanwhile.

        With `drain`, closing only counts once nothing is waiting to be written.
        """
        deadline = time.monotonic() + seconds
        with self._cond:
            while not self._closing and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            return self._closing and (not drain or self._slot is None)

    def _write(self, frame: bytes) -> None:
        import serial

        try:
            self._port.write(frame)
            self.frames_written += 1
        except serial.SerialTimeoutException:
            self.frames_dropped += 1
            if not self._lost:
                self.log.warning(
                    "serial %s: the controller stopped reading (write timed out after %g s); dropping frames",
                    self.port_name,
                    self.write_timeout,
                )
                self._lost = True
        except (serial.SerialException, OSError) as exc:
            self.frames_dropped += 1
            self.log.warning("serial %s: lost the controller (%s); reconnecting", self.port_name, exc)
            self._lost = True
            with contextlib.suppress(Exception):  # the device is gone; closing its handle is best effort
                self._port.close()
            self._port = None
        else:
            if self._lost:
                self._lost = False
                self.log.info("serial %s: the controller is back", self.port_name)

    def _reconnect(self) -> None:
        try:
            self._port = self._opener(self.port_name, self.baud, self.write_timeout)
        except Exception as exc:  # still unplugged; the next attempt follows the backoff
            self.log.debug("serial %s: reconnect failed: %s", self.port_name, exc)
            return
        self.log.info("serial %s: reconnected", self.port_name)
        self._lost = False


def create(cfg: OutputConfig, layout: Layout, first: int, count: int, log: logging.Logger) -> SerialOutput:
    try:
        import serial  # noqa: F401 - checked here so a missing pyserial is one clear line
    except ImportError:
        raise OutputError("serial output: pyserial is not installed (pip install pyserial)") from None
    return SerialOutput(cfg, count, log)
