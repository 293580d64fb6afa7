"""OLA (the Open Lighting Architecture's olad) receives E1.31 and Art-Net from the daemon, and sees its node.

olad runs as another user (it refuses root) with its configuration in a temporary directory: only the
E1.31 and Art-Net plugins, both on 127.0.0.1. A small client on OLA's own Python API (run by the system's
python3, where the `ola-python` package puts it) patches ports, records universes and asks for nodes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import OLAD_START, olad

from skyscreen_hw.outputs.record import read_recording
from skyscreen_hw.sources.shared_frame import FrameWriter

# fixed ports (Art-Net 6454, olad's E1.31 5568): these modules run one test at a time, on one worker
pytestmark = [pytest.mark.xdist_group("network-ports"), pytest.mark.alone]  # olad: see pyproject markers

SYSTEM_PYTHON = "/usr/bin/python3"

CLIENT = r"""
import array, json, socket, sys
from ola.ClientWrapper import ClientWrapper
from ola import Ola_pb2, ArtNetConfigMessages_pb2 as artnet

mode, port = sys.argv[1], int(sys.argv[2])
wrapper = ClientWrapper(socket=socket.create_connection(("127.0.0.1", port)))
client = wrapper.Client()
wrapper.AddEvent(int(float(sys.argv[-1]) * 1000), wrapper.Stop)  # every mode is bounded in time

def done(status, *rest):
    if not status.Succeeded():
        print(json.dumps({"error": status.message}), flush=True)
    wrapper.Stop()

if mode == "devices":
    def got(status, devices):
        print(json.dumps([{"alias": d.alias, "name": d.name, "inputs": [p.id for p in d.input_ports],
                           "outputs": [p.id for p in d.output_ports]} for d in devices or []]), flush=True)
        wrapper.Stop()
    client.FetchDevices(got)
elif mode == "patch":
    alias, port_id, is_output, universe = (int(x) for x in sys.argv[3:7])
    client.PatchPort(alias, port_id, bool(is_output), Ola_pb2.PATCH, universe, done)
elif mode == "record":
    universes = [int(u) for u in sys.argv[3].split(",")]
    pending = set(universes)
    def data(u):
        return lambda d: print(json.dumps({"u": u, "data": bytes(d).hex()}), flush=True)
    def registered(u):
        def cb(status):
            pending.discard(u)
            if not pending:
                print(json.dumps({"ready": True}), flush=True)
        return cb
    for u in universes:
        client.RegisterUniverse(u, client.REGISTER, data_callback=data(u), callback=registered(u))
elif mode == "nodes":
    alias, universe = int(sys.argv[3]), int(sys.argv[4])
    request = artnet.Request(type=artnet.Request.ARTNET_NODE_LIST_REQUEST,
                             node_list=artnet.NodeListRequest(universe=universe))
    def got(status, response):
        reply = artnet.Reply()
        reply.ParseFromString(response or b"")
        ips = [socket.inet_ntoa(n.ip_address.to_bytes(4, "little")) for n in reply.node_list.node]
        print(json.dumps(ips), flush=True)
        wrapper.Stop()
    client.ConfigureDevice(alias, request.SerializeToString(), got)
elif mode == "send":
    universe, data = int(sys.argv[3]), bytes.fromhex(sys.argv[4])
    client.SendDmx(universe, array.array("B", data), done)
