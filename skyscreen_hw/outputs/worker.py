"""The latest-frame worker: one thread per output that hands frames to slow hardware (serial, ws281x).

`show()` encodes the frame in the caller's thread and puts it in a one-slot mailbox; the worker thread
delivers the newest frame whenever the device is free. A frame that arrives while another is still
waiting replaces it and counts as dropped (by design: the wire is slower than the frame clock).

A delivery that fails (a timeout, an error, a lost device) counts as failed, is logged once per run of
failures, and the worker backs off (`BACKOFF`) before the next attempt, so a dead device never spins a
core. A device that is not there at all (`DeviceAbsent` from `_connect`) is waited for, frames kept.

The output is `stalled` when frames have been waiting and none completed for `stall_seconds`, however
the attempts fail: timeouts, errors, or one call that never returns. The daemon then withholds the
systemd watchdog pings. The stall is logged once when it starts and once when it ends. Waiting for an
absent device is not a stall (a restart would not bring it back, and the health says what it waits
for); a connect call that hangs is.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from typing import Generic, TypeVar

import numpy as np

from skyscreen_hw.errors import OutputError
from skyscreen_hw.outputs.base import HEALTH_OK, Output

BACKOFF = (0.05, 0.1, 0.2, 0.4, 0.5)  # seconds between failed attempts; the last one repeats
CLOSE_WAIT = 2.0  # seconds close() waits for the last (black) frame to go out, and the worker to stop
STALL_SECONDS = 5.0  # no frame completed for this long while frames were waiting: the output is stalled
CONNECTING, DELIVERING = "opening the device", "delivering a frame"  # the calls the worker makes, for messages

FrameT = TypeVar("FrameT")


class FrameFailed(OutputError):
    """Raised by `_deliver`: this frame did not go out. The message says why, without the output's name."""


class DeviceAbsent(OutputError):
    """Raised by `_connect`: the device is not there (yet). The message is the output's health meanwhile,
    e.g. "waiting for /dev/ttyACM0 (...)"; the worker keeps the frame and tries again after a backoff."""


def backoff(failures: int) -> float:
    """Seconds to wait after `failures` (>= 1) failed attempts in a row."""
    return BACKOFF[min(failures, len(BACKOFF)) - 1]


