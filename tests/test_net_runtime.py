"""The network runtime: one asyncio thread for every socket, reached from other threads through call()."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect

from skyscreen_hw.config import WebsocketConfig
from skyscreen_hw.errors import SkyscreenError
from skyscreen_hw.net.runtime import NetworkError, NetworkRuntime, describe_address, is_local_address
from skyscreen_hw.sources import instructions as ins
from skyscreen_hw.sources.canvas import Canvas
from skyscreen_hw.sources.websocket import InstructionServer

LOG = logging.getLogger("skyscreen.test")


@pytest.fixture
def runtime() -> Iterator[NetworkRuntime]:
    rt = NetworkRuntime(LOG)
    rt.start()
    yield rt
    rt.stop()


def network_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ("network", "websocket")]


def test_call_runs_the_coroutine_on_the_network_thread_and_returns_its_result(runtime: NetworkRuntime) -> None:
    async def where() -> tuple[str, asyncio.AbstractEventLoop]:
        return threading.current_thread().name, asyncio.get_running_loop()

    assert runtime.call(where()) == ("network", runtime.loop)
    assert runtime.loop.is_running()


def test_call_raises_the_coroutines_own_exception(runtime: NetworkRuntime) -> None:
    async def fails() -> None:
        raise ValueError("from the loop")

    async def times_out() -> None:
        raise TimeoutError("its own timeout, not call()'s")

    with pytest.raises(ValueError, match="from the loop"):
        runtime.call(fails())
    with pytest.raises(TimeoutError, match="its own timeout"):
        runtime.call(times_out())
    assert runtime.call(asyncio.sleep(0, "still serving")) == "still serving"


def test_call_that_does_not_finish_in_time_is_cancelled_with_a_clear_error(runtime: NetworkRuntime) -> None:
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(NetworkError, match=r"forever did not finish within 0.2 s; cancelled"):
        runtime.call(forever(), timeout=0.2)
    assert cancelled.wait(5)
    assert runtime.call(asyncio.sleep(0, 1)) == 1


def test_call_from_the_network_thread_or_without_a_loop_is_an_error(runtime: NetworkRuntime) -> None:
    async def inner() -> None:
        runtime.call(asyncio.sleep(0))

    async def stop_inside() -> None:
        runtime.stop()

    with pytest.raises(NetworkError, match="from the network thread would wait for itself"):
        runtime.call(inner())
    with pytest.raises(NetworkError, match=r"stop\(\) from the network thread would wait for itself"):
        runtime.call(stop_inside())
    assert runtime.call(asyncio.sleep(0, "still running")) == "still running"
    stopped = NetworkRuntime(LOG)
    with pytest.raises(NetworkError, match=r"not running: call start\(\) first"):
        stopped.call(asyncio.sleep(0))
    with pytest.raises(NetworkError, match="not running"):
        _ = stopped.loop
    assert issubclass(NetworkError, SkyscreenError)


def test_stop_closes_registered_services_newest_first_then_ends_the_thread(caplog) -> None:
    rt = NetworkRuntime(LOG)
    rt.start()
    loop, order = rt.loop, []

    async def first() -> None:
        order.append(("first", threading.current_thread().name))

    async def broken() -> None:
        raise OSError("cannot close")

    async def last() -> None:
        order.append(("last", threading.current_thread().name))

    async def gone() -> None:
        order.append(("unregistered", ""))

    for name, close in [("first", first), ("broken", broken), ("gone", gone), ("last", last)]:
        rt.register(name, close)
    rt.unregister(gone)
    (thread,) = [t for t in threading.enumerate() if t.name == "network"]
    with caplog.at_level(logging.WARNING, "skyscreen"):
        rt.stop()
    assert order == [("last", "network"), ("first", "network")]  # a failing one does not stop the others
    assert [r.getMessage() for r in caplog.records] == ["network: closing broken: cannot close"]
    assert not thread.is_alive() and loop.is_closed() and not rt.running
    rt.stop()  # twice is fine
    rt.start()  # and it starts again, on a fresh loop
    assert rt.loop is not loop and rt.call(asyncio.sleep(0, "again")) == "again"
    rt.stop()


def test_the_instruction_server_runs_on_the_shared_runtime_thread(runtime: NetworkRuntime) -> None:
    """No thread of its own: its sessions run on the runtime's loop; stop() leaves the runtime serving."""
    canvas = Canvas()
    server = InstructionServer(WebsocketConfig(port=0), canvas, LOG, runtime)
    server.start()
    try:
        assert [t.name for t in network_threads()] == ["network"]

        async def draw() -> None:
            async with connect(f"ws://127.0.0.1:{server.port}") as ws:
                await ws.send(ins.pack([ins.pixel(4, 5, 15, 0, 0)]))
                await ws.send(ins.pack([ins.QUIT]))
                await ws.wait_closed()

        asyncio.run(draw())
        assert server.messages == 2  # counted before the server closed with "quit"
    finally:
        server.stop()
    assert runtime.running and runtime.call(asyncio.sleep(0, "on")) == "on"
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0  # the listening socket is closed


def test_an_instruction_server_without_a_runtime_owns_a_private_one() -> None:
    server = InstructionServer(WebsocketConfig(port=0), Canvas(), LOG)
    server.start()
    assert server.port and [t.name for t in network_threads()] == ["network"]
    server.stop()
    assert network_threads() == [] and not server.runtime.running


def test_a_server_that_cannot_listen_says_why_and_leaves_no_thread() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = InstructionServer(WebsocketConfig(port=port), Canvas(), LOG)
        with pytest.raises(SkyscreenError, match=rf"^\[websocket\] cannot listen on 127.0.0.1:{port}: .*another"):
            server.start()
    assert network_threads() == []


@pytest.mark.parametrize(
    ("family", "address", "local", "shown"),
    [
        (socket.AF_INET, ("127.0.0.1", 8765), True, "127.0.0.1:8765"),
        (socket.AF_INET, ("127.3.4.5", 1), True, "127.3.4.5:1"),
        (socket.AF_INET, ("0.0.0.0", 8765), False, "0.0.0.0:8765"),
        (socket.AF_INET, ("192.168.1.20", 8765), False, "192.168.1.20:8765"),
        (socket.AF_INET6, ("::1", 8765, 0, 0), True, "[::1]:8765"),
        (socket.AF_INET6, ("::", 8765, 0, 0), False, "[::]:8765"),
        (socket.AF_INET6, ("::ffff:127.0.0.1", 8765, 0, 0), True, "[::ffff:127.0.0.1]:8765"),
        (socket.AF_INET6, ("::ffff:10.0.0.1", 8765, 0, 0), False, "[::ffff:10.0.0.1]:8765"),
        (socket.AF_INET6, ("fe80::1%eth0", 8765, 0, 2), False, "[fe80::1%eth0]:8765"),
        (socket.AF_UNIX, "/run/skyscreen.sock", True, "unix:/run/skyscreen.sock"),
        (socket.AF_UNIX, b"\0skyscreen", True, "unix:@skyscreen"),
    ],
)
def test_which_listening_addresses_are_local(family: int, address: object, local: bool, shown: str) -> None:
    assert is_local_address(family, address) is local
    assert describe_address(family, address) == shown
