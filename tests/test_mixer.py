"""The mixer: the highest-priority live source wins; a source that falls silent times out.

The rules on their own (sources fed by hand, no threads), then a real daemon process with a third,
made-up source beside the shared frame (fed by a real writer process) and the canvas.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from skyscreen_hw.config import FrameConfig
from skyscreen_hw.mixer import FRAME, LEDS, Mixer, Source
from skyscreen_hw.outputs.record import read_recording
from skyscreen_hw.sources.frame_source import PacedFrameSource, SharedFrameSource
from skyscreen_hw.sources.shared_frame import FrameWriter


def source(name: str, priority: int, timeout: float, address: str = FRAME) -> Source:
    return Source(name, (2, 2, 3) if address == FRAME else (4, 3), priority, timeout, address)


def deliver(mixer: Mixer, s: Source, value: int) -> None:
    s.back[:] = value
    mixer.deliver(s)


def take(mixer: Mixer) -> tuple[Source | None, bool]:
    with mixer.lock:
        return mixer.take(time.monotonic())


def test_highest_priority_live_source_wins_and_ties_go_to_the_latest() -> None:
    mixer = Mixer()
    low, high, peer = source("low", 100, 0), source("high", 150, 0.2), source("peer", 100, 0)
    for s in (low, high, peer):
        mixer.add(s)
    assert take(mixer) == (None, False)  # nobody delivered yet: nothing to show, nothing changes
    deliver(mixer, low, 1)
    assert take(mixer) == (low, True)
    assert take(mixer) == (low, False)  # nothing new
    deliver(mixer, high, 2)
    deliver(mixer, low, 3)  # a lower priority delivering does not take over
    winner, changed = take(mixer)
    assert winner is high and changed and int(high.front[0, 0, 0]) == 2
    deliver(mixer, peer, 4)  # same priority as low, later: wins the tie once high is gone
    time.sleep(0.25)  # high times out
    assert take(mixer) == (peer, True)
    deliver(mixer, low, 5)
    assert take(mixer) == (low, True)


def test_a_delivery_swaps_buffers_and_taking_releases_paced_producers() -> None:
    mixer = Mixer()
    s = source("leds", 100, 0, LEDS)
    mixer.add(s)
    back = s.back
    deliver(mixer, s, 7)
    assert s.front is back and s.fresh and not mixer.wait_consumed(s, 0.01)
    take(mixer)
    assert mixer.wait_consumed(s, 0.01) and not s.fresh


FAKE_SOURCE_DAEMON = """
import sys, threading, time
from skyscreen_hw import cli, daemon
from skyscreen_hw.mixer import LEDS, Source

start = daemon.Daemon.start


class Fake(Source):
    \"\"\"Delivers LED colours (wiring order) of 150 from 1.0 s to 2.0 s after the start, priority 150.\"\"\"

    def __init__(self, mixer, leds):
        super().__init__("fake", (leds, 3), 150, 0.5, LEDS)
        self.mixer = mixer
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.thread.start()

    def run(self):
        t0 = time.monotonic()
        while time.monotonic() < t0 + 2.0:
            if time.monotonic() >= t0 + 1.0:
                self.back[:] = 150
                self.mixer.deliver(self)
            time.sleep(0.02)


def start_with_fake(self):
    start(self)
    fake = Fake(self.mixer, self.pipeline.layout.count)
    self.mixer.add(fake)
    fake.start()


