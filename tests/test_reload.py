"""Reload in place and the frame clock, through real daemon processes.

A serial output on pyserial's ``socket://`` URL talks to a TCP server in the test: each (re)open of the
port is a new connection, so the test sees exactly when the daemon reopened the controller, and every
Adalight frame it sent (parsed here from the format, not with our encoder).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from skyscreen_hw.color import gamma_table
from skyscreen_hw.outputs.record import read_recording
from skyscreen_hw.sources.shared_frame import FrameWriter

H, W = 6, 8


class AdalightServer:
    """A TCP controller: accepts connections, parses Adalight frames (b"Ada", hi, lo, hi^lo^0x55, RGB...)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.frames: list[tuple[int, bytes]] = []  # (connection number, RGB payload)
        self.times: list[float] = []  # when each frame arrived
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._read, args=(conn, number), daemon=True).start()

    def _read(self, conn: socket.socket, number: int) -> None:
        buf = b""
        with conn:
            while chunk := conn.recv(65536):
                buf += chunk
                while (start := buf.find(b"Ada")) >= 0 and len(buf) >= start + 6:
                    hi, lo, check = buf[start + 3 : start + 6]
                    if check != hi ^ lo ^ 0x55:
                        buf = buf[start + 1 :]
                        continue
                    size = ((hi << 8) + lo + 1) * 3
                    if len(buf) < start + 6 + size:
                        break
                    with self._lock:
                        self.frames.append((number, buf[start + 6 : start + 6 + size]))
                        self.times.append(time.monotonic())
                    buf = buf[start + 6 + size :]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def controller():
    server = AdalightServer()
    yield server
    server.close()


def config_text(name: str, port: int, *, gamma: float = 1.0, baud: int = 1000000, fps: float = 30) -> str:
    return textwrap.dedent(
        f"""
        [frame]
        name = "{name}"
        height = {H}
        width = {W}
        [layout]
        type = "matrix"
        [color]
        gamma = {gamma}
        [display]
        fps = {fps}
        [websocket]
        enabled = false
        [[outputs]]
        type = "serial"
        port = "socket://127.0.0.1:{port}"
        baud = {baud}
        """
    )


class Feeder:
    """A writer process-like thread flushing one value until stopped."""

    def __init__(self, name: str, value: int) -> None:
        self.value = value
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(name,), daemon=True)
        self._thread.start()

    def _run(self, name: str) -> None:
        with FrameWriter(name, H, W) as w:
            while not self._stop.is_set():
                w.frame[:] = self.value
                w.flush(0.5)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def wait_until(predicate, timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        time.sleep(0.02)


def reload(d, text: str, expect: str = "reloaded:") -> None:
    before = d.log.count(expect)
    d.config_path.write_text(text)
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: d.log.count(expect) > before, what=f"{expect!r} after SIGHUP:\n{d.log}")


def test_changing_gamma_neither_blinks_nor_reopens_the_controller(
    display_name: str, daemon_factory, controller: AdalightServer
) -> None:
    d = daemon_factory(config_text(display_name, controller.port))
    d.wait_for_log("running:")
    feeder = Feeder(display_name, 128)
    try:
        wait_until(lambda: any(f[1][:1] == b"\x80" for f in controller.frames), what="frames of 128")
        reload(d, config_text(display_name, controller.port, gamma=2.2))
        bright = bytes([gamma_table(2.2, 1.0)[128]])
        wait_until(lambda: controller.frames[-1][1][:1] == bright, what="the new gamma on the wire")
        time.sleep(0.3)
    finally:
        feeder.stop()
    assert d.stop() == 0
    payloads = [p for _, p in controller.frames]
    firsts = [p[0] for p in payloads[:-1]]  # the last frame is the black one of the stop
    firsts = firsts[firsts.index(128) :]  # (before the writer's first frame the LEDs were black)
    assert 0 not in firsts, "a black frame went out during the reload"
    assert controller.connections == 1, "the controller was reopened for a gamma change"
    # and the clock did not freeze: frames kept coming through the reload (30 fps; a reopen took 0.3-0.8 s)
    start = len(payloads) - len(firsts) - 1
    assert max(np.diff(controller.times[start:-1])) < 0.2


