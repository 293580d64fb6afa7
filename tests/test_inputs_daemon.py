"""Network inputs in real daemons: one daemon's network output (DDP, E1.31 with sync, Art-Net with ArtSync)
into another daemon's input on loopback, byte for byte what the sender recorded; reload and STATUS."""

from __future__ import annotations

import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import remove_display

from skyscreen_hw.outputs.record import read_recording
from skyscreen_hw.protocols import ddp
from skyscreen_hw.sources.shared_frame import FrameWriter

# fixed ports (Art-Net 6454, olad's E1.31 5568): these modules run one test at a time, on one worker
pytestmark = pytest.mark.xdist_group("network-ports")

WIDTH, HEIGHT = 60, 10  # a 600-LED matrix: 1,800 bytes, four universes of 510 channels
LEDS = WIDTH * HEIGHT


def daemon_text(name: str, tables: str, outputs_off: bool = False) -> str:
    return (
        ("outputs = []\n" if outputs_off else "")
        + f'[frame]\nname = "{name}"\nwidth = {WIDTH}\nheight = {HEIGHT}\n[layout]\ntype = "matrix"\n'
        + "[color]\ngamma = 1.0\n[websocket]\nenabled = false\n[display]\nfps = 30\n"
        + tables
    )


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def distinct(frames: np.ndarray) -> list[bytes]:
    """The frames with repeats folded and the black ones before the first picture left out."""
    out: list[bytes] = []
    for frame in frames:
        value = frame.tobytes()
        if (out and out[-1] == value) or (not out and not any(value)):
            continue
        out.append(value)
    return out


@pytest.fixture
def second_display() -> Iterator[str]:
    name = f"skytest-{uuid.uuid4().hex[:10]}"
    yield name
    remove_display(name)


@pytest.mark.parametrize(
    ("output", "input_"),
    [
        ('type = "ddp"\nhost = "127.0.0.1"\nport = {port}\n', 'type = "ddp"\nport = {port}\n'),
        (
            'type = "e131"\nhost = "127.0.0.1"\nport = {port}\nuniverse = 1\nsync_universe = 100\n',
            'type = "e131"\nport = {port}\nuniverse = 1\n',
        ),
        (
            'type = "artnet"\nhost = "127.0.0.1"\nport = {port}\nuniverse = 3\nsync = true\n',
            'type = "artnet"\nport = {port}\nuniverse = 3\n',
        ),
    ],
    ids=["ddp", "e131", "artnet"],
)
def test_one_daemons_output_into_anothers_input_byte_for_byte(
    daemon_factory: Callable, display_name: str, second_display: str, tmp_path: Path, output: str, input_: str
) -> None:
    port = free_port()
    receiver_rec, sender_rec = tmp_path / "received.rgb", tmp_path / "sent.rgb"
    receiving = daemon_factory(
        daemon_text(second_display, f'[[inputs]]\n{input_.format(port=port)}address = "leds"\npriority = 150\n', True),
        "--record",
        str(receiver_rec),
    )
    receiving.wait_for_log("running:")
    assert "listening on 127.0.0.1:" in receiving.log
    sending = daemon_factory(
        daemon_text(display_name, f"[[outputs]]\n{output.format(port=port)}"),
        "--record",
        str(sender_rec),
        env={"STATE_DIRECTORY": str(tmp_path)},
    )
    sending.wait_for_log("running:")
    with FrameWriter(display_name, HEIGHT, WIDTH, timeout=2.0) as w:
        for k in range(6):
            w.frame[:] = np.random.default_rng(k).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
            assert w.flush()
            time.sleep(0.25)  # each frame shown a while by both
    assert sending.stop() == 0
    time.sleep(0.5)
    assert receiving.stop() == 0
    sent = distinct(read_recording(sender_rec, LEDS))
    received = distinct(read_recording(receiver_rec, LEDS))
    assert len(sent) >= 6
    assert received == sent, f"{len(received)} frames received, {len(sent)} sent"


def test_reload_with_changed_inputs_says_restart(daemon_factory: Callable, display_name: str) -> None:
    port = free_port()
    text = daemon_text(display_name, f'[[inputs]]\ntype = "ddp"\nport = {port}\n', True)
    d = daemon_factory(text)
    d.wait_for_log("running:")
    d.config_path.write_text(text.replace(f"port = {port}", f"port = {port}\npriority = 120"))
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for_log("[[inputs]] changed: that needs a restart")
    # still listening as configured at the start: a frame arrives and is shown
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(ddp.packet(bytes([9] * LEDS * 3), push=True), ("127.0.0.1", port))
    assert d.stop() == 0
    assert "ddp input #1" in d.log


def test_an_input_whose_port_is_taken_stops_the_start_naming_the_key_and_the_fix(
    daemon_factory: Callable, display_name: str
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        d = daemon_factory(daemon_text(display_name, f'[[inputs]]\ntype = "ddp"\nport = {port}\n', True))
        assert d.proc.wait(30) == 1
    assert f"[[inputs]] #1 (ddp): cannot listen on 127.0.0.1:{port}" in d.log
    assert f"another program uses port {port}: choose another port" in d.log
    assert "Traceback" not in d.log
