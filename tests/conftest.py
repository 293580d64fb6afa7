"""Shared fixtures: a unique display name per test (cleaned up after) and a daemon launcher."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

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
