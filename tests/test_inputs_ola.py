"""OLA (the Open Lighting Architecture's olad) drives the network inputs: its E1.31 output (multicast, in a
network namespace of its own),
its Art-Net output (after finding our node through ArtPoll) and its OpenPixelControl client.

olad runs as another user (it refuses root) from a temporary configuration directory with only those
three plugins, all on loopback; OLA's own Python client (tests/test_ola.py's CLIENT) patches ports and
sends DMX. OLA sends on change only, so each test keeps sending fresh values until they arrive.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_tcp_port
from test_ola import ARTNET_CONF, Ola, _why_no_ola, running_ola

from skyscreen_hw.config import ArtnetInputConfig, OpcInputConfig
from skyscreen_hw.protocols import artnet
from skyscreen_hw.sources import network_inputs

# fixed ports (Art-Net 6454, olad's E1.31 5568): these modules run one test at a time, on one worker
pytestmark = [pytest.mark.xdist_group("network-ports"), pytest.mark.alone]  # olad: see pyproject markers

E131_PORT = 5568  # OLA sends E1.31 to this port only
OLA_NODE = "127.0.0.3"  # where our Art-Net input listens, beside olad's own Art-Net socket


OPC_PORT = free_tcp_port()


@pytest.fixture(scope="module")
def ola_sender() -> Iterator[Ola]:
    """olad with Art-Net on 127.0.0.1 (use_loopback) and an OPC client connecting to 127.0.0.1:OPC_PORT."""
    why = _why_no_ola()
    if why:
        pytest.skip(why)
    target = f"127.0.0.1:{OPC_PORT}"
    opc = f"enabled = true\ntarget = {target}\ntarget_{target}_channel = 0\n"
    with running_ola("skytest-ola-in-", {"artnet": ARTNET_CONF, "openpixelcontrol": opc}, ("ArtNet", "OPC")) as ola:
        yield ola


def keep_sending(ola: Ola, universe: int, check, what: str, timeout: float = 20.0, source=None) -> bytes:
    """Send fresh values on ``universe`` until ``check(values)`` holds (OLA sends on change only)."""
    deadline = time.monotonic() + timeout
    k = 0
    while time.monotonic() < deadline:
        k += 1
        values = bytes((k * 7 + i) % 256 for i in range(24))
        ola.client("send", universe, values.hex())
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            if check(values):
                return values
            time.sleep(0.02)
    state = f"{source.receiver.packets} packets, dropped {source.dropped()}" if source is not None else ""
    raise AssertionError(f"OLA's {what} never arrived ({state}):\n{ola.log.read_text()[-3000:]}")


def device(ola: Ola, word: str) -> dict:
    return ola.device(word)


# OLA's E1.31 plugin never uses a loopback interface (it takes the first other one, whatever its `ip`), so
# its E1.31 runs in a network namespace of its own: a veth pair with a private address, nothing else.
NAMESPACED = r"""
import json, subprocess, time
from pathlib import Path
for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "link", "add", "sky0", "type", "veth", "peer", "name", "sky1"],
            ["ip", "addr", "add", "10.77.0.1/24", "dev", "sky0"], ["ip", "link", "set", "sky0", "up"],
            ["ip", "link", "set", "sky1", "up"]):
    subprocess.run(cmd, check=True)
from conftest import InputRig
from test_ola import running_ola
from skyscreen_hw.config import E131InputConfig

conf = ("enabled = true\nip = 10.77.0.1\ninput_ports = 0\noutput_ports = 2\nignore_preview = true\n"
        "prepend_hostname = false\nrevision = 0.46\ndscp = 0\ndraft_discovery = false\n")
rig = InputRig()
result = {"ok": False}
try:
    source = rig.start(E131InputConfig(bind="10.77.0.1", port=5568, universe=1, channels_per_universe=12,
                                       allow=("10.77.0.0/24",)))
    result["joined"] = sorted(source.joined)
    with running_ola("skytest-ola-e131-", {"e131": conf}, ("E1.31",)) as ola:
        device = ola.device("E1.31")
        ola.client("patch", device["alias"], device["outputs"][0], 1, 1)
        deadline = time.monotonic() + 20
        k = 0
        while not result["ok"] and time.monotonic() < deadline:
            k += 1
            values = bytes((k * 7 + i) % 256 for i in range(24))
            ola.client("send", 1, values.hex())
            end = time.monotonic() + 0.5
            while time.monotonic() < end and not result["ok"]:
                result["ok"] = source.front.reshape(-1)[:12].tobytes() == values[:12]
                time.sleep(0.02)
        result.update(packets=source.receiver.packets, dropped=source.dropped(),
                      senders=source.receiver.senders_live(time.monotonic()))
        result["log"] = ola.log.read_text()[-2000:]
finally:
    rig.close()
print(json.dumps(result))
"""


def test_ola_e131_multicast_into_the_e131_input_in_a_network_namespace() -> None:
    why = _why_no_ola()
    if why:
        pytest.skip(why)
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2) for a private network namespace")
    tests = Path(__file__).parent
    done = subprocess.run(
        ["unshare", "-n", "--", sys.executable, "-c", NAMESPACED],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tests,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), str(tests.parent)])},
        check=False,
    )
    if done.returncode != 0 and "unshare failed" in done.stderr:
        pytest.skip(f"no private network namespace here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"], result
    assert result["joined"] == [1, 2] and result["senders"] == 1 and not result["dropped"].get("malformed")


def test_ola_artnet_finds_our_node_and_sends_it_artdmx(input_rig, ola_sender: Ola, monkeypatch) -> None:
    monkeypatch.setattr(network_inputs.ArtnetInput, "reuse_address", True)  # beside olad's own socket
    source = input_rig.start(ArtnetInputConfig(bind=OLA_NODE, port=artnet.PORT, universe=5, channels_per_universe=24))
    dev = device(ola_sender, "ArtNet")
    ola_sender.client("patch", dev["alias"], dev["outputs"][0], 1, 5)  # OLA sends universe 5 as Art-Net
    seen: list[str] = []
    deadline = time.monotonic() + 20
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as console:
        console.bind(("127.0.0.1", 0))
        while OLA_NODE not in seen and time.monotonic() < deadline:
            # a poll to our node's address from OLA's side: our replies go to whoever polled; OLA polls too
            console.sendto(artnet.poll_packet(0x02), (OLA_NODE, artnet.PORT))
            time.sleep(0.5)
            seen = ola_sender.client("nodes", dev["alias"], 5)[0]
    assert OLA_NODE in seen, ola_sender.log.read_text()[-2000:]
    keep_sending(ola_sender, 5, lambda v: source.front.reshape(-1).tobytes() == v, "Art-Net on port-address 5")


def test_ola_opc_client_into_the_opc_input(input_rig, ola_sender: Ola) -> None:
    source = input_rig.start(OpcInputConfig(bind="127.0.0.1", port=OPC_PORT))
    dev = device(ola_sender, "OPC")
    ola_sender.client("patch", dev["alias"], dev["outputs"][0], 1, 7)
    input_rig.until(lambda: len(source.clients) == 1, timeout=30, what="OLA's OPC client connected")
    keep_sending(ola_sender, 7, lambda v: source.front.reshape(-1).tobytes() == v, "OPC on channel 0")
    sock = next(iter(source.clients)).transport.get_extra_info("socket")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
