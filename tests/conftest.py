"""Shared fixtures: a unique display name per test (cleaned up after) and a daemon launcher."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# pygame headless everywhere, including in daemons the tests start
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.pop("NOTIFY_SOCKET", None)
os.environ.pop("WRITER_FILE", None)


def remove_display(name: str) -> None:
    """Remove a display's frame file, lock file and semaphores, whatever state they are in."""
    import posix_ipc

    for suffix in ("frame", "lock"):
        Path(f"/dev/shm/{name}.{suffix}").unlink(missing_ok=True)
    for suffix in ("ready", "done"):
        with contextlib.suppress(posix_ipc.ExistentialError):
            posix_ipc.unlink_semaphore(f"/{name}.{suffix}")
    from skyscreen_hw.sources.frame_v2 import remove_frames

    remove_frames(name)  # the shared frame v2 every daemon makes beside v1


@pytest.fixture
def display_name() -> Iterator[str]:
    """A display name no other test uses; its shared memory is removed afterwards."""
    name = f"skytest-{uuid.uuid4().hex[:10]}"
    yield name
    remove_display(name)


class Daemon:
    """A real `python -m skyscreen_hw` process with a config file written for it."""

    def __init__(self, tmp_path: Path, config_text: str, *args: str, env: dict[str, str] | None = None):
        self.config_path = tmp_path / f"skyscreen-{uuid.uuid4().hex[:6]}.toml"
        self.config_path.write_text(config_text)
        self.log_path = tmp_path / f"daemon-{uuid.uuid4().hex[:6]}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "skyscreen_hw", "--config", str(self.config_path), *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 15.0) -> None:
        """Wait until the daemon's output contains ``text``; fail with the output if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"daemon never logged {text!r}; exit={self.proc.poll()} output:\n{self.log}")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator:
    """Start daemons with ``daemon_factory(config_text, *args)``; all are killed after the test."""
    started: list[Daemon] = []

    def start(config_text: str, *args: str, env: dict[str, str] | None = None) -> Daemon:
        d = Daemon(tmp_path, config_text, *args, env=env)
        started.append(d)
        return d

    yield start
    for d in started:
        d.kill()


# -- other users and processes running as them, for the shared frame's tests (tests/test_frame_*.py) ------

FRAME_GROUP = "skyfr-display"  # plays the display's group (`skyscreen` on a Pi)


@dataclasses.dataclass(frozen=True)
class FrameUsers:
    """Test accounts: ``daemon`` (primary group ``group``, like the `skyscreen` service user), ``writer``
    (own primary group, a member of ``group``, like a pattern programmer) and ``squatter`` (not in it)."""

    group: str
    gid: int
    daemon: str
    writer: str
    squatter: str


def _ensure_account(user: str, *useradd_args: str) -> None:
    import pwd

    try:
        pwd.getpwnam(user)
    except KeyError:
        # another test run may create it at the same moment: only its existence afterwards counts
        subprocess.run(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", *useradd_args, user], check=False)
        pwd.getpwnam(user)


@pytest.fixture(scope="session")
def frame_users() -> FrameUsers:
    """The test accounts (created with groupadd/useradd if missing); skips unless root."""
    import grp
    import shutil

    if os.geteuid() != 0:
        pytest.skip("needs root: creates test users and runs processes as them")
    if not (shutil.which("useradd") and shutil.which("groupadd")):
        pytest.skip("needs useradd and groupadd (package passwd) to create test users")
    subprocess.run(["groupadd", "-f", "-r", FRAME_GROUP], check=True)
    _ensure_account("skyfr-daemon", "-N", "-g", FRAME_GROUP)
    _ensure_account("skyfr-writer", "-U", "-G", FRAME_GROUP)
    _ensure_account("skyfr-squatter", "-U")
    return FrameUsers(FRAME_GROUP, grp.getgrnam(FRAME_GROUP).gr_gid, "skyfr-daemon", "skyfr-writer", "skyfr-squatter")


class UserProcess:
    """A forked child running a function as another user (see ``as_user``); ``result()`` joins it."""

    def __init__(self, pid: int, fd: int, what: str) -> None:
        self.pid, self.fd, self.what = pid, fd, what

    def result(self, timeout: float = 60.0) -> Any:
        """The function's return value; AssertionError with the child's exception if it raised or hung."""
        import pickle
        import select

        try:
            readable, _, _ = select.select([self.fd], [], [], timeout)
            data = b""
            if readable:
                with os.fdopen(self.fd, "rb") as pipe:
                    data = pipe.read()
                self.fd = -1
        finally:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        if not data:
            raise AssertionError(f"{self.what}: no result within {timeout} s (killed)")
        status, value = pickle.loads(data)
        if status != "ok":
            raise AssertionError(f"{self.what} raised {value}")
        return value


@pytest.fixture
def as_user() -> Iterator[Callable[..., UserProcess]]:
    """``as_user(user, fn, *args)`` runs ``fn(*args)`` in a forked process as ``user`` (its primary and
    supplementary groups); ``.result()`` returns what it returned. A fork, not python -m: the venv's
    interpreter may sit where other users cannot read it (e.g. under /root). Import what ``fn`` needs
    before calling: the child may not be allowed to read the interpreter's files."""
    import pickle
    import pwd

    started: list[UserProcess] = []

    def start(user: str, fn: Callable[..., Any], *args: Any) -> UserProcess:
        pw = pwd.getpwnam(user)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                os.close(read_fd)
                os.setgroups(os.getgrouplist(user, pw.pw_gid))
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
                try:
                    outcome: tuple[str, Any] = ("ok", fn(*args))
                except BaseException as exc:
                    outcome = ("error", f"{type(exc).__name__}: {exc}")
                with os.fdopen(write_fd, "wb") as pipe:
                    pickle.dump(outcome, pipe)
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        proc = UserProcess(pid, read_fd, f"{getattr(fn, '__name__', fn)} as {user}")
        started.append(proc)
        return proc

    yield start
    for proc in started:  # anything not joined by the test
        if proc.fd >= 0:
            with contextlib.suppress(AssertionError):
                proc.result(timeout=0)


