"""The receive thread of one UDP input: it waits on the input's sockets, reads them, and runs its timer.

The network runtime's asyncio loop opens an input's sockets and closes them; in between, one thread of
the input's own (named after the input) does everything else with them: it sleeps in poll(2) on the
sockets and a wake-up pipe, hands each readable socket to the input (``on_readable``, which reads with
recvmmsg, parses and delivers to the mixer), and calls ``on_tick`` every ``tick`` seconds (rates, sync
loss, receive-buffer overruns). Both system calls release the GIL, so a frame's burst costs one wake-up
and no event-loop round trip.

``stop()`` is the one way to end it: it sets the flag, writes a byte to the wake-up pipe (poll returns at
once, and so does ``pause``), and joins the thread; only then may the sockets be closed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable

JOIN_TIMEOUT = 2.0  # seconds stop() waits for the thread to end
MILLISECONDS = 1000.0


class ReceiveThread:
    """Poll ``sockets`` in a thread of its own; see the module's docstring."""

    def __init__(
        self,
        name: str,
        sockets: list[socket.socket],
        on_readable: Callable[[socket.socket], None],
        on_tick: Callable[[float], None],
        tick: float,
        log: logging.Logger,
    ) -> None:
        self.name = name
        self.sockets = list(sockets)
        self.on_readable = on_readable
        self.on_tick = on_tick
        self.tick = tick
        self.log = log
        self._stopping = threading.Event()
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake = select.poll()  # the wake-up pipe alone: pause() sleeps in it
        self._wake.register(self._wake_read, select.POLLIN)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._failures: set[str] = set()  # kinds of error already logged

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` on the thread (a burst arriving whole); False when stop() cut it short."""
        if self._stopping.is_set():
            return False
        return not self._wake.poll(seconds * MILLISECONDS)

    def stop(self) -> bool:
        """Wake the thread, wait for it to end (bounded); True when it ended. Safe to call twice."""
        self._stopping.set()
        if self._wake_write >= 0:
            with contextlib.suppress(BlockingIOError):  # the pipe is full of wake-ups already
                os.write(self._wake_write, b"x")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT)
        ended = not self._thread.is_alive()
        if ended and self._wake_write >= 0:
            os.close(self._wake_read)
            os.close(self._wake_write)
            self._wake_read = self._wake_write = -1
        return ended

    def _run(self) -> None:
        poller = select.poll()
        by_fd = {sock.fileno(): sock for sock in self.sockets}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        next_tick = time.monotonic() + self.tick
        while not self._stopping.is_set():
            wait = max(0.0, next_tick - time.monotonic())
            for fd, _events in poller.poll(wait * MILLISECONDS):
                sock = by_fd.get(fd)
                if sock is not None and not self._stopping.is_set():
                    self._guarded(self.on_readable, sock)
            now = time.monotonic()
            if now >= next_tick and not self._stopping.is_set():
                self._guarded(self.on_tick, now)
                next_tick = max(next_tick + self.tick, now)

    def _guarded(self, call: Callable[..., None], arg: object) -> None:
        """One callback; an exception is logged (once per kind) and the thread carries on, as the loop does."""
        try:
            call(arg)
        except Exception as exc:
            kind = type(exc).__name__
            if kind not in self._failures:
                self._failures.add(kind)
                self.log.exception("%s: %s", self.name, kind)
