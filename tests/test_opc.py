"""OpenPixelControl input: real TCP clients on loopback; the decoder alone on split streams."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
from conftest import LOOPBACK, flat, loopback_input

from skyscreen_hw.config import DdpInputConfig, OpcInputConfig
from skyscreen_hw.protocols import ddp, opc
from skyscreen_hw.protocols.universe_receiver import NOT_ALLOWED
from skyscreen_hw.sources import network_inputs


def config(**keys: object) -> OpcInputConfig:
    return loopback_input(OpcInputConfig, **keys)


def client(port: int) -> socket.socket:
    return socket.create_connection((LOOPBACK, port), timeout=5)


def closed_by_peer(c: socket.socket) -> bool:
    """The daemon closed (or reset) the connection."""
    try:
        return c.recv(10) == b""
    except ConnectionResetError:
        return True


def test_decoder_takes_messages_split_anywhere_and_holds_at_most_one() -> None:
    stream = opc.message(bytes(range(9))) + opc.message(b"", 3, 255) + opc.message(b"\x01\x02\x03", 1)
    for cut in range(1, len(stream)):
        decoder = opc.OpcDecoder()
        got = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert [(m.channel, m.command, m.data) for m in got] == [
            (0, 0, bytes(range(9))),
            (3, 255, b""),
            (1, 0, b"\x01\x02\x03"),
        ]
        assert not decoder.partial
    decoder = opc.OpcDecoder()
    assert decoder.feed(b"\x00\x00\xff\xff" + b"\x00" * 1000) == [] and decoder.partial


def test_several_clients_channels_commands_and_tcp_nodelay(input_rig) -> None:
    source = input_rig.start(config())
    a, b = client(source.port), client(source.port)
    try:
        a.sendall(opc.message(bytes([1] * 24)))  # channel 0: every channel
        input_rig.frames(source, 1)
        b.sendall(opc.message(bytes([2] * 6), channel=1))  # this display's channel: the latest wins
        input_rig.until(lambda: list(flat(source)[:7]) == [2] * 6 + [1], what="b's pixels over a's")
        a.sendall(opc.message(bytes([3] * 24), channel=2))  # another display's channel
        a.sendall(opc.message(bytes([3] * 24), command=255))  # system exclusive
        a.sendall(opc.message(bytes([3] * 24), command=7))  # unknown command
        a.sendall(opc.message(bytes([4] * 3000)))  # longer than the frame: the frame's 24 bytes taken
        input_rig.until(lambda: (flat(source) == 4).all(), what="the long message")
        assert dict(source.receiver.dropped) == {opc.IGNORED_CHANNEL: 1, opc.SYSEX: 1, opc.IGNORED_COMMAND: 1}
        assert len(source.clients) == 2
        for c in source.clients:
            sock = c.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        a.close()
        b.close()


def test_a_client_outside_allow_is_refused(input_rig, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=input_rig.log.name)
    source = input_rig.start(config(allow=("192.0.2.0/24",)))
    for _ in range(3):
        with client(source.port) as c:
            c.sendall(opc.message(bytes(24)))
            assert closed_by_peer(c)
    input_rig.until(lambda: source.dropped().get(NOT_ALLOWED) == 3, what="three refusals")
    assert source.stats.frames == 0
    assert sum("allow" in r.getMessage() for r in caplog.records) == 1


def test_too_many_clients(input_rig) -> None:
    source = input_rig.start(config())
    clients = [client(source.port) for _ in range(network_inputs.OPC_MAX_CLIENTS)]
    try:
        input_rig.until(lambda: len(source.clients) == network_inputs.OPC_MAX_CLIENTS, what="all admitted")
        with client(source.port) as extra:
            assert closed_by_peer(extra)
        assert source.receiver.dropped[network_inputs.TOO_MANY_CLIENTS] == 1
    finally:
        for c in clients:
            c.close()


def test_a_slow_client_does_not_hold_up_the_others_and_is_dropped(input_rig, monkeypatch) -> None:
    """A client declares a 60 KB message and sends one byte a second: the others' frames keep landing,
    and after OPC_MESSAGE_TIMEOUT (2 s here, 10 s in the daemon) the slow client is disconnected."""
    monkeypatch.setattr(network_inputs, "OPC_MESSAGE_TIMEOUT", 2.0)
    source = input_rig.start(config())
    slow, fast = client(source.port), client(source.port)
    try:
        slow.sendall(b"\x00\x00" + (60_000).to_bytes(2, "big"))
        for second in range(1, 4):
            with pytest.raises(OSError) if second == 3 else _nothing():
                for _ in range(10):
                    slow.send(b"\x07")  # one byte a second; the third second finds it disconnected
                    time.sleep(0.1)
            fast.sendall(opc.message(bytes([second] * 24)))
            input_rig.until(lambda second=second: flat(source)[0] == second, what=f"fast frame {second}")
        assert source.receiver.dropped[network_inputs.SLOW] == 1 and len(source.clients) == 1
    finally:
        slow.close()
        fast.close()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_100_megabytes_from_one_client_while_another_input_goes_on(input_rig) -> None:
    """One OPC client sends 100 MB of pixels as fast as loopback takes them; a DDP input at a higher
    priority keeps landing its frames meanwhile, and every OPC message is counted."""
    source = input_rig.start(config())
    other = input_rig.start(DdpInputConfig(bind=LOOPBACK, port=0, priority=150), number=2)
    message = opc.message(bytes([9] * 60_000))
    count = 100_000_000 // len(message)
    done = threading.Event()

    def flood() -> None:
        with client(source.port) as c:
            for _ in range(count):
                c.sendall(message)
        done.set()

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        sent = 0
        deadline = time.monotonic() + 60
        while not done.is_set() and time.monotonic() < deadline:
            sent += 1
            udp.sendto(ddp.packet(bytes([sent % 256] * 24), 0, push=True), (LOOPBACK, other.port))
            input_rig.until(lambda n=sent: flat(other)[0] == n % 256, what=f"DDP frame {sent} during the flood")
            time.sleep(0.01)
    thread.join(60)
    assert done.is_set() and sent >= 2
    input_rig.until(lambda: source.receiver.packets == count, timeout=30, what=f"{count} OPC messages")
    with input_rig.mixer.lock:
        assert input_rig.mixer.winner(time.monotonic()) is other