wrapper.Run()
"""


def _why_no_ola() -> str | None:
    if shutil.which("olad") is None:
        return "olad is not installed (Debian package ola: ./dev.sh test installs it)"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import ola.ClientWrapper"], capture_output=True, check=False)
    if probe.returncode != 0:
        return "OLA's Python client is not installed (Debian package ola-python: ./dev.sh test installs it)"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "olad refuses to run as root and these tests start it as another user: needs root and runuser"
    return None


@dataclass
class Ola:
    rpc: int
    log: Path

    def client(self, *args: object, seconds: float = 10.0) -> list:
        done = subprocess.run(
            [SYSTEM_PYTHON, "-c", CLIENT, *map(str, args[:1]), str(self.rpc), *map(str, args[1:]), str(seconds)],
            capture_output=True,
            text=True,
            timeout=seconds + 20,
            check=False,
        )
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        assert done.returncode == 0 and not any(isinstance(x, dict) and "error" in x for x in lines), (
            done.stderr,
            lines,
        )
        return lines

    def device(self, word: str) -> dict:
        for d in self.client("devices")[0]:
            if word in d["name"]:
                return d
        raise AssertionError(f"no {word} device in OLA:\n{self.log.read_text()[-3000:]}")

    def record(self, universes: list[int], seconds: float = 30.0) -> subprocess.Popen:
        proc = subprocess.Popen(
            [SYSTEM_PYTHON, "-c", CLIENT, "record", str(self.rpc), ",".join(map(str, universes)), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline()) == {"ready": True}
        return proc


@contextlib.contextmanager
def running_ola(prefix: str, plugins: dict[str, str], devices: tuple[str, ...]) -> Iterator[Ola]:
    """conftest's ``olad`` with ``plugins`` enabled, and a client on it once a device whose name holds each of
    ``devices`` is registered."""
    with olad(prefix, plugins) as (rpc, log):
        ola = Ola(rpc, log)
        deadline = time.monotonic() + OLAD_START
        while time.monotonic() < deadline:  # every plugin up, its device registered
            names = " ".join(d["name"] for d in ola.client("devices")[0])
            if all(word in names for word in devices):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"OLA's {' and '.join(devices)} devices never came up:\n{log.read_text()[-3000:]}")
        yield ola


E131_RECEIVER_CONF = (
    "enabled = true\nip = 127.0.0.1\ninput_ports = 4\noutput_ports = 0\nignore_preview = true\n"
    "prepend_hostname = false\nrevision = 0.46\ndscp = 0\ndraft_discovery = false\n"
)
ARTNET_CONF = (
    "enabled = true\nip = 127.0.0.1\nuse_loopback = true\nnet = 0\nsubnet = 0\noutput_ports = 1\n"
    "always_broadcast = false\nuse_limited_broadcast = false\nshort_name = skytest\nlong_name = skytest\n"
)


@pytest.fixture(scope="module")
def ola() -> Iterator[Ola]:
    why = _why_no_ola()
    if why:
        pytest.skip(why)
    with running_ola("skytest-ola-", {"e131": E131_RECEIVER_CONF, "artnet": ARTNET_CONF}, ("E1.31", "ArtNet")) as o:
        yield o


def _daemon_text(name: str, width: int, height: int, output: str) -> str:
    return (
        f'[frame]\nname = "{name}"\nwidth = {width}\nheight = {height}\n[layout]\ntype = "matrix"\n'
        f"[color]\ngamma = 1.0\n[websocket]\nport = 0\n[display]\nfps = 30\n{output}"
    )


def _run(
    daemon_factory: Callable,
    ola_recorder: subprocess.Popen,
    text: str,
    name: str,
    shape: tuple[int, int],
    tmp_path: Path,
) -> tuple[np.ndarray, list[dict]]:
    """Run a daemon for a few distinct frames (each held a while), then stop it and the recorder."""
    height, width = shape
    rec = tmp_path / "rec.rgb"
    d = daemon_factory(text, "--record", str(rec), env={"STATE_DIRECTORY": str(tmp_path)})
    d.wait_for_log("running:")
    with FrameWriter(name, height, width, timeout=2.0) as w:
        for k in range(6):
            w.frame[:] = np.random.default_rng(k).integers(0, 256, (height, width, 3), dtype=np.uint8)
            assert w.flush()
            time.sleep(0.25)  # OLA passes each change on; these are spaced so none is merged away
    assert d.stop() == 0
    time.sleep(0.5)
    ola_recorder.terminate()
    out, _ = ola_recorder.communicate(timeout=10)
    updates = [json.loads(line) for line in out.splitlines() if line.strip()]
    return read_recording(rec, width * height).reshape(-1, width * height * 3), updates


def _per_universe(recorded: np.ndarray, first: int, universes: int, size: int) -> dict[int, list[bytes]]:
    """Each universe's channels, frame after frame, repeats folded (OLA passes on changes)."""
    want: dict[int, list[bytes]] = {}
    for i in range(universes):
        values: list[bytes] = []
        for frame in recorded:
            value = bytes(frame[i * size : (i + 1) * size])
            if not values or values[-1] != value:
                values.append(value)
        want[first + i] = values
    return want


