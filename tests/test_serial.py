"""Serial controllers through real pseudo-terminal pairs, with receivers that parse Adalight and TPM2."""

from __future__ import annotations

import logging
import os
import pty
import termios
import textwrap
import threading
import time
import tty
from pathlib import Path

import numpy as np
import pytest

from skyscreen_hw import config, layouts
from skyscreen_hw.errors import ConfigError, OutputError
from skyscreen_hw.outputs import plan
from skyscreen_hw.outputs.base import OutputStats
from skyscreen_hw.outputs.framing import Framer, adalight_header
from skyscreen_hw.outputs.record import read_recording
from skyscreen_hw.outputs.serial import SerialOutput
from skyscreen_hw.sources.shared_frame import FrameWriter


class Controller:
    """The controller end of a pty pair: reads the wire and parses every complete frame."""

    def __init__(self, protocol: str, count: int) -> None:
        self.master, slave = pty.openpty()
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.slave_path = os.ttyname(slave)
        self.slave = slave  # held open: reading a master whose slave was never opened fails with EIO
        self.protocol, self.count = protocol, count
        self.frames: list[bytes] = []
        self.garbage = 0
        self.reading = threading.Event()
        self.reading.set()
        self._buf = bytearray()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            if not self.reading.is_set():
                time.sleep(0.01)
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            self._buf += data
            self._parse()

    def _parse(self) -> None:
        n = self.count
        if self.protocol == "adalight":
            header, size, trailer = adalight_header(n), 3 * n, b""
        else:
            header, size, trailer = bytes([0xC9, 0xDA, (3 * n) >> 8, (3 * n) & 0xFF]), 3 * n, b"\x36"
        while True:
            at = self._buf.find(header)
            if at < 0 or len(self._buf) < at + len(header) + size + len(trailer):
                return
            self.garbage += at
            start = at + len(header)
            if self._buf[start + size : start + size + len(trailer)] != trailer:
                self.garbage += 1
                del self._buf[: at + 1]
                continue
            self.frames.append(bytes(self._buf[start : start + size]))
            del self._buf[: start + size + len(trailer)]

    def unplug(self) -> None:
        self._stop = True
        os.close(self.master)
        os.close(self.slave)
        self._thread.join(2)

    def wait_frames(self, n: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.frames) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.frames) >= n, f"controller got {len(self.frames)} frames, wanted {n}"


@pytest.fixture
def log() -> logging.Logger:
    return logging.getLogger("skyscreen.test")


def serial_cfg(port: str, **kw: object) -> config.OutputConfig:
    return config.parse({"outputs": [{"type": "serial", "port": port, **kw}]}).outputs[0]


def rgb(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3), dtype=np.uint8)


def test_adalight_and_tpm2_framing_bytes() -> None:
    # 300 LEDs: count - 1 = 299 = 0x012B; checksum 0x01 ^ 0x2B ^ 0x55 = 0x7F
    assert adalight_header(300) == b"Ada\x01\x2b\x7f"
    leds = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    assert bytes(Framer("adalight", 2, "GRB").encode(leds)) == b"Ada\x00\x01\x54" + bytes([2, 1, 3, 5, 4, 6])
    assert bytes(Framer("tpm2", 2, "BGR").encode(leds)) == b"\xc9\xda\x00\x06" + bytes([3, 2, 1, 6, 5, 4]) + b"\x36"
    with pytest.raises(ConfigError, match="TPM2 carries at most 21845 LEDs"):
        Framer("tpm2", 30000)


