"""Serial LED controllers (Adalight, TPM2) through pyserial: a device path or any pyserial URL.

`show()` never blocks the frame clock: it encodes the frame into a one-slot mailbox and returns; a writer
thread sends the latest frame, never faster than the wire carries (a frame that arrives while the
previous one is still on the wire replaces the waiting one and counts as dropped). A write that stalls
longer than `write_timeout` is abandoned and the writer backs off before the next one; a controller
that takes no frame for `stall_seconds` makes the output `stalled` (see outputs/worker.py). When the
controller goes away, the writer reconnects with a short backoff and resumes on its own, logging once
when it is lost and once when it is back; while it is gone the output's health is "waiting for PORT".
"""

from __future__ import annotations

import logging
import os
import select
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from skyscreen_hw.config import OutputConfig
from skyscreen_hw.errors import OutputError
from skyscreen_hw.layouts import Layout
from skyscreen_hw.outputs.framing import Framer
from skyscreen_hw.outputs.worker import STALL_SECONDS, DeviceAbsent, FrameFailed, WorkerOutput

FULL_PAUSE = 0.01  # seconds to wait when the kernel says "writable" but takes nothing (never spin on EAGAIN)


class TtyPort:
    """A serial device opened by pyserial (termios, baud rate, exclusive lock) and written with poll().

    pyserial 3.5 retries a write that gets EAGAIN in a busy loop until `write_timeout`, spinning a core
    while a controller accepts no data; here the writer sleeps in poll() until the kernel takes bytes.
    """

    def __init__(self, port: Any, write_timeout: float) -> None:
        self._port = port
        self._fd: int = port.fileno()
        self._timeout = write_timeout
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLOUT)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write all of `data`; serial.SerialTimeoutException when it takes longer than the write timeout."""
        import serial

        view = memoryview(data).cast("B")
        deadline = time.monotonic() + self._timeout
        done = 0
        while done < len(view):
            left = deadline - time.monotonic()
            if left <= 0 or not self._poll.poll(left * 1000):
                raise serial.SerialTimeoutException(f"write timeout ({done} of {len(view)} bytes written)")
            try:
                written = os.write(self._fd, view[done:])
            except BlockingIOError:
                written = 0
            if not written:  # "writable" but nothing taken: wait a little rather than ask again at once
                time.sleep(min(FULL_PAUSE, max(0.0, deadline - time.monotonic())))
            done += written
        return done

    def close(self) -> None:
        self._port.close()


def _open_serial(url: str, baud: int, write_timeout: float) -> Any:
    """A device path opens as a `TtyPort`; any other pyserial URL (loop://, socket://, ...) through pyserial."""
    import serial

    port = serial.serial_for_url(url, baudrate=baud, write_timeout=write_timeout, timeout=0, exclusive=True)
    return port if "://" in url else TtyPort(port, write_timeout)


def _is_permission(exc: BaseException) -> bool:
    return isinstance(exc, PermissionError) or getattr(exc, "errno", None) == 13 or "Permission denied" in str(exc)


class SerialOutput(WorkerOutput[bytes]):
    """One serial controller taking `count` LEDs."""

    kind = "serial"

    def __init__(
        self,
        cfg: OutputConfig,
        count: int,
        log: logging.Logger,
        opener: Callable[[str, int, float], Any] = _open_serial,
        *,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self.port_name = cfg.port
        self.baud = cfg.baud
        self.write_timeout = cfg.write_timeout
        self.framer = Framer(cfg.protocol, count, cfg.wire_order)
        self.wire_seconds = len(self.framer.buffer) * 10 / cfg.baud  # 8N1: 10 bits a byte
        super().__init__(
            f"serial {cfg.port} ({cfg.protocol}, {cfg.wire_order}, {count} LEDs)",
            log,
            thread_name=f"serial {cfg.port}",
            min_interval=self.wire_seconds,
            stall_seconds=stall_seconds,
        )
        self._opener = opener
        self._port: Any = None
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
            log.warning("serial %s: cannot open (%s); will keep trying to connect", cfg.port, exc)
            self._waiting = f"waiting for {cfg.port} ({exc})"
        self._start()

    def _encode(self, leds: np.ndarray) -> bytes:
        return bytes(self.framer.encode(leds))

    def _connect(self) -> None:
        if self._port is not None:
            return
        try:
            self._port = self._opener(self.port_name, self.baud, self.write_timeout)
        except Exception as exc:  # still unplugged; the worker tries again after a backoff
            raise DeviceAbsent(f"waiting for {self.port_name} ({exc})") from None
        self.log.info("serial %s: reconnected", self.port_name)

    def _deliver(self, frame: bytes) -> None:
        import serial

        try:
            self._port.write(frame)
        except serial.SerialTimeoutException:
            raise FrameFailed(
                f"the controller stopped reading (write timed out after {self.write_timeout:g} s); dropping frames"
            ) from None
        except (serial.SerialException, OSError) as exc:
            self._release()
            raise FrameFailed(f"lost the controller ({exc}); reconnecting") from None

    def _release(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except Exception as exc:  # closing a vanished device may fail; nothing is left to do
                self.log.debug("serial %s: close: %s", self.port_name, exc)
            self._port = None


def create(
    cfg: OutputConfig,
    layout: Layout,
    first: int,
    count: int,
    log: logging.Logger,
    stall_seconds: float = STALL_SECONDS,
) -> SerialOutput:
    try:
        import serial  # noqa: F401 - checked here so a missing pyserial is one clear line
    except ImportError:
        raise OutputError("serial output: pyserial is not installed (pip install pyserial)") from None
    return SerialOutput(cfg, count, log, stall_seconds=stall_seconds)