class WorkerOutput(Output, Generic[FrameT]):
    """An Output whose frames go to the device from a worker thread, through a one-frame mailbox.

    Subclasses implement `_encode` (caller's thread: leds -> a frame object the mailbox owns) and
    `_deliver` (worker thread: send one frame or raise `FrameFailed`), may override `_connect` (make the
    device ready or raise `DeviceAbsent`; default: always ready) and `_release` (free the device once the
    worker has stopped), and call `_start()` at the end of their `__init__`.
    """

    def __init__(
        self,
        name: str,
        log: logging.Logger,
        *,
        thread_name: str,
        min_interval: float = 0.0,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        super().__init__(name)
        self.log = log
        self.min_interval = min_interval  # seconds between the starts of two deliveries (the wire's rate)
        self.stall_seconds = stall_seconds
        self._cond = threading.Condition()
        self._stop = threading.Event()  # set by close(): the worker finishes the frame in hand and exits
        self._slot: FrameT | None = None  # the newest frame not yet taken by the worker
        self._in_call: str | None = None  # CONNECTING or DELIVERING while the worker is inside that call
        self._owed_since: float | None = None  # since when a frame has been owed without one completing
        self._waiting: str | None = None  # why the device is absent, while it is
        self._problem: str | None = None  # why the last delivery failed, until one succeeds
        self._stall_logged = False
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    # -- for subclasses -------------------------------------------------------------------------------

    @abstractmethod
    def _encode(self, leds: np.ndarray) -> FrameT:
        """The frame for `leds`, in a new object (the mailbox keeps it after `show` returns)."""

    @abstractmethod
    def _deliver(self, frame: FrameT) -> None:
        """Send one frame to the device (worker thread); raise `FrameFailed` when it did not go out."""

    def _connect(self) -> None:
        """Make the device ready before each delivery (worker thread; quick when it is): raise `DeviceAbsent`
        when it is not there, and nothing else."""

    def _release(self) -> None:
        """Free the device; called once by `close` after the worker has stopped."""

    def _start(self) -> None:
        self._thread.start()

    # -- the Output interface -------------------------------------------------------------------------

    def show(self, leds: np.ndarray) -> None:
        frame = self._encode(leds)
        with self._cond:
            if self._slot is not None:
                self.stats.frames_dropped += 1
            if self._owed_since is None and self._waiting is None:
                self._owed_since = time.monotonic()  # the stall clock starts
            self._slot = frame
            self._cond.notify_all()

    def close(self) -> None:
        """Let the last frame out (unless the device is failing or absent), stop the worker, free the device.

        A frame still waiting at the end counts as failed: every frame shown is sent, dropped or failed.

        Bounded: everything within CLOSE_WAIT. A worker stuck in a call that never returns is left to the
        process exit (it is a daemon thread), and the device is then not released under it.
        """
        deadline = time.monotonic() + CLOSE_WAIT
        with self._cond:
            while (self._slot is not None or self._in_call) and self._problem is None and self._waiting is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._stop.set()
            self._cond.notify_all()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            if self._slot is not None:  # not tried: the device was failing, absent, or stuck
                self._slot = None
                self.stats.frames_failed += 1
        if self._thread.is_alive():
            self.log.warning(
                "%s: still stuck in a call to the device after %g s; left to the process exit", self.name, CLOSE_WAIT
            )
            return
        self._release()

    @property
    def stalled(self) -> bool:
        """True while frames were waiting and none completed for `stall_seconds` (plus one wire time)."""
        with self._cond:
            return self._check_stall(time.monotonic())

    @property
    def health(self) -> str:
        with self._cond:
            if self._check_stall(time.monotonic()):
                return f"stalled: {self._stall_reason()}"
            if self._waiting is not None:
                return self._waiting
            if self._problem is not None:
                return f"failing: {self._problem}"
            return HEALTH_OK

    # -- the worker thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0  # failed attempts in a row (connect or deliver): the backoff
        next_start = 0.0
        while True:
            with self._cond:
                while self._slot is None and not self._stop.is_set():
                    self._cond.wait()
                if self._slot is None:
                    return
            delay = next_start - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # at most one wire time; a frame arriving meanwhile replaces the waiting one
            with self._cond:
                self._in_call = CONNECTING
                if self._waiting is not None:
                    self._owed_since = time.monotonic()  # a connect call that hangs is a stall
            try:
                self._connect()
            except DeviceAbsent as exc:
                failures += 1
                self._absent(str(exc))
                if self._stop.wait(backoff(failures)):
                    return
                continue
            with self._cond:  # the newest frame, taken when the device is free (only this thread empties the slot)
                frame: FrameT = self._slot  # type: ignore[assignment]
                self._slot = None
                self._in_call = DELIVERING
                self._waiting = None
                if self._owed_since is None:
                    self._owed_since = time.monotonic()
                self._cond.notify_all()
            next_start = time.monotonic() + self.min_interval
            error = self._attempt(frame)
            with self._cond:
                self._in_call = None
                if error is None:
                    failures = 0
                    self._sent()
                else:
                    failures += 1
                    self._failed(error)
                self._cond.notify_all()
            if error is not None and self._stop.wait(backoff(failures)):
                return

    def _attempt(self, frame: FrameT) -> Exception | None:
        """Deliver one frame; None when it went out, else what went wrong."""
        try:
            self._deliver(frame)
        except Exception as exc:  # FrameFailed, or a bug in a driver or `_deliver`: the thread lives on
            return exc
        return None

    def _absent(self, reason: str) -> None:
        with self._cond:
            self.log.debug("%s: %s", self.name, reason)
            self._in_call = None
            self._waiting = reason
            self._owed_since = None  # waiting for a device is not a stall (only a connect call that hangs)
            self._check_stall(time.monotonic())
            self._cond.notify_all()

    # the helpers below run with self._cond held

    def _sent(self) -> None:
        now = time.monotonic()
        self.stats.frames_sent += 1
        if self._problem is not None and not self._stall_logged:
            self.log.info("%s: frames go out again", self.name)
        self._problem = None
        self._owed_since = now if self._slot is not None else None
        self._check_stall(now)

    def _failed(self, exc: Exception) -> None:
        self.stats.frames_failed += 1
        expected = isinstance(exc, FrameFailed)
        problem = str(exc) if expected else f"unexpected {type(exc).__name__}: {exc}"
        if self._problem is None:  # the first of a run of failures; a bug comes with its traceback
            level, exc_info = (logging.WARNING, None) if expected else (logging.ERROR, exc)
            self.log.log(level, "%s: %s", self.name, problem, exc_info=exc_info)
        else:
            self.log.debug("%s: %s", self.name, problem)
        self._problem = problem
        self._check_stall(time.monotonic())

    def _stall_reason(self) -> str:
        if self._problem is not None:
            return f"no frame went out for over {self.stall_seconds:g} s ({self._problem})"
        return f"{self._in_call or 'the worker'} has not returned for over {self.stall_seconds:g} s"

    def _check_stall(self, now: float) -> bool:
        """Whether the output is stalled now; logs once when a stall starts and once when it ends."""
        since = self._owed_since
        stalled = since is not None and now - since > self.stall_seconds + self.min_interval
        if stalled != self._stall_logged:
            self._stall_logged = stalled
            if stalled:
                self.log.warning("%s: stalled: %s; the watchdog stops", self.name, self._stall_reason())
            elif self._waiting is not None:
                self.log.info("%s: no longer stalled; %s", self.name, self._waiting)
            else:
                self.log.info("%s: no longer stalled: frames go out again", self.name)
        return stalled
