"""UDP inputs read on a receive thread of their own: named after the input, ended and joined promptly by
close (also while datagrams keep arriving), and a failing callback does not end it."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from skyscreen_hw.config import ArtnetInputConfig, DdpInputConfig, E131InputConfig
from skyscreen_hw.protocols import ddp
from skyscreen_hw.sources.receive_thread import ReceiveThread

LOOPBACK = "127.0.0.1"
PROMPT = 0.5  # seconds close may take to end the thread (it is woken at once, not at its next tick)

CONFIGS = {
    "ddp": lambda: DdpInputConfig(bind=LOOPBACK, port=0),
    "e131": lambda: E131InputConfig(bind=LOOPBACK, port=0),
    "artnet": lambda: ArtnetInputConfig(bind=LOOPBACK, port=0),
}


def receive_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_each_udp_input_reads_on_a_thread_of_its_own_that_close_joins_promptly(input_rig, kind: str) -> None:
    source = input_rig.start(CONFIGS[kind]())
    assert len(receive_threads(source.name)) == 1
    started = time.monotonic()
    source.close()
    took = time.monotonic() - started
    assert receive_threads(source.name) == [], "close left the receive thread running"
    assert took < PROMPT, f"close took {took:.3f} s"
    assert source.sockets == []


def test_datagrams_arriving_during_close_are_no_crash(input_rig, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=input_rig.log.name)
    source = input_rig.start(DdpInputConfig(bind=LOOPBACK, port=0))
    to = (LOOPBACK, source.port)
    stop = threading.Event()

    def flood() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            frame = 0
            while not stop.is_set():
                out.sendto(ddp.packet(bytes([frame % 256] * 24), 0, push=True), to)
                frame += 1

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    try:
        input_rig.frames(source, 3)
        source.close()
    finally:
        stop.set()
        sender.join(5)
    assert receive_threads(source.name) == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_a_failing_callback_is_logged_once_and_the_thread_carries_on(caplog) -> None:
    log = logging.getLogger("skyscreen-test-receive-thread")
    caplog.set_level(logging.ERROR, logger=log.name)
    ticks: list[float] = []

    def fail(_now: float) -> None:
        ticks.append(_now)
        raise ValueError("broken")

    thread = ReceiveThread("receive test", [], lambda _sock: None, fail, 0.01, log)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while len(ticks) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        assert thread.stop()
    assert len(ticks) >= 3
    assert len([r for r in caplog.records if "ValueError" in r.getMessage()]) == 1


def test_stop_wakes_a_pause_at_once() -> None:
    thread = ReceiveThread("receive test", [], lambda _sock: None, lambda _now: None, 60.0, logging.getLogger())
    thread.start()
    started = time.monotonic()
    assert thread.stop()
    assert time.monotonic() - started < PROMPT
    assert not thread.pause(10.0), "a pause after stop returns at once"


def test_without_recvmmsg_the_thread_reads_one_datagram_at_a_time(input_rig, monkeypatch) -> None:
    from skyscreen_hw.sources import network_inputs

    monkeypatch.setattr(network_inputs.BatchReader, "make", classmethod(lambda cls, sock, *a: None))
    source = input_rig.start(DdpInputConfig(bind=LOOPBACK, port=0))
    assert source.reader is None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        out.sendto(ddp.packet(bytes(range(12)), 0), (LOOPBACK, source.port))
        out.sendto(ddp.packet(bytes(range(12, 24)), 12, push=True), (LOOPBACK, source.port))
    expected = list(range(24))
    input_rig.until(lambda: [int(v) for v in source.front.reshape(-1)] == expected, what="both datagrams landed")
    assert source.receiver.packets == 2 and source.dropped() == {}