@pytest.fixture
def protected_regular() -> Iterator[None]:
    """fs.protected_regular = 2 (Debian's and Raspberry Pi OS's value) for one test, restored after."""
    knob = Path("/proc/sys/fs/protected_regular")
    try:
        before = knob.read_text().strip()
        knob.write_text("2")
    except OSError as exc:
        pytest.skip(f"cannot set fs.protected_regular=2 ({exc.strerror}): needs root and a writable /proc/sys")
    try:
        yield
    finally:
        knob.write_text(before)


@pytest.fixture(scope="session")
def c_writer() -> Iterator[Path]:
    """examples/writer.c compiled (-Wall -Wextra -Werror) into a directory every user may run it from."""
    import shutil
    import tempfile

    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to compile examples/writer.c")
    where = Path(tempfile.mkdtemp(prefix="skyfr-writer-"))
    try:
        where.chmod(0o755)
        binary = where / "writer"
        source = Path(__file__).parent.parent / "examples" / "writer.c"
        subprocess.run(
            ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(binary), str(source), "-pthread"], check=True
        )
        yield binary
    finally:
        shutil.rmtree(where, ignore_errors=True)


# -- network inputs in this process, on a real network runtime (tests/test_inputs_*.py, tests/test_opc.py) --

LOOPBACK = "127.0.0.1"
SOCKET_TIMEOUT = 5.0  # seconds a test's socket waits for a reply


def loopback_input(config_type: type[Any], **keys: object) -> Any:
    """An [[inputs]] configuration of ``config_type`` listening on loopback, at a port the system picks."""
    return config_type(**{"bind": LOOPBACK, "port": 0, **keys})


