"""The daemon under a service manager: a real NOTIFY_SOCKET listener, signals, reload, journal priorities."""

from __future__ import annotations

import grp
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from skyscreen_hw.outputs.record import read_recording
from skyscreen_hw.sources.shared_frame import FrameWriter

H, W = 4, 6


def display_config(name: str, brightness: float = 1.0, group: str = "skyscreen") -> str:
    return textwrap.dedent(
        f"""
        outputs = []
        [frame]
        name = "{name}"
        height = {H}
        width = {W}
        group = "{group}"
        [layout]
        type = "matrix"
        [color]
        gamma = 1.0
        brightness = {brightness}
        [display]
        fps = 30
        [websocket]
        enabled = false
        """
    )


class NotifyListener:
    """The service manager's end of NOTIFY_SOCKET: an AF_UNIX datagram socket, read by a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def wait_for(self, key: str, value: str | None = None, timeout: float = 15.0, since: int = 0) -> dict[str, str]:
        """The first message from index `since` on with key (= value)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, fields in self.messages[since:]:
                if key in fields and (value is None or fields[key] == value):
                    return fields
            time.sleep(0.02)
        raise AssertionError(f"no {key}={value} among {[m for _, m in self.messages]}")

    def times(self, key: str) -> list[float]:
        return [t for t, fields in self.messages if key in fields]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path):
    n = NotifyListener(tmp_path / "notify.sock")
    yield n
    n.close()


def feed(name: str, value: int, seconds: float) -> None:
    with FrameWriter(name, H, W, timeout=1.0) as w:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            w.frame[:] = value
            w.flush()
            time.sleep(0.02)