@pytest.mark.parametrize(("protocol", "order"), [("adalight", "RGB"), ("adalight", "GRB"), ("tpm2", "BRG")])
def test_every_frame_arrives_byte_for_byte_in_the_colour_order(protocol: str, order: str, log) -> None:
    n = 50
    ctl = Controller(protocol, n)
    out = SerialOutput(serial_cfg(ctl.slave_path, protocol=protocol, order=order, baud=2_000_000), n, log)
    frames = [rgb(n, i) for i in range(20)]
    for i, f in enumerate(frames, 1):
        out.show(f)
        ctl.wait_frames(i)  # each frame shown once the last one arrived: nothing to drop (no sleep to guess)
    out.close()
    ctl.wait_frames(20)
    index = ["RGB".index(c) for c in order]
    assert ctl.frames == [f[:, index].tobytes() for f in frames]
    assert out.stats == OutputStats(frames_sent=20) and ctl.garbage == 0
    ctl.unplug()


def test_frames_faster_than_the_wire_are_dropped_not_queued(log) -> None:
    n = 200  # 606 bytes: 52.6 ms a frame at 115200 baud
    ctl = Controller("adalight", n)
    out = SerialOutput(serial_cfg(ctl.slave_path, baud=115200), n, log)
    start = time.monotonic()
    slowest = 0.0
    for i in range(40):
        t = time.monotonic()
        out.show(np.full((n, 3), i, np.uint8))
        slowest = max(slowest, time.monotonic() - t)
        time.sleep(0.005)
    out.show(np.full((n, 3), 99, np.uint8))
    out.close()
    elapsed = time.monotonic() - start
    last = bytes([99]) * (3 * n)
    deadline = time.monotonic() + 5
    while (not ctl.frames or ctl.frames[-1] != last) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ctl.frames[-1] == last  # the latest frame wins, and the last one is sent before close returns
    assert slowest < 0.02  # show() never waited for the wire
    stats = out.stats
    assert stats.frames_sent + stats.frames_dropped == 41 and stats.frames_failed == 0
    assert stats.frames_sent <= elapsed / out.wire_seconds + 2  # never faster than the wire carries
    assert stats.frames_dropped >= 20
    assert len(ctl.frames) == stats.frames_sent


def test_controller_unplugged_and_back_resumes_within_2_s_logging_once(tmp_path: Path, caplog) -> None:
    n = 30
    link = tmp_path / "skyscreen"  # like the udev symlink /dev/skyscreen
    ctl = Controller("adalight", n)
    link.symlink_to(ctl.slave_path)
    log = logging.getLogger("skyscreen.test.unplug")
    with caplog.at_level(logging.DEBUG, logger="skyscreen.test.unplug"):
        out = SerialOutput(serial_cfg(str(link), baud=1_000_000), n, log)
        out.show(rgb(n, 1))
        ctl.wait_frames(1)
        ctl.unplug()  # the controller goes away
        link.unlink()
        for _ in range(30):  # frames keep coming for 0.6 s while it is gone
            out.show(rgb(n, 2))
            time.sleep(0.02)
        back = Controller("adalight", n)  # plugged in again, a new device node behind the same link
        link.symlink_to(back.slave_path)
        plugged = time.monotonic()
        frame = rgb(n, 3)
        while not back.frames and time.monotonic() - plugged < 3:
            out.show(frame)
            time.sleep(0.02)
        resumed = time.monotonic() - plugged
        out.close()
    back.wait_frames(1)
    assert resumed < 2.0 and back.frames[-1] == frame.tobytes()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "lost the controller" in warnings[0].getMessage()
    assert sum("reconnected" in r.getMessage() for r in caplog.records) == 1
    back.unplug()


def test_a_controller_that_stops_reading_never_stalls_show(log, caplog) -> None:
    n = 1000
    ctl = Controller("adalight", n)
    ctl.reading.clear()  # reads nothing: the pty buffer fills, writes time out
    out = SerialOutput(serial_cfg(ctl.slave_path, baud=2_000_000, write_timeout=0.2), n, log)
    with caplog.at_level(logging.WARNING, logger=log.name):
        worst = 0.0
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            t = time.monotonic()
            out.show(rgb(n, 0))
            worst = max(worst, time.monotonic() - t)
            time.sleep(1 / 60)
    assert worst < 0.05  # show() only fills the mailbox
    assert out.stats.frames_dropped > 50  # replaced in the mailbox while the writes time out
    assert out.stats.frames_failed >= 1  # the writes that timed out
    assert sum("stopped reading" in r.getMessage() for r in caplog.records) == 1
    ctl.reading.set()  # it reads again: frames flow
    out.show(rgb(n, 5))
    ctl.wait_frames(1)
    out.close()
    ctl.unplug()