def flat(source: Any) -> Any:
    """A network input's front buffer, one byte after another."""
    return source.front.reshape(-1)


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    """A UDP socket on loopback to send a test's packets from and take the replies on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    sock.settimeout(SOCKET_TIMEOUT)
    yield sock
    sock.close()


class InputRig:
    """A network runtime and a mixer; ``start(config)`` makes an [[inputs]] source listening on loopback."""

    def __init__(self) -> None:
        import logging

        from skyscreen_hw.mixer import Mixer
        from skyscreen_hw.net.runtime import NetworkRuntime

        self.log = logging.getLogger("skyscreen-test-inputs")
        self.runtime = NetworkRuntime(self.log)
        self.runtime.start()
        self.mixer = Mixer()
        self.sources: list[Any] = []

    def start(self, config: Any, frame: tuple[int, int] = (2, 4), leds: int = 8, number: int = 1) -> Any:
        from skyscreen_hw.sources.network_inputs import create_input

        source = create_input(config, number, frame, leds, self.mixer, self.runtime, self.log)
        source.start()
        self.sources.append(source)
        self.mixer.add(source)
        return source

    def frames(self, source: Any, count: int, timeout: float = 10.0) -> Any:
        """Wait until ``source`` made ``count`` deliveries in all; a copy of its front buffer (bounded wait)."""
        deadline = time.monotonic() + timeout
        while source.stats.frames < count and time.monotonic() < deadline:
            time.sleep(0.005)
        with self.mixer.lock:
            if source.stats.frames < count:
                made = source.stats.frames
                raise AssertionError(f"{source.name}: {made} deliveries, not {count}: {source.dropped()}")
            return source.front.copy()

    def until(self, check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.005)

    def close(self) -> None:
        for source in self.sources:
            source.close()
        self.runtime.stop()


@pytest.fixture
def input_rig() -> Iterator[InputRig]:
    rig = InputRig()
    try:
        yield rig
    finally:
        rig.close()


@pytest.fixture(params=["C", "numpy"])
def lookups(request: pytest.FixtureRequest) -> Any:
    """Each implementation of the byte lookups the colour step and the power limit run on: C, and numpy's."""
    from skyscreen_hw.color import COMPILED, Lookups

    if request.param == "numpy":
        return Lookups(compiled=None)
    if COMPILED is None:
        pytest.skip("the C lookups (skyscreen_hw._tables) were not built here")
    return Lookups(COMPILED)


# -- OLA's olad as its own user (tests/test_ola.py, tests/test_inputs_ola.py) -------------------------------

OLA_USER = "olad"  # made by Debian's ola package; a system user of our own when missing
OLA_PLUGINS = [  # every plugin olad 0.10 knows: all off but those a test enables
    *("artnet", "dummy", "e131", "espnet", "ftdidmx", "gpio", "karate", "kinet", "milinst", "opendmx"),
    *("openpixelcontrol", "osc", "pathport", "renard", "sandnet", "shownet", "spi", "stageprofi", "uartdmx"),
    *("usbdmx", "usbserial"),
]
OLAD_START = 20.0  # seconds olad may take to answer on its RPC port


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on just now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def olad(prefix: str, plugins: dict[str, str]) -> Iterator[tuple[int, Path]]:
    """olad running as OLA_USER (it refuses root) from a temporary configuration directory (named from
    ``prefix``) in which only ``plugins`` (name: the text of its ola-NAME.conf) are enabled; yields its RPC
    port and its log once the port answers, and stops it afterwards."""
    import shutil
    import tempfile

    _ensure_account(OLA_USER)
    where = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        for plugin, conf in {**dict.fromkeys(OLA_PLUGINS, "enabled = false\n"), **plugins}.items():
            (where / f"ola-{plugin}.conf").write_text(conf)
        shutil.chown(where, OLA_USER)
        for f in where.iterdir():
            shutil.chown(f, OLA_USER)
        rpc, log = free_tcp_port(), where / "olad.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    *("runuser", "-u", OLA_USER, "--", "olad", "-c", str(where), "--no-http"),
                    *("--no-register-with-dns-sd", "-r", str(rpc), "-l", "3"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + OLAD_START
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", rpc), timeout=1):
                    break
                assert proc.poll() is None, log.read_text()
                time.sleep(0.1)
            yield rpc, log
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        shutil.rmtree(where, ignore_errors=True)
