"""The Output base class and the latest-frame worker shared by the serial and ws281x outputs.

The worker is tested here through `Probe`, the smallest real subclass: its device is a list of
delivered frames behind events the test opens and closes (a call that hangs, fails, or finds no
device). The serial and ws281x tests exercise the same worker with a pty and rpi_ws281x.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from skyscreen_hw.outputs import worker
from skyscreen_hw.outputs.base import Output, OutputStats
from skyscreen_hw.outputs.worker import DeviceAbsent, FrameFailed, WorkerOutput


class Probe(WorkerOutput[bytes]):
    """A worker output whose device the test controls."""

    kind = "probe"

    def __init__(self, log: logging.Logger, stall_seconds: float = worker.STALL_SECONDS) -> None:
        super().__init__("probe", log, thread_name="probe", stall_seconds=stall_seconds)
        self.delivered: list[bytes] = []
        self.entered = threading.Event()  # set when a delivery starts
        self.release = threading.Event()  # deliveries wait for it: clear it to hang the device
        self.release.set()
        self.reachable = threading.Event()  # connects to a present device wait for it
        self.reachable.set()
        self.absent: str | None = None  # the DeviceAbsent message while the device is gone
        self.failures: list[BaseException] = []  # what the next deliveries raise, in turn
        self.released = False
        self._start()

    def _encode(self, leds: np.ndarray) -> bytes:
        return leds.tobytes()

    def _connect(self) -> None:
        if self.absent is not None:
            raise DeviceAbsent(self.absent)
        self.reachable.wait()

    def _deliver(self, frame: bytes) -> None:
        self.entered.set()
        self.release.wait()
        if self.failures:
            raise self.failures.pop(0)
        self.delivered.append(frame)

    def _release(self) -> None:
        self.released = True


@pytest.fixture
def log() -> logging.Logger:
    return logging.getLogger("skyscreen.test.worker")


@pytest.fixture
def probes() -> Iterator[list[Probe]]:
    """Probes made by a test, let go at the end so no worker thread stays blocked."""
    made: list[Probe] = []
    yield made
    for p in made:
        p.release.set()
        p.reachable.set()


def frame(value: int) -> np.ndarray:
    return np.full((4, 3), value, np.uint8)


def wait_until(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_the_base_class_defaults() -> None:
    class Plain(Output):
        def show(self, leds: np.ndarray) -> None:
            self.stats.frames_sent += 1

    out = Plain("plain")
    out.show(frame(1))
    out.close()
    assert (out.name, out.kind, out.stats) == ("plain", "output", OutputStats(frames_sent=1))
    assert not out.stalled and out.health == "ok" and out.snapshot("/nonexistent/x.png") is False
    with pytest.raises(TypeError):
        Output("no show")  # type: ignore[abstract]


def test_a_newer_frame_replaces_the_waiting_one(log, probes) -> None:
    p = Probe(log)
    probes.append(p)
    p.release.clear()
    p.show(frame(1))
    assert p.entered.wait(5)  # frame 1 is on its way (the device hangs on it)
    p.show(frame(2))  # waits in the mailbox
    p.show(frame(3))  # replaces frame 2
    assert p.stats == OutputStats(frames_dropped=1)
    p.release.set()
    p.close()
    assert p.delivered == [frame(1).tobytes(), frame(3).tobytes()]
    assert p.stats == OutputStats(frames_sent=2, frames_dropped=1) and p.released and p.health == "ok"


def test_every_frame_shown_is_sent_dropped_or_failed(log, probes) -> None:
    p = Probe(log)
    probes.append(p)
    p.failures = [FrameFailed("the device said no")] * 3
    for i in range(300):
        p.show(frame(i % 256))
        if i % 50 == 0:
            time.sleep(0.06)  # let the worker through a backoff now and then
    wait_until(lambda: p.stats.frames_sent >= 1, "the device to take frames again")
    p.show(frame(7))
    p.close()  # the device works: the last frame goes out first
    s = p.stats
    assert s.frames_sent + s.frames_dropped + s.frames_failed == 301
    assert s.frames_failed == 3 and p.delivered[-1] == frame(7).tobytes()


def test_an_absent_device_is_waited_for_not_stalled(log, probes, caplog) -> None:
    p = Probe(log, stall_seconds=0.3)
    probes.append(p)
    p.absent = "waiting for the probe (unplugged)"
    with caplog.at_level(logging.INFO, logger=log.name):
        p.show(frame(1))
        wait_until(lambda: p.health == "waiting for the probe (unplugged)", "the worker to notice")
        waited = time.monotonic()
        while time.monotonic() - waited < 1.0:  # over three stall times, frames coming
            assert not p.stalled
            p.show(frame(2))
            time.sleep(0.02)
        p.absent = None  # plugged in: the waiting frame goes out
        wait_until(lambda: p.delivered, "a delivery")
        p.close()
    assert p.delivered == [frame(2).tobytes()] and p.health == "ok"
    assert p.stats.frames_failed == 0 and p.stats.frames_sent == 1
    assert not any("stall" in r.getMessage() for r in caplog.records)


def test_a_connect_that_hangs_is_a_stall(log, probes, caplog) -> None:
    p = Probe(log, stall_seconds=0.3)
    probes.append(p)
    p.absent = "waiting for the probe"
    with caplog.at_level(logging.INFO, logger=log.name):
        p.show(frame(1))
        wait_until(lambda: p.health == "waiting for the probe", "the worker to notice")
        started = time.monotonic()
        p.reachable.clear()  # the device is there again, but opening it never returns
        p.absent = None
        wait_until(lambda: p.stalled, "the stall")
        assert time.monotonic() - started > 0.3 - 0.01  # not before the stall time (the open may start just before)
        assert p.health == "stalled: opening the device has not returned for over 0.3 s"
        p.reachable.set()
        wait_until(lambda: p.delivered, "a delivery")
        assert not p.stalled
        p.close()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "probe: stalled: opening the device has not returned for over 0.3 s; the watchdog stops",
        "probe: no longer stalled: frames go out again",
    ]


def test_a_delivery_that_hangs_is_a_stall_and_close_stays_bounded(log, probes, caplog, monkeypatch) -> None:
    monkeypatch.setattr(worker, "CLOSE_WAIT", 0.3)
    p = Probe(log, stall_seconds=0.2)
    probes.append(p)
    p.release.clear()
    with caplog.at_level(logging.INFO, logger=log.name):
        p.show(frame(1))
        wait_until(lambda: p.stalled, "the stall")
        assert p.health == "stalled: delivering a frame has not returned for over 0.2 s"
        p.show(frame(2))
        p.close()  # returns although the device never does
    assert not p.released  # not freed under the call that is still in it
    assert p.stats == OutputStats(frames_failed=1)  # frame 2 never left the mailbox; frame 1 is still in the call
    messages = [r.getMessage() for r in caplog.records]
    assert sum(": stalled: " in m for m in messages) == 1
    assert messages[-1] == "probe: still stuck in a call to the device after 0.3 s; left to the process exit"


def test_a_failing_device_is_logged_once_and_backed_off(log, probes, caplog) -> None:
    p = Probe(log)
    probes.append(p)
    p.failures = [FrameFailed("no answer")] * 6
    with caplog.at_level(logging.DEBUG, logger=log.name):
        start = time.monotonic()
        while len(p.delivered) < 1 and time.monotonic() - start < 10:
            p.show(frame(5))
            time.sleep(1 / 120)
        elapsed = time.monotonic() - start
        p.close()
    assert p.stats.frames_failed == 6 and p.stats.frames_sent >= 1
    assert elapsed >= sum(worker.backoff(i) for i in range(1, 7))  # it slept between the failed attempts
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert levels.count((logging.WARNING, "probe: no answer")) == 1
    assert levels.count((logging.DEBUG, "probe: no answer")) == 5
    assert (logging.INFO, "probe: frames go out again") in levels


def test_an_unexpected_error_keeps_the_worker_alive(log, probes, caplog) -> None:
    """A bug in a driver (not FrameFailed) is logged with its traceback once; frames keep going out."""
    p = Probe(log)
    probes.append(p)
    p.failures = [ValueError("driver bug")]
    with caplog.at_level(logging.WARNING, logger=log.name):
        p.show(frame(1))
        wait_until(lambda: p.stats.frames_failed == 1, "the failure")
        assert p.health == "failing: unexpected ValueError: driver bug"
        p.show(frame(2))
        wait_until(lambda: p.delivered, "a delivery")
        p.close()
    (record,) = caplog.records
    assert record.getMessage() == "probe: unexpected ValueError: driver bug" and record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is ValueError  # the traceback, for the bug report
    assert p.delivered == [frame(2).tobytes()] and p.stats == OutputStats(frames_sent=1, frames_failed=1)
