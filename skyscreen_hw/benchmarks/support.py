"""What the process benchmarks share: the dome they measure, displays cleaned up whatever happens, daemons and
their CPU time, and the C references they are held to."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from skyscreen_hw.sources.shared_frame import SHM_DIR

FPS = 60  # the dome's frame rate
HEIGHT, WIDTH = 360, 288  # the dome's frame: 360 vanes of 288 LEDs
CHECKOUT = Path(__file__).resolve().parents[2]  # the source tree these benchmarks run from
REFERENCES = CHECKOUT / "bench"  # the C references' sources (in a checkout)


def display_name() -> str:
    """A display name nobody else uses: its frame file, lock and semaphores are ours to remove."""
    return f"bench-{uuid.uuid4().hex[:10]}"


def display_files(name: str) -> list[Path]:
    """Everything in /dev/shm that belongs to display ``name``: frame file, lock, semaphores, leftovers."""
    return sorted([*SHM_DIR.glob(f"{name}.*"), *SHM_DIR.glob(f"sem.{name}.*")])


def remove_display(name: str) -> None:
    """Remove a display's frame file, lock file and semaphores (and any temporary file), whatever their state."""
    for path in display_files(name):
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def displays() -> Iterator[list[str]]:
    """A list to put display names in; every one is removed from /dev/shm at the end, also on errors."""
    names: list[str] = []
    try:
        yield names
    finally:
        for name in names:
            remove_display(name)


@contextlib.contextmanager
def terminated_by_sigterm() -> Iterator[None]:
    """While inside: SIGTERM raises SystemExit, so `finally` blocks still clean up (main thread only)."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread: nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Continue (if stopped), SIGTERM, wait; SIGKILL if it does not go."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by every thread of process ``pid``.

    From each thread's /proc/PID/task/TID/schedstat (nanoseconds); /proc/PID/stat utime + stime has the
    same meaning but counts in clock ticks (10 ms), too coarse for a C program using 12 ms a second.
    Falls back to /proc/PID/stat where schedstat is missing.
    """
    total = 0
    try:
        for task in os.scandir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += int(Path(task.path, "schedstat").read_text().split()[0])
        return total / 1e9
    except (FileNotFoundError, PermissionError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class DaemonProcess:
    """A real `python -m skyscreen_hw` process for a config text, logging into ``tmp``.

    It runs the code this benchmark imports, or with ``source`` another checkout's (e.g. to compare
    versions): that directory goes first on its PYTHONPATH, and it runs in ``tmp``, since `python -m` puts
    the working directory ahead of PYTHONPATH.
    """

    def __init__(self, tmp: str | Path, config_text: str, *args: str, source: str | None = None) -> None:
        tag = uuid.uuid4().hex[:6]
        cfg = Path(tmp) / f"bench-{tag}.toml"
        cfg.write_text(config_text)
        self.log_path = Path(tmp) / f"daemon-{tag}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "skyscreen_hw", "--config", str(cfg), *args],
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=tmp,
                env={**os.environ, "PYTHONPATH": source or str(CHECKOUT)},
            )
        self.url = ""

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_running(self, timeout: float = 30.0) -> None:
        """Wait for the daemon's `running:` line (and note its websocket URL); RuntimeError if it never comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log
            if "running:" in text:
                found = re.search(r"ws://[\w.\[\]:-]+:\d+", text)
                self.url = found.group(0) if found else ""
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"daemon did not start (exit {self.proc.poll()}):\n{self.log}")

    def stop(self) -> None:
        stop_process(self.proc)


def compile_reference(name: str, tmp: str, *libraries: str) -> tuple[str | None, str]:
    """The C reference ``bench/<name>.c`` built with ``gcc -O2`` into ``tmp`` (linked with ``libraries``):
    (its path, "") or (None, why not)."""
    source = REFERENCES / f"{name}.c"
    if not source.exists():
        return None, f"{source} not found (run from a checkout)"
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        return None, "no gcc on this machine"
    binary = str(Path(tmp) / name)
    done = subprocess.run(
        [gcc, "-O2", "-o", binary, str(source), *libraries], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return None, f"gcc failed: {done.stderr.strip()[:300]}"
    return binary, ""