daemon.Daemon.start = start_with_fake
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_third_source_with_a_higher_priority_wins_then_times_out(display_name: str, tmp_path: Path) -> None:
    cfg = tmp_path / "mix.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            outputs = []
            [frame]
            name = "{display_name}"
            height = 4
            width = 6
            [layout]
            type = "matrix"
            [color]
            gamma = 1.0
            [websocket]
            enabled = false
            """
        )
    )
    rec = tmp_path / "rec.rgb"
    daemon = subprocess.Popen(
        [sys.executable, "-c", FAKE_SOURCE_DAEMON, "--config", str(cfg), "--record", str(rec), "--duration", "3.5"],
        stderr=subprocess.PIPE,
        text=True,
    )
    writer = textwrap.dedent(
        f"""
        import time
        from skyscreen_hw.sources.shared_frame import FrameWriter
        time.sleep(0.3)
        with FrameWriter({display_name!r}, 4, 6) as w:
            end = time.monotonic() + 3.5
            while time.monotonic() < end:
                w.frame[:] = 50
                w.flush(0.5)
        """
    )
    subprocess.run([sys.executable, "-c", writer], timeout=30, check=True)
    _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    values = [int(f.max()) for f in read_recording(rec, 24)]
    runs = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
    assert runs[-1] == 0  # the black frame of the stop
    # the writer's frames, the fake's while it delivers, the writer's again once the fake timed out
    assert [v for v in runs if v] == [50, 150, 50], runs
    fake = values.index(150)
    back = fake + values[fake:].index(50)
    assert 0.9 * 60 * 1.0 <= back - fake <= 60 * 1.5 + 10  # 1 s of delivery plus its 0.5 s timeout, at 60 fps
    assert all(f.min() == f.max() for f in read_recording(rec, 24)), "a frame mixed two sources"


class RecordingMixer(Mixer):
    """A mixer that notes which thread made each delivery."""

    def __init__(self) -> None:
        super().__init__()
        self.delivered_by: list[str] = []

    def deliver(self, source: Source) -> None:
        self.delivered_by.append(threading.current_thread().name)
        super().deliver(source)


def test_a_frame_flushed_before_the_tick_is_taken_by_the_clock_a_late_one_by_the_source_thread(
    display_name: str,
) -> None:
    """One thread wakes a frame when the writer keeps up; a frame that misses the tick is still taken at once."""
    config = FrameConfig(name=display_name, height=4, width=5)
    mixer = RecordingMixer()
    frames = SharedFrameSource(config, mixer, logging.getLogger("test"))
    mixer.add(frames)
    frames.start()
    writer = FrameWriter(display_name, 4, 5)
    try:
        writer.frame[:] = 7
        flushed = threading.Thread(target=writer.flush, name="writer")
        flushed.start()
        deadline = time.monotonic() + 5
        while frames.reader.ready.value == 0 and time.monotonic() < deadline:  # the writer posted
            time.sleep(0.005)
        mixer.poll()  # the clock's tick
        flushed.join(5)
        assert mixer.delivered_by == [threading.current_thread().name]
        assert take(mixer) == (frames, True) and (frames.front == 7).all()

        mixer.poll()  # a tick with nothing flushed: the source's thread waits for the writer
        writer.frame[:] = 9
        late = time.monotonic()
        assert writer.flush(5)
        while not frames.fresh and time.monotonic() < late + 5:
            time.sleep(0.005)
        assert mixer.delivered_by[1:] == ["shared frame"] and time.monotonic() - late < 1.0
        assert take(mixer) == (frames, True) and (frames.front == 9).all()
    finally:
        writer.close()
        frames.close()


class MadeUpSource(PacedFrameSource):
    """A paced source with no shared frame behind it: subclasses say what each read (``_take``) does."""

    class Reader:
        path = "(none)"
        frames_skipped = 0

        def close(self) -> None:
            pass

    def __init__(self, name: str, mixer: Mixer) -> None:
        super().__init__(name, FrameConfig(height=2, width=2), mixer, logging.getLogger("test"), self.Reader())
        self.reads = 0


class FailingOnceSource(MadeUpSource):
    """A paced source whose first read raises (a bug in a reader), then delivers whatever comes."""

    def __init__(self, mixer: Mixer) -> None:
        super().__init__("flaky", mixer)

    def _take(self, timeout: float) -> bool:
        self.reads += 1
        if self.reads == 1:
            raise RuntimeError("a bug in the reader")
        self.back[:] = self.reads
        return True


def test_a_read_failing_at_the_tick_never_holds_the_clock_and_the_thread_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mixer = RecordingMixer()
    flaky = FailingOnceSource(mixer)
    mixer.add(flaky)
    flaky.start()
    try:
        started = time.monotonic()
        mixer.poll()  # the clock's tick: the read raises
        assert time.monotonic() - started < 0.1  # logged and handed to the thread, no back-off here
        assert "flaky: reading failed" in caplog.text
        deadline = time.monotonic() + 5
        while not flaky.fresh and time.monotonic() < deadline:
            time.sleep(0.005)
        assert mixer.delivered_by == ["flaky"]  # the source's thread took over
        assert take(mixer) == (flaky, True) and (flaky.front == 2).all()
    finally:
        flaky.close()


class SilentSource(MadeUpSource):
    """A paced source whose writer never flushes: each read waits its timeout and finds nothing."""

    def __init__(self, mixer: Mixer) -> None:
        super().__init__("silent", mixer)

    def _take(self, timeout: float) -> bool:
        self.reads += 1
        time.sleep(timeout)
        return False


def _thread_named(name: str) -> threading.Thread:
    """The running thread called ``name`` (a paced source's thread is named after the source)."""
    (found,) = [t for t in threading.enumerate() if t.name == name]
    return found


def _wakeups(thread: threading.Thread) -> int:
    """How often the kernel has woken ``thread`` from a wait (its voluntary context switches)."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


def test_an_idle_source_thread_sleeps_until_a_tick_hands_it_work_and_close_wakes_it_at_once() -> None:
    """No frame wanted: the source's thread does not wake at all (a daemon with nothing to show costs
    nothing); handed a wait, it reads in slices; close ends either wait promptly."""
    mixer = Mixer()
    silent = SilentSource(mixer)
    mixer.add(silent)
    silent.start()
    thread = _thread_named("silent")
    try:
        time.sleep(0.1)  # the thread is in its wait for work
        before = _wakeups(thread)
        time.sleep(0.6)
        assert _wakeups(thread) == before and silent.reads == 0
        started = time.monotonic()
        silent.close()
        assert time.monotonic() - started < 0.1 and not thread.is_alive()
    finally:
        if thread.is_alive():  # an assertion failed before the close
            silent.close()

    mixer = Mixer()
    silent = SilentSource(mixer)
    mixer.add(silent)
    silent.start()
    thread = _thread_named("silent")
    mixer.poll()  # the tick finds nothing: the thread waits for the writer, a slice at a time
    deadline = time.monotonic() + 5
    while silent.reads < 3 and time.monotonic() < deadline:  # the tick's read, then the thread's slices
        time.sleep(0.01)
    assert silent.reads >= 3
    started = time.monotonic()
    silent.close()
    assert time.monotonic() - started < 0.5 and not thread.is_alive()  # within one slice (0.25 s)