def test_ready_status_watchdog_and_stopping(display_name: str, daemon_factory, listener, tmp_path: Path) -> None:
    rec = tmp_path / "rec.rgb"
    env = {"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "400000", "WATCHDOG_PID": ""}
    d = daemon_factory(display_config(display_name), "--record", str(rec), env=env)
    ready = listener.wait_for("READY", "1")
    assert "LEDs" in ready["STATUS"] and "sources: shared frame" in ready["STATUS"]
    d.wait_for_log("running:")
    start = time.monotonic()
    feed(display_name, 200, 2.0)  # frames at 30 fps for 2 s
    end = time.monotonic()
    pings = [t for t in listener.times("WATCHDOG") if start <= t <= end]
    assert 6 <= len(pings) <= 14, len(pings)  # about every 0.2 s (half of WATCHDOG_USEC), not every frame
    statuses = [f["STATUS"] for _, f in listener.messages if "STATUS" in f and "READY" not in f]
    assert statuses, listener.messages
    rates = [float(s.split(" fps")[0]) for s in statuses]
    assert any(20 <= r <= 31 for r in rates), statuses  # fed at up to 30 fps ([display] fps = 30)
    last = statuses[-1]
    assert f"{H * W} LEDs" in last and "sources: shared frame (writing)" in last and "dropped frames" in last
    assert "sources: shared frame (idle)" in ready["STATUS"]  # no writer yet when it became ready
    begin = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(5) == 0
    assert time.monotonic() - begin < 2.0  # blanked and exited within 2 s
    listener.wait_for("STOPPING", "1", timeout=1)
    frames = read_recording(rec, H * W)
    assert (frames[:-1] == 200).all(axis=(1, 2)).any() and frames[-1].sum() == 0  # one black frame at the end


STUCK_DAEMON = """
import sys, threading, time
from skyscreen_hw import cli, daemon
from skyscreen_hw.config import SimulatorOutputConfig
from skyscreen_hw.outputs import OutputPlan
from skyscreen_hw.outputs.base import Output

real = daemon.open_outputs
forever = threading.Event()


class Stuck(Output):
    \"\"\"An output that wedges on the frame whose first LED is 99: `block` hangs in show, `flag` says stalled.\"\"\"

    def __init__(self, mode):
        super().__init__("stuck output")
        self.mode, self.wedged = mode, False

    @property
    def stalled(self):
        return self.wedged

    def show(self, leds):
        if leds[0, 0] == 99:
            if self.mode == "block":
                forever.wait()
            self.wedged = True


def opened(plans, layout, log, keep=None):
    extra = OutputPlan(len(plans) + 1, SimulatorOutputConfig(), 0, layout.count)
    return [*real(plans, layout, log, keep), (extra, Stuck(sys.argv[1]))]


daemon.open_outputs = opened
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("mode", ["block", "flag"])
def test_a_stuck_output_stops_the_watchdog_pings(display_name: str, listener, tmp_path: Path, mode: str) -> None:
    """A real daemon with one output replaced: blocking in show(), or reporting `stalled`, ends the pings."""
    cfg = tmp_path / "stuck.toml"
    cfg.write_text(display_config(display_name))
    env = {**os.environ, "NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen(
        [sys.executable, "-c", STUCK_DAEMON, mode, "--config", str(cfg)], env=env, stderr=subprocess.DEVNULL
    )
    try:
        listener.wait_for("READY", "1")
        feed(display_name, 50, 1.0)
        healthy = listener.times("WATCHDOG")
        assert len(healthy) >= 3  # pinging every 0.2 s while the output works
        feed(display_name, 99, 0.3)  # the output wedges on this frame
        wedged = time.monotonic()
        time.sleep(1.2)  # three watchdog timeouts (0.4 s): systemd would have aborted and restarted it
        late = [t for t in listener.times("WATCHDOG") if t > wedged + 0.1]
        assert late == [], f"{len(late)} pings after the output got stuck"
        if mode == "flag":  # the clock itself still runs, and says why it stopped pinging
            assert any("stalled: stuck output" in f.get("STATUS", "") for _, f in listener.messages)
            assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(5)


def test_a_watchdog_meant_for_another_process_is_ignored(display_name: str, daemon_factory, listener) -> None:
    env = {"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}
    d = daemon_factory(display_config(display_name), env=env)
    listener.wait_for("READY", "1")
    time.sleep(1.0)
    assert listener.times("WATCHDOG") == []
    assert d.stop() == 0


def test_sighup_reloads_a_good_configuration(display_name: str, daemon_factory, listener, tmp_path: Path) -> None:
    rec = tmp_path / "rec.rgb"
    d = daemon_factory(display_config(display_name), "--record", str(rec), env={"NOTIFY_SOCKET": str(listener.path)})
    listener.wait_for("READY", "1")
    d.wait_for_log("running:")
    feed(display_name, 200, 0.5)
    d.config_path.write_text(display_config(display_name, brightness=0.5))
    d.proc.send_signal(signal.SIGHUP)
    reloading = listener.wait_for("RELOADING", "1")
    assert int(reloading["MONOTONIC_USEC"]) > 0
    index = next(i for i, (_, f) in enumerate(listener.messages) if f.get("RELOADING") == "1")
    listener.wait_for("READY", "1", since=index + 1)  # READY again once the new configuration runs
    d.wait_for_log("reloaded:")
    feed(display_name, 200, 0.5)
    assert d.stop() == 0
    values = {int(f.max()) for f in read_recording(rec, H * W)}
    assert {200, 100} <= values  # before and after: brightness 0.5 took effect without a restart


def test_sighup_with_a_bad_configuration_keeps_the_running_one(
    display_name: str, daemon_factory, listener, tmp_path: Path
) -> None:
    rec = tmp_path / "rec.rgb"
    d = daemon_factory(display_config(display_name), "--record", str(rec), env={"NOTIFY_SOCKET": str(listener.path)})
    d.wait_for_log("running:")
    d.config_path.write_text("[color]\ngamma = -3\n")
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for_log("reload rejected")
    # systemd still hears the reload start and end, so `systemctl reload` never hangs on a rejected file
    listener.wait_for("RELOADING", "1")  # the listener's thread may read the datagram after the log line
    index = next(i for i, (_, f) in enumerate(listener.messages) if f.get("RELOADING") == "1")
    assert listener.wait_for("READY", "1", since=index + 1)["STATUS"].startswith("reload rejected")
    feed(display_name, 150, 0.5)  # still running, still showing, with the old configuration
    assert d.proc.poll() is None
    assert d.stop() == 0
    lines = [line for line in d.log.splitlines() if "reload" in line]
    assert len(lines) == 1 and "[color] gamma: must be >= 0.1" in lines[0]
    assert any(f.max() == 150 for f in read_recording(rec, H * W))


def test_the_frame_file_and_semaphores_belong_to_the_group_with_mode_0660(
    display_name: str, daemon_factory, tmp_path: Path
) -> None:
    if os.geteuid() == 0:
        group = f"sky{uuid.uuid4().hex[:8]}"
        subprocess.run(["groupadd", group], check=True)
    else:
        group = grp.getgrgid(os.getgid()).gr_name
    try:
        d = daemon_factory(display_config(display_name, group=group))
        d.wait_for_log("running:")
        gid = grp.getgrnam(group).gr_gid
        for path in (
            Path(f"/dev/shm/{display_name}.frame"),
            Path(f"/dev/shm/sem.{display_name}.ready"),
            Path(f"/dev/shm/sem.{display_name}.done"),
        ):
            st = path.stat()
            assert stat.S_IMODE(st.st_mode) == 0o660, path
            assert st.st_gid == gid, path
        assert d.stop() == 0
    finally:
        if os.geteuid() == 0:
            subprocess.run(["groupdel", group], check=False)


def test_logs_carry_journal_priorities_when_stderr_is_the_journal(tmp_path: Path) -> None:
    """With stderr connected to the journal ($JOURNAL_STREAM) and no systemd-python: `<N>` prefixes."""
    log = tmp_path / "stderr"
    code = textwrap.dedent(
        """
        import sys
        sys.modules["systemd"] = None  # as on a machine without systemd-python
        from skyscreen_hw.service import setup_logging
        log = setup_logging()
        log.info("hello")
        log.warning("careful")
        log.error("broken")
        """
    )
    with log.open("wb") as err:
        st = os.fstat(err.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        subprocess.run([sys.executable, "-c", code], stderr=err, env=env, check=True, timeout=30)
    assert log.read_text().splitlines() == ["<6>hello", "<4>careful", "<3>broken"]
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert plain.stderr.splitlines() == [
        "skyscreen-hw: hello",
        "skyscreen-hw: warning: careful",
        "skyscreen-hw: error: broken",
    ]


def test_no_notify_socket_means_no_notifications(display_name: str, daemon_factory, tmp_path: Path) -> None:
    d = daemon_factory(display_config(display_name), env={"NOTIFY_SOCKET": ""})
    d.wait_for_log("running:")
    assert d.stop() == 0
    assert "sd_notify" not in d.log
    np.testing.assert_equal(d.proc.returncode, 0)


def test_socket_activation_serves_the_websocket_on_the_passed_socket(display_name: str, tmp_path: Path) -> None:
    """As skyscreen.socket does: a listening socket as fd 3, LISTEN_PID and LISTEN_FDS set for the daemon."""
    import asyncio

    from websockets.asyncio.client import connect

    from skyscreen_hw.sources import instructions as ins

    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.bind(("127.0.0.1", 0))
    listening.listen(16)
    port = listening.getsockname()[1]
    cfg = tmp_path / "sock.toml"
    cfg.write_text(display_config(display_name).replace("enabled = false", "port = 1"))  # the config's port is unused
    rec = tmp_path / "rec.rgb"
    log = tmp_path / "log"
    fd = listening.fileno()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                "sh",
                "-c",
                'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -m skyscreen_hw "$@"',
                sys.executable,
                "--config",
                str(cfg),
                "--record",
                str(rec),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=(fd, 3),  # 3: the dup made in the child, kept open for the daemon
            preexec_fn=lambda: os.dup2(fd, 3),
        )
    listening.close()
    try:
        deadline = time.monotonic() + 15
        while "running:" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f"ws://127.0.0.1:{port}" in log.read_text()

        async def draw() -> None:
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                await ws.send(ins.pack([ins.pixel(0, 0, 15, 15, 15)]))
                await asyncio.sleep(0.3)

        asyncio.run(draw())
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    assert any(f.max() == 255 for f in read_recording(rec, H * W))


def test_without_systemd_python_the_datagrams_go_to_the_socket_directly(monkeypatch) -> None:
    """The fallback speaks sd_notify(3) itself, to an abstract socket (`@name`) as systemd may pass."""
    import logging

    from skyscreen_hw import service

    monkeypatch.setattr(service, "_systemd_daemon", lambda: None)
    name = f"skytest-notify-{uuid.uuid4().hex[:8]}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    svc = service.Service(f"@{name}", 1_000_000, logging.getLogger("test"))
    try:
        svc.ready("ok")
        asked: list[str] = []
        svc.tick(lambda: "later", alive=lambda: asked.append("stalled") or False)  # a stalled output: no ping
        svc.tick(lambda: "later", alive=lambda: asked.append("alive") or True)  # still due: pinged now
        svc.tick(lambda: "later", alive=lambda: asked.append("again") or True)  # next one 0.5 s away
        assert asked == ["stalled", "alive"]  # asked only while a ping was due
        svc.reloading()
        svc.stopping()
        received = [sock.recv(4096).decode() for _ in range(4)]
    finally:
        svc.close()
        sock.close()
    assert received[0] == "READY=1\nSTATUS=ok"
    assert received[1] == "WATCHDOG=1"
    assert received[2].startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert received[3].startswith("STOPPING=1\n")


def test_listen_fds_without_systemd_python_checks_the_pid_and_sets_cloexec(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import logging, os, sys
        sys.modules["systemd"] = None
        from skyscreen_hw.service import Service
        svc = Service(None, 0, logging.getLogger())
        print(svc.listen_fds(), os.get_inheritable(3), "LISTEN_FDS" in os.environ, svc.listen_fds())
        """
    )
    mine = subprocess.run(
        ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -c "$1" 3</dev/null', sys.executable, code],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert mine.stdout.split() == ["[3]", "False", "False", "[]"], mine.stderr  # once, close-on-exec, unset
    other = subprocess.run(
        ["sh", "-c", 'LISTEN_PID=1 LISTEN_FDS=1 exec "$0" -c "$1" 3</dev/null', sys.executable, code],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert other.stdout.split()[0] == "[]", other.stderr  # meant for another process


def test_under_systemd_with_systemd_python_the_log_goes_to_the_journal_with_priorities(monkeypatch) -> None:
    """stderr is the journal stream ($JOURNAL_STREAM matches it): native journal entries, with priorities."""
    import logging

    journal = pytest.importorskip("systemd.journal")
    from skyscreen_hw.service import setup_logging

    log = logging.getLogger("skyscreen")
    saved = list(log.handlers), log.propagate, log.level
    with open(os.devnull, "w") as devnull:
        st = os.fstat(devnull.fileno())
        monkeypatch.setattr(sys, "stderr", devnull)
        try:
            monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
            (handler,) = setup_logging().handlers
            assert isinstance(handler, journal.JournalHandler)
            levels = (logging.INFO, logging.WARNING, logging.ERROR)
            assert [handler.map_priority(level) for level in levels] == [6, 4, 3]
            monkeypatch.setenv("JOURNAL_STREAM", "1:2")  # another stream: plain lines on stderr
            (handler,) = setup_logging().handlers
            assert isinstance(handler, logging.StreamHandler) and not isinstance(handler, journal.JournalHandler)
        finally:
            log.handlers[:], log.propagate, log.level = saved  # other tests' caplog needs propagation back
