"""The network runtime: one asyncio event loop, in one thread named "network", for every socket.

Services (the websocket instruction server today; UDP, TCP and HTTP later) run their coroutines on this
one loop and register an async `close` that `stop()` runs, newest first, within a bounded time. Other
threads reach the loop only through `call()`, which runs a coroutine there and hands back its result or
its exception.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from skyscreen_hw.errors import SkyscreenError

T = TypeVar("T")

START_TIMEOUT = 10.0  # seconds for the thread to get its loop running
STOP_TIMEOUT = 2.0  # seconds for every registered service to close, then again for the thread to end

Closer = Callable[[], Awaitable[None]]


class NetworkError(SkyscreenError):
    """The network runtime cannot do what was asked (not running, called from its own thread, too slow)."""


class NetworkRuntime:
    """One asyncio loop in one daemon thread; `start()` returns once the loop runs."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closers: list[tuple[str, Closer]] = []
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise NetworkError("the network runtime is not running: call start() first")
        return self._loop

    @property
    def running(self) -> bool:
        return self._loop is not None

    def start(self) -> None:
        """Start the "network" thread and its loop; does nothing when already running."""
        if self._loop is not None:
            return
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._on_loop_error)
        ready = threading.Event()
        thread = threading.Thread(target=self._run, args=(loop, ready), name="network", daemon=True)
        thread.start()
        if not ready.wait(START_TIMEOUT):
            loop.call_soon_threadsafe(loop.stop)
            raise NetworkError(f"the network thread did not start within {START_TIMEOUT:g} s")
        self._loop, self._thread = loop, thread

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run `coro` on the loop from another thread; its result, or its exception raised here.

        NetworkError when the runtime is not running, when called from the network thread itself (that
        would wait for itself: await the coroutine there instead), or when `coro` takes longer than
        `timeout` seconds (it is cancelled then).
        """
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            coro.close()
            raise NetworkError("the network runtime is not running: call start() first")
        if threading.current_thread() is thread:
            coro.close()
            raise NetworkError("NetworkRuntime.call() from the network thread would wait for itself: await it")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            if future.done():  # the coroutine's own TimeoutError
                raise
            future.cancel()
            name = getattr(coro, "__qualname__", "a coroutine")
            raise NetworkError(f"network: {name} did not finish within {timeout:g} s; cancelled") from None

    def register(self, name: str, close: Closer) -> None:
        """`stop()` will await `close()` on the loop (newest first); `name` is for the log."""
        with self._lock:
            self._closers.append((name, close))

    def unregister(self, close: Closer) -> None:
        with self._lock:
            self._closers = [(n, c) for n, c in self._closers if c != close]

    def stop(self) -> None:
        """Close every registered service, stop the loop, join the thread; bounded, safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if threading.current_thread() is thread:
            raise NetworkError("NetworkRuntime.stop() from the network thread would wait for itself")
        with self._lock:
            closers, self._closers = self._closers[::-1], []
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, close in closers:
            try:
                self.call(_awaited(close), timeout=max(0.05, deadline - time.monotonic()))
            except Exception as exc:  # one service failing to close must not keep the others open
                self.log.warning("network: closing %s: %s", name, exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            self.log.warning("network: the network thread did not end within %g s", STOP_TIMEOUT)
        self._loop = self._thread = None

    def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:  # as asyncio.run ends: cancel what is left, finish async generators, close
            try:
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                if tasks:
                    loop.run_until_complete(asyncio.wait(tasks, timeout=STOP_TIMEOUT))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        self.log.error("network: %s%s", context.get("message", "error"), f": {exc!r}" if exc else "")


async def _awaited(close: Closer) -> None:
    await close()


# -- addresses -----------------------------------------------------------------------------------------------


def is_local_address(family: int, address: Any) -> bool:
    """Whether a socket bound to `address` (as getsockname gives it) is reachable from this machine only.

    Unix sockets are local; IPv4 and IPv6 (v4-mapped included) are local only on a loopback address, so
    the wildcards '0.0.0.0' and '::' are not.
    """
    if family == socket.AF_UNIX:
        return True
    if not isinstance(address, tuple) or not address:
        return False
    host = str(address[0]).split("%", 1)[0]  # a link-local IPv6 address may carry its %scope
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def describe_address(family: int, address: Any) -> str:
    """A socket address for messages: 127.0.0.1:8765, [::]:8765, unix:/run/x.sock, unix:@name."""
    if family == socket.AF_UNIX:
        if isinstance(address, bytes):
            address = address.decode(errors="replace")
        return f"unix:@{address[1:]}" if address.startswith("\0") else f"unix:{address or '(unnamed)'}"
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)