def test_permission_denied_names_the_device_and_the_fix(tmp_path: Path, log) -> None:
    if os.geteuid() == 0:
        # root opens anything: make the open itself fail the way a device without access does
        def opener(url: str, baud: int, timeout: float) -> None:
            raise PermissionError(13, f"could not open port {url}: [Errno 13] Permission denied")

        with pytest.raises(OutputError) as caught:
            SerialOutput(serial_cfg("/dev/ttyACM0"), 10, log, opener=opener)
    else:
        dev = tmp_path / "ttyFAKE"
        dev.touch(mode=0o000)
        with pytest.raises(OutputError) as caught:
            SerialOutput(serial_cfg(str(dev)), 10, log)
    assert "permission denied" in str(caught.value) and "group 'skyscreen'" in str(caught.value)
    assert "udev/99-skyscreen.rules" in str(caught.value)


def test_a_missing_controller_at_start_is_waited_for(tmp_path: Path, log, caplog) -> None:
    """Waiting for a device that is not there is not a stall (a restart would not bring it back)."""
    link = tmp_path / "later"
    with caplog.at_level(logging.INFO, logger=log.name):
        out = SerialOutput(serial_cfg(str(link)), 10, log, stall_seconds=0.3)
        assert out.health.startswith(f"waiting for {link} (")
        out.show(rgb(10, 4))
        waited = time.monotonic()
        while time.monotonic() - waited < 1.0:  # over three stall times, with frames coming
            assert not out.stalled
            out.show(rgb(10, 4))
            time.sleep(0.02)
        ctl = Controller("adalight", 10)
        link.symlink_to(ctl.slave_path)
        ctl.wait_frames(1, timeout=3)
        assert out.health == "ok"
        out.close()
    assert ctl.frames[-1] == rgb(10, 4).tobytes()
    assert sum("cannot open" in r.getMessage() for r in caplog.records) == 1
    assert not any("stalled" in r.getMessage() for r in caplog.records)
    ctl.unplug()


def test_a_controller_that_accepts_nothing_stalls_the_output_without_spinning(log, caplog) -> None:
    """The pty's reader never reads: the kernel buffer fills and every write times out. After the stall
    time the output reports `stalled` (logged once), and the writer sleeps meanwhile: pyserial's own write
    loop would spin a core on EAGAIN for every write timeout (a spin detector, not a benchmark)."""
    n = 1000
    stall = 1.0
    ctl = Controller("adalight", n)
    ctl.reading.clear()
    out = SerialOutput(serial_cfg(ctl.slave_path, baud=2_000_000, write_timeout=0.2), n, log, stall_seconds=stall)
    frame = rgb(n, 6)
    with caplog.at_level(logging.INFO, logger=log.name):
        first = time.monotonic()
        deadline = first + 10
        while not out.stalled and time.monotonic() < deadline:
            out.show(frame)
            time.sleep(1 / 60)
        assert out.stalled and time.monotonic() - first > stall
        assert out.health.startswith("stalled: no frame went out") and "write timed out" in out.health
        cpu, start = time.process_time(), time.monotonic()
        while time.monotonic() - start < 2.0:  # stalled for 2 s more, frames still coming at 60 fps
            out.show(frame)
            time.sleep(1 / 60)
            assert out.stalled
        cpu = (time.process_time() - cpu) / (time.monotonic() - start)
        failed = out.stats.frames_failed
        ctl.reading.set()  # it reads again: frames flow, the stall ends
        deadline = time.monotonic() + 5
        while out.stalled and time.monotonic() < deadline:
            out.show(frame)
            time.sleep(1 / 60)
        assert not out.stalled and out.health == "ok"
        out.close()
    assert cpu < 0.2, f"the process used {cpu:.0%} of a core while the output was stalled"
    assert 2 <= failed <= 2.0 / 0.2 + 10  # every attempt waits out its timeout, plus a backoff
    messages = [r.getMessage() for r in caplog.records]
    assert sum(": stalled: " in m for m in messages) == 1
    assert sum("no longer stalled" in m for m in messages) == 1
    assert sum("stopped reading" in m and "stalled" not in m for m in messages) == 1
    ctl.wait_frames(1)
    assert ctl.frames[-1] == frame.tobytes()
    ctl.unplug()