def _seen(updates: list[dict], universe: int, size: int) -> list[bytes]:
    values: list[bytes] = []
    for u in updates:
        if u.get("u") == universe:
            value = bytes.fromhex(u["data"])[:size]
            if not values or values[-1] != value:
                values.append(value)
    return values


def test_ola_receives_the_daemons_e131_universe_by_universe(
    ola: Ola, daemon_factory: Callable, display_name: str, tmp_path: Path
) -> None:
    device = ola.device("E1.31")
    for port, universe in zip(device["inputs"][:4], range(1, 5), strict=True):
        ola.client("patch", device["alias"], port, 0, universe)
    recorder = ola.record([1, 2, 3, 4])
    text = _daemon_text(
        display_name,
        60,
        10,
        '[[outputs]]\ntype = "e131"\nhost = "127.0.0.1"\nuniverse = 1\npriority = 120\nsync_universe = 100\n',
    )
    recorded, updates = _run(daemon_factory, recorder, text, display_name, (10, 60), tmp_path)
    want = _per_universe(recorded, 1, 4, 510)
    for universe, values in want.items():
        assert _seen(updates, universe, 510) == values, f"universe {universe}"


def test_ola_receives_the_daemons_artnet_universe_by_universe(
    ola: Ola, daemon_factory: Callable, display_name: str, tmp_path: Path
) -> None:
    device = ola.device("ArtNet")
    for port, universe in zip(device["inputs"][:3], (17, 18, 19), strict=True):  # port-addresses 1, 2, 3
        ola.client("patch", device["alias"], port, 0, universe)
    recorder = ola.record([17, 18, 19])
    text = _daemon_text(
        display_name, 50, 10, '[[outputs]]\ntype = "artnet"\nhost = "127.0.0.1"\nuniverse = 1\nsync = true\n'
    )
    recorded, updates = _run(daemon_factory, recorder, text, display_name, (10, 50), tmp_path)
    want = _per_universe(recorded, 17, 3, 510)
    for universe, values in want.items():
        assert _seen(updates, universe, len(values[0])) == values, f"universe {universe}"


def test_ola_sees_our_artnet_node_and_sends_it_artdmx(ola: Ola, tmp_path: Path) -> None:
    """Our ArtPollReply, read by OLA: it lists the node for the port-address it receives, then sends it
    that universe's ArtDmx, which our parser reads back. The node listens on 127.0.0.2 beside olad."""
    import logging

    from skyscreen_hw.net.runtime import NetworkRuntime
    from skyscreen_hw.outputs.network import ArtnetNode, NetworkSender
    from skyscreen_hw.protocols import artnet

    device = ola.device("ArtNet")
    ola.client("patch", device["alias"], device["outputs"][0], 1, 5)  # OLA sends universe 5 as Art-Net
    log = logging.getLogger("skytest.ola")
    runtime = NetworkRuntime(log)
    runtime.start()
    sender = NetworkSender(runtime, log, owns_runtime=True)
    node = ArtnetNode(sender, log)
    got: list[artnet.Dmx] = []
    try:
        node.start("127.0.0.2", artnet.PORT, reuse_address=True)
        assert node.endpoint is not None
        node.ports.append(artnet.Port(5, receives=True))
        node.endpoint.handlers.append(
            lambda data, source: got.append(artnet.parse(data)) if artnet.opcode(data) == artnet.OP_DMX else None
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as console:
            console.bind(("127.0.0.1", 0))
            seen: list[str] = []
            deadline = time.monotonic() + 15
            while "127.0.0.2" not in seen and time.monotonic() < deadline:
                console.sendto(artnet.poll_packet(0x02), ("127.0.0.2", artnet.PORT))  # we answer OLA's port too
                time.sleep(0.3)
                seen = ola.client("nodes", device["alias"], 5)[0]
        assert "127.0.0.2" in seen, ola.log.read_text()[-2000:]
        data = bytes(range(1, 41))
        deadline = time.monotonic() + 10
        while not any(p.data[:40] == data for p in got) and time.monotonic() < deadline:
            ola.client("send", 5, data.hex())
            time.sleep(0.3)
        assert any(p.port_address == 5 and p.data[:40] == data for p in got), got[-3:]
    finally:
        node.stop()
        sender.close()