def test_changing_the_outputs_own_keys_reopens_only_that_output(
    display_name: str, daemon_factory, controller: AdalightServer
) -> None:
    d = daemon_factory(config_text(display_name, controller.port))
    d.wait_for_log("running:")
    feeder = Feeder(display_name, 90)
    try:
        wait_until(lambda: len(controller.frames) > 3, what="frames")
        reload(d, config_text(display_name, controller.port, baud=500000))
        wait_until(lambda: controller.connections == 2, what="a second connection")
        wait_until(lambda: controller.frames[-1][0] == 2, what="frames on the new connection")
    finally:
        feeder.stop()
    assert d.stop() == 0


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "has no settings"),
        ("\n# only a comment\n", "has no settings"),
        ("[color]\ngamma = 2.", "not valid TOML"),
        ("[display]\nfps = nan\n", "[display] fps: must be a finite number"),
        ("[color]\nbrightness = inf\n", "[color] brightness: must be a finite number"),
    ],
)
def test_a_bad_file_on_reload_is_rejected_with_the_real_reason(
    display_name: str, daemon_factory, controller: AdalightServer, content: str, reason: str
) -> None:
    d = daemon_factory(config_text(display_name, controller.port))
    d.wait_for_log("running:")
    feeder = Feeder(display_name, 77)
    try:
        wait_until(lambda: len(controller.frames) > 3, what="frames")
        reload(d, content, expect="reload rejected")
        seen = len(controller.frames)
        wait_until(lambda: len(controller.frames) > seen + 5, what="frames after the rejected reload")
    finally:
        feeder.stop()
    assert d.proc.poll() is None
    assert d.stop() == 0
    rejected = [line for line in d.log.splitlines() if "reload rejected" in line]
    assert len(rejected) == 1 and reason in rejected[0], d.log
    assert "Traceback" not in d.log
    assert controller.connections == 1
    assert all(p[0] == 77 for _, p in controller.frames[3:-1])  # the old configuration kept showing


def test_frame_and_websocket_changes_on_reload_name_the_keys(display_name: str, daemon_factory, tmp_path) -> None:
    server = AdalightServer()
    try:
        d = daemon_factory(config_text(display_name, server.port))
        d.wait_for_log("running:")
        reload(d, config_text(display_name, server.port).replace(f"height = {H}", "height = 7"), "reload rejected")
        assert d.stop() == 0
    finally:
        server.close()
    assert "[frame] height changed: that needs a restart" in d.log


def test_the_clock_keeps_an_absolute_schedule(display_name: str, daemon_factory, tmp_path: Path) -> None:
    """60.0 fps over 10 s with a writer that keeps up (a schedule of `now + period` gave 58.5)."""
    text = config_text(display_name, 1).replace("fps = 30", "fps = 60").split("[[outputs]]")[0]
    d = daemon_factory("outputs = []\n" + text)
    d.wait_for_log("running:")
    script = textwrap.dedent(
        f"""
        import time
        from skyscreen_hw.sources.shared_frame import FrameWriter
        with FrameWriter({display_name!r}, {H}, {W}) as w:
            times = []
            end = time.monotonic() + 12
            while time.monotonic() < end:
                w.frame[:] = len(times) % 256
                if w.flush(1.0):
                    times.append(time.monotonic())
        print(" ".join(f"{{t:.6f}}" for t in times))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    times = np.array([float(t) for t in out.stdout.split()])
    window = times[(times >= times[0] + 1.0) & (times < times[0] + 11.0)]  # 10 s after a second of warm-up
    fps = (len(window) - 1) / (window[-1] - window[0])
    assert 59.7 <= fps <= 60.3, f"{fps:.2f} fps"
    assert d.stop() == 0


def test_a_very_low_fps_still_pings_the_watchdog(display_name: str, daemon_factory, tmp_path: Path) -> None:
    """fps = 0.2 (one frame in 5 s): the watchdog, due every 0.2 s, hears from the clock all along."""
    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(0.5)
    text = "outputs = []\n" + config_text(display_name, 1).replace("fps = 30", "fps = 0.2").split("[[outputs]]")[0]
    d = daemon_factory(text, env={"NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "400000"})
    pings: list[float] = []
    deadline = time.monotonic() + 8
    try:
        while time.monotonic() < deadline and len(pings) < 15:
            try:
                message = sock.recv(4096).decode()
            except TimeoutError:
                continue
            if "WATCHDOG=1" in message:
                pings.append(time.monotonic())
    finally:
        sock.close()
    assert d.stop() == 0
    assert len(pings) >= 15, pings
    assert max(np.diff(pings)) < 0.4  # never a gap a watchdog of 0.4 s would punish


def test_record_is_whole_frames_after_reload_of_the_layout(display_name: str, daemon_factory, tmp_path: Path) -> None:
    """A reload that changes the layout's wiring goes on recording the same LED count, remapped."""
    rec = tmp_path / "rec.rgb"
    text = "outputs = []\n" + config_text(display_name, 1).split("[[outputs]]")[0]
    d = daemon_factory(text, "--record", str(rec))
    d.wait_for_log("running:")
    with FrameWriter(display_name, H, W) as w:
        w.frame[:] = 0
        w.frame[0, :, 0] = 200  # row 0 red
        assert w.flush(2.0)
        time.sleep(0.3)
        reload(d, text.replace('type = "matrix"', 'type = "matrix"\norigin = "bottom-left"'))
        time.sleep(0.3)
    assert d.stop() == 0
    frames = read_recording(rec, H * W)
    lit = [tuple(np.flatnonzero(f[:, 0])) for f in frames if f[:, 0].any()]
    assert tuple(range(W)) in lit and tuple(range((H - 1) * W, H * W)) in lit  # top row, then bottom-left origin