# -- through the daemon --------------------------------------------------------------------------------------


def test_controllers_receive_exactly_the_recorded_frames(display_name: str, daemon_factory, tmp_path: Path) -> None:
    """Two controllers split a serpentine dome (ranges, orders, protocols); both match the recording."""
    h, w = 6, 10
    a, b = Controller("adalight", 25), Controller("tpm2", 35)
    rec = tmp_path / "rec.rgb"
    text = textwrap.dedent(
        f"""
        [frame]
        name = "{display_name}"
        height = {h}
        width = {w}
        [layout]
        serpentine = true
        [websocket]
        enabled = false
        [[outputs]]
        type = "serial"
        port = "{a.slave_path}"
        protocol = "adalight"
        order = "GRB"
        count = 25
        [[outputs]]
        type = "serial"
        port = "{b.slave_path}"
        protocol = "tpm2"
        baud = 1000000
        first = 25
        """
    )
    d = daemon_factory(text, "--record", str(rec))
    d.wait_for_log("running:")
    with FrameWriter(display_name, h, w, timeout=2.0) as writer:
        for i in range(8):
            writer.frame[:] = np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
            assert writer.flush()
            time.sleep(0.05)
    time.sleep(0.3)
    assert d.stop() == 0
    frames = read_recording(rec, h * w)
    a.wait_frames(len(frames))
    b.wait_frames(len(frames))
    assert frames[-1].sum() == 0  # the black frame at exit reached everyone
    assert a.frames == [f[:25][:, [1, 0, 2]].tobytes() for f in frames]
    assert b.frames == [f[25:].tobytes() for f in frames]
    a.unplug()
    b.unplug()


def test_output_ranges_beyond_the_layout_are_a_clear_error() -> None:
    """Checked in the plan, before any port is opened."""
    cfg = config.parse(
        {
            "frame": {"width": 10, "height": 2},
            "layout": {"type": "matrix"},
            "outputs": [{"type": "serial", "port": "loop://", "first": 15, "count": 10}],
        }
    )
    with pytest.raises(ConfigError, match=r"\[\[outputs\]\] #1 count: LEDs 15-24 run past the layout's 20 LEDs"):
        plan(cfg, layouts.build(cfg))


def test_a_wedged_port_reports_stalled_until_the_write_returns(log) -> None:
    """A write that hangs past its timeout (a wedged USB driver, which a pty cannot produce, so the port
    object is replaced at that boundary) makes the output `stalled`: the daemon then stops the watchdog."""
    release = threading.Event()

    class WedgedPort:
        def write(self, data: bytes) -> int:
            release.wait(10)
            return len(data)

        def close(self) -> None:
            pass

    out = SerialOutput(serial_cfg("/dev/wedged"), 10, log, opener=lambda url, baud, timeout: WedgedPort())
    out.stall_seconds = 0.2
    out.show(rgb(10, 1))
    time.sleep(0.5)
    assert out.stalled
    release.set()
    deadline = time.monotonic() + 2
    while out.stats.frames_sent < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not out.stalled and out.stats.frames_sent == 1
    out.close()
