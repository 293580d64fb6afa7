"""Network outputs end to end: real daemons sending DDP, E1.31 and Art-Net to receivers on loopback.

The receivers are independent of the daemon's encoders: DDP is decoded here from the 3waylabs header
layout, E1.31 by the `sacn` package's own receiver, Art-Net from the specification's field offsets.
Every address is on 127.0.0.0/8; every loop is bounded in count and time.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from skyscreen_hw.outputs.record import read_recording
from skyscreen_hw.sources.shared_frame import FrameWriter

# fixed ports (Art-Net 6454, olad's E1.31 5568): these modules run one test at a time, on one worker
pytestmark = pytest.mark.xdist_group("network-ports")

SO_TIMESTAMPNS = 35  # <asm-generic/socket.h>: kernel receive time of each datagram, struct timespec
LOOPBACK = "127.0.0.1"
COLLECT_LIMIT = 20.0  # seconds any receiver thread runs at most


@dataclass
class Datagram:
    receiver: int
    stamp: int  # kernel receive time, ns
    data: bytes


@dataclass
class Receivers:
    """UDP sockets on loopback, read by one thread until stopped (or COLLECT_LIMIT)."""

    count: int
    socks: list[socket.socket] = field(default_factory=list)
    got: list[Datagram] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        for _ in range(self.count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.bind((LOOPBACK, 0))
            s.setblocking(False)
            self.socks.append(s)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def ports(self) -> list[int]:
        return [s.getsockname()[1] for s in self.socks]

    def _run(self) -> None:
        end = time.monotonic() + COLLECT_LIMIT
        index = {s.fileno(): i for i, s in enumerate(self.socks)}
        while not self._stop.is_set() and time.monotonic() < end:
            ready, _, _ = select.select(self.socks, [], [], 0.05)
            for s in ready:
                for _ in range(1000):
                    try:
                        data, anc, _, _ = s.recvmsg(65536, 64)
                    except BlockingIOError:
                        break
                    stamp = 0
                    for level, kind, raw in anc:
                        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                            sec, nsec = struct.unpack("qq", raw[:16])
                            stamp = sec * 1_000_000_000 + nsec
                    self.got.append(Datagram(index[s.fileno()], stamp, data))

    def stop(self, settle: float = 0.3) -> None:
        time.sleep(settle)  # what is in flight on loopback arrives within this
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for s in self.socks:
            s.close()

    def of(self, receiver: int) -> list[bytes]:
        return [d.data for d in self.got if d.receiver == receiver]


@pytest.fixture
def receivers() -> Iterator[Callable[[int], Receivers]]:
    made: list[Receivers] = []

    def make(count: int) -> Receivers:
        r = Receivers(count)
        made.append(r)
        return r

    yield make
    for r in made:
        with contextlib.suppress(OSError):
            r.stop(0)


def dead_port() -> int:
    """A loopback UDP port nobody listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def config(name: str, width: int, height: int, outputs: str) -> str:
    return (
        f'[frame]\nname = "{name}"\nwidth = {width}\nheight = {height}\n[layout]\ntype = "matrix"\n'
        "[color]\ngamma = 1.0\n[websocket]\nport = 0\n[display]\nfps = 60\n" + outputs
    )


def output(kind: str, port: int, first: int = 0, count: int = 0, **keys: object) -> str:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
    return (
        f'[[outputs]]\ntype = "{kind}"\nhost = "{LOOPBACK}"\nport = {port}\nfirst = {first}\ncount = {count}\n{extra}'
    )


def feed(name: str, height: int, width: int, frames: int, picture: Callable[[int], np.ndarray]) -> int:
    """Write ``frames`` frames through the shared frame, each waited for; how many the daemon took."""
    taken = 0
    with FrameWriter(name, height, width, timeout=2.0) as w:
        for k in range(frames):
            w.frame[:] = picture(k)
            taken += bool(w.flush())
    return taken


def random_picture(height: int, width: int) -> Callable[[int], np.ndarray]:
    def picture(k: int) -> np.ndarray:
        return np.random.default_rng(k).integers(0, 256, (height, width, 3), dtype=np.uint8)

    return picture


def run_daemon(daemon_factory: Callable, text: str, rec: Path, state: Path) -> object:
    d = daemon_factory(text, "--record", str(rec), env={"STATE_DIRECTORY": str(state)})
    d.wait_for_log("running:")
    return d


# -- DDP ---------------------------------------------------------------------------------------------------


@dataclass
class DdpFrame:
    data: bytes
    packets: list[tuple[int, int, int, bool]]  # (offset, length, sequence, push) as received


def spec_ddp_frames(datagrams: list[bytes], size: int) -> list[DdpFrame]:
    """Frames as a DDP display assembles them, decoded from the 3waylabs header by hand: byte 0 flags
    (VV = 01, P = push), byte 1 low nibble sequence, byte 2 data type, byte 3 destination, bytes 4-7 offset and
    8-9 length big-endian; on each push the display shows its buffer."""
    display = bytearray(size)
    frames, packets = [], []
    for d in datagrams:
        assert len(d) >= 10 and d[0] >> 6 == 1, d[:10]
        assert d[2] == 0x0B and d[3] == 1  # RGB 8-bit, the default display
        offset, length = int.from_bytes(d[4:8], "big"), int.from_bytes(d[8:10], "big")
        assert len(d) == 10 + length
        display[offset : offset + length] = d[10:]
        packets.append((offset, length, d[1] & 0x0F, bool(d[0] & 0x01)))
        if d[0] & 0x01:
            frames.append(DdpFrame(bytes(display), packets))
            packets = []
    assert not packets, "packets after the last push"
    return frames


def test_ddp_frames_arrive_whole_in_packet_bytes_packets_byte_identical_to_the_recording(
    daemon_factory: Callable, display_name: str, receivers: Callable[[int], Receivers], tmp_path: Path
) -> None:
    height, width, packet_bytes = 12, 50, 300  # 600 LEDs = 1800 bytes: 6 packets of 300
    rx = receivers(1)
    rec = tmp_path / "rec.rgb"
    text = config(display_name, width, height, output("ddp", rx.ports[0], order="GRB", packet_bytes=packet_bytes))
    d = run_daemon(daemon_factory, text, rec, tmp_path)
    assert feed(display_name, height, width, 20, random_picture(height, width)) >= 10
    assert d.stop() == 0
    rx.stop()
    frames = spec_ddp_frames(rx.of(0), width * height * 3)
    recorded = read_recording(rec, width * height)
    assert len(frames) == len(recorded) >= 10
    for frame, leds in zip(frames, recorded, strict=True):
        assert frame.data == leds[:, [1, 0, 2]].tobytes()  # GRB on the wire
        assert [p[0] for p in frame.packets] == list(range(0, 1800, packet_bytes))
        assert all(p[1] == packet_bytes for p in frame.packets)
        assert [p[3] for p in frame.packets] == [False] * 5 + [True]  # push on the last packet only
    sequences = [p[2] for f in frames for p in f.packets]
    assert all(1 <= s <= 15 for s in sequences)
    assert all(b == a % 15 + 1 for a, b in itertools.pairwise(sequences))


def test_eight_controllers_get_all_of_a_frames_data_before_any_push(
    daemon_factory: Callable, display_name: str, receivers: Callable[[int], Receivers], tmp_path: Path
) -> None:
    """One daemon, 8 DDP controllers: for every frame, each controller's data arrives before any controller's
    push (kernel receive times on loopback), and all controllers show the same frame numbers."""
    controllers, height, width = 8, 40, 60  # 2,400 LEDs, 300 each: 2 packets of 480 LEDs... 1 + 1 short
    per = height * width // controllers
    rx = receivers(controllers)
    outs = "".join(output("ddp", port, i * per, per, packet_bytes=600) for i, port in enumerate(rx.ports))
    d = run_daemon(daemon_factory, config(display_name, width, height, outs), tmp_path / "rec.rgb", tmp_path)
    end, k = time.monotonic() + 10.0, 0
    with FrameWriter(display_name, height, width, timeout=2.0) as w:
        while time.monotonic() < end and k < 300:
            k += 1
            w.frame[:] = k % 250 + 1  # the frame's number in every byte
            w.flush()
    assert d.stop() == 0
    rx.stop()
    assert k >= 30
    pushes: list[list[Datagram]] = [
        [g for g in rx.got if g.receiver == i and g.data[0] & 1] for i in range(controllers)
    ]
    data: list[list[Datagram]] = [
        [g for g in rx.got if g.receiver == i and not g.data[0] & 1] for i in range(controllers)
    ]
    counts = {len(p) for p in pushes}
    assert len(counts) == 1 and counts.pop() >= 30, [len(p) for p in pushes]
    for i in range(controllers):
        assert len(data[i]) == len(pushes[i]) * 1  # 300 LEDs = 900 bytes: one packet of 600, then the push with 300
    for f in range(len(pushes[0])):
        first_push = min(p[f].stamp for p in pushes)
        last_data = max(d_[f].stamp for d_ in data)
        assert last_data < first_push, f"frame {f}: data after a push"
        numbers = {p[f].data[10] for p in pushes} | {d_[f].data[10] for d_ in data}
        assert len(numbers) == 1, f"frame {f}: controllers show frames {numbers}"


# -- E1.31 through the sacn package ------------------------------------------------------------------------


class SacnReceiver:
    """The `sacn` package's receiver on a port of ours; it also keeps every raw datagram it read."""

    def __init__(self, port: int, universes: range) -> None:
        from sacn import sACNreceiver

        self.receiver = sACNreceiver(bind_address=LOOPBACK, bind_port=port)
        self.packets: list = []  # sacn DataPackets handed to the universe callbacks
        self.availability: list[tuple[int, str]] = []
        self.raw: list[bytes] = []
        handler = self.receiver._handler  # the raw datagrams, as the receiver reads them, for sync packets
        socket_listener = handler.socket._listener
        raw, inner = self.raw, handler.on_data

        def tee(data: list[int], now: float) -> None:
            raw.append(bytes(data))
            inner(data, now)

        socket_listener.on_data = tee
        for u in universes:
            self.receiver.register_listener("universe", self.packets.append, universe=u)
        self.receiver.register_listener(
            "availability", lambda universe, changed: self.availability.append((universe, changed))
        )
        self.receiver.start()

    def stop(self) -> None:
        self.receiver.stop()


def test_e131_as_the_sacn_receiver_sees_it(daemon_factory: Callable, display_name: str, tmp_path: Path) -> None:
    from sacn.messages.data_packet import DataPacket
    from sacn.messages.sync_packet import SyncPacket

    height, width = 10, 60  # 600 LEDs: universes 7-10 (170, 170, 170, 90 LEDs)
    port = dead_port()
    sacn_rx = SacnReceiver(port, range(7, 11))
    try:
        rec = tmp_path / "rec.rgb"
        outs = output("e131", port, universe=7, priority=150, sync_universe=42)
        d = run_daemon(daemon_factory, config(display_name, width, height, outs), rec, tmp_path)
        assert feed(display_name, height, width, 12, random_picture(height, width)) >= 6
        assert d.stop() == 0
        time.sleep(0.5)  # the receiver's thread reads every 100 ms
    finally:
        sacn_rx.stop()
    cid = uuid.UUID((tmp_path / "e131-cid").read_text().strip())
    recorded = read_recording(rec, width * height).reshape(-1, width * height * 3)
    # every universe's data as sacn passed it on equals the recording's channels, frame after frame
    for u in range(7, 11):
        got = [bytes(p.dmxData) for p in sacn_rx.packets if p.universe == u and not p.option_StreamTerminated]
        lo = (u - 7) * 510
        size = min(510, width * height * 3 - lo)
        want = []
        for frame in recorded:
            value = bytes(frame[lo : lo + size]) + bytes(512 - size)  # sacn pads to 512
            if not want or want[-1] != value:
                want.append(value)
        assert got == want, f"universe {u}"
    data = [DataPacket.make_data_packet(list(r)) for r in sacn_rx.raw if r[18:22] == b"\x00\x00\x00\x04"]
    syncs = [SyncPacket.make_sync_packet(list(r)) for r in sacn_rx.raw if r[18:22] == b"\x00\x00\x00\x08"]
    assert {(p.priority, p.syncAddr, bytes(p.cid)) for p in data} == {(150, 42, cid.bytes)}
    assert {p.syncAddr for p in syncs} == {42} and len(syncs) >= 6
    for u in range(7, 11):
        seq = [p.sequence for p in data if p.universe == u]
        assert all(b == (a + 1) % 256 for a, b in itertools.pairwise(seq)), f"universe {u}: {seq}"
        assert [p.option_StreamTerminated for p in data if p.universe == u][-3:] == [True] * 3
        assert sum(p.option_StreamTerminated for p in data if p.universe == u) == 3
    # a sync packet follows the data of each frame: never two frames' data without a sync between
    kinds = ["s" if r[18:22] == b"\x00\x00\x00\x08" else "d" for r in sacn_rx.raw]
    runs = "".join(kinds).replace("dddd", "D")
    terminated = runs.rstrip("D")
    assert set(terminated) <= {"D", "s"} and "DD" not in terminated and "ss" not in terminated, runs
    assert {(u, c) for u, c in sacn_rx.availability} >= {(u, "timeout") for u in range(7, 11)}


def test_the_cid_is_made_once_and_kept_across_restarts(
    daemon_factory: Callable, display_name: str, tmp_path: Path
) -> None:
    seen = []
    for _ in range(2):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
            rx.bind((LOOPBACK, 0))
            rx.settimeout(5)
            d = run_daemon(
                daemon_factory,
                config(display_name, 4, 4, output("e131", rx.getsockname()[1])),
                tmp_path / "rec.rgb",
                tmp_path,
            )
            seen.append(uuid.UUID(bytes=rx.recv(1024)[22:38]))
            assert d.stop() == 0
    assert seen[0] == seen[1] == uuid.UUID((tmp_path / "e131-cid").read_text().strip())


# -- Art-Net ----------------------------------------------------------------------------------------------


def test_artnet_universes_equal_the_recording_and_an_artsync_follows_every_frame(
    daemon_factory: Callable, display_name: str, receivers: Callable[[int], Receivers], tmp_path: Path
) -> None:
    height, width = 5, 71  # 355 LEDs: port-addresses 0x0105-0x0107 with 170, 170 and 15 LEDs
    rx = receivers(1)
    rec = tmp_path / "rec.rgb"
    d = run_daemon(
        daemon_factory,
        config(display_name, width, height, output("artnet", rx.ports[0], universe=0x105)),
        rec,
        tmp_path,
    )
    poll_reply = None
    if "cannot listen on 0.0.0.0:6454" not in d.log:  # another Art-Net program may hold the port here
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as console:
            console.bind((LOOPBACK, 0))
            console.settimeout(5)
            console.sendto(b"Art-Net\0\x00\x20\x00\x0e\x02\x00", (LOOPBACK, 6454))  # ArtPoll, by hand
            poll_reply = console.recv(1024)
    assert feed(display_name, height, width, 12, random_picture(height, width)) >= 6
    assert d.stop() == 0
    rx.stop()
    recorded = read_recording(rec, width * height).reshape(-1, width * height * 3)
    frames, current, seqs = [], {}, []
    for g in rx.of(0):
        assert g[:8] == b"Art-Net\0" and g[10:12] == b"\x00\x0e"
        op = int.from_bytes(g[8:10], "little")
        if op == 0x5200:  # ArtSync: the frame is complete
            assert sorted(current) == [0x105, 0x106, 0x107]
            frames.append(b"".join(current[u] for u in sorted(current)))
            current = {}
            continue
        assert op == 0x5000
        port_address = g[14] | (g[15] << 8)
        length = int.from_bytes(g[16:18], "big")
        assert length % 2 == 0 and len(g) == 18 + length
        current[port_address] = g[18:][: (510 if port_address < 0x107 else 45)]
        seqs.append((port_address, g[12]))
    assert frames == [bytes(f) for f in recorded]
    for u in (0x105, 0x106, 0x107):
        s = [q for a, q in seqs if a == u]
        assert all(b == a % 255 + 1 for a, b in itertools.pairwise(s)) and 0 not in s
    if poll_reply is not None:
        assert poll_reply[:10] == b"Art-Net\0\x00\x21" and len(poll_reply) == 239
        assert poll_reply[18:20] == b"\x01\x00"  # Net 1, Sub-Net 0
        assert poll_reply[173] == 3 and list(poll_reply[174:177]) == [0x40] * 3  # three ports we send
        assert list(poll_reply[186:189]) == [5, 6, 7]  # SwIn


# -- bad cases --------------------------------------------------------------------------------------------


def status(log: str) -> dict:
    port = re.search(r"ws://127\.0\.0\.1:(\d+)", log)
    assert port, log
    with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/status", timeout=5) as r:
        return json.loads(r.read())


def test_a_controller_with_nothing_listening_is_logged_once_counted_and_costs_the_others_nothing(
    daemon_factory: Callable, display_name: str, receivers: Callable[[int], Receivers], tmp_path: Path
) -> None:
    height, width = 4, 50
    rx = receivers(1)
    gone = dead_port()
    outs = output("ddp", gone, 0, 100) + output("ddp", rx.ports[0], 100, 100)
    rec = tmp_path / "rec.rgb"
    d = run_daemon(daemon_factory, config(display_name, width, height, outs), rec, tmp_path)
    assert feed(display_name, height, width, 40, random_picture(height, width)) >= 20
    report = status(d.log)
    assert d.stop() == 0
    rx.stop()
    dead, alive = [o for o in report["outputs"] if o["kind"] == "ddp"]
    assert dead["frames_failed"] >= 20 and "connection refused" in dead["health"] and f":{gone}" in dead["health"]
    assert alive["frames_failed"] == 0 and alive["health"] == "ok"
    assert d.log.count("connection refused") == 1, d.log
    frames = spec_ddp_frames(rx.of(0), 300)
    recorded = read_recording(rec, width * height)
    assert [f.data for f in frames] == [leds[100:200].tobytes() for leds in recorded]  # every frame, all of it


def start_error(tmp_path: Path, text: str) -> tuple[str, str]:
    """(check-config's error, the daemon's error) for a configuration; both must fail."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    check = subprocess.run(
        [sys.executable, "-m", "skyscreen_hw", "check-config", str(cfg)], capture_output=True, text=True, timeout=60
    )
    run = subprocess.run(
        [sys.executable, "-m", "skyscreen_hw", "--config", str(cfg), "--duration", "5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 1 and run.returncode == 1, (check.stderr, run.stderr)
    assert "Traceback" not in check.stderr + run.stderr
    return check.stderr.strip(), run.stderr.strip().splitlines()[-1]


DOME = '[frame]\nname = "{name}"\n[websocket]\nenabled = false\n'


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (
            output("ddp", 4048) + output("ddp", 4049, 10, 10).replace(LOOPBACK, "no-such-controller.invalid"),
            "[[outputs]] #2 host: 'no-such-controller.invalid' does not resolve",
        ),
        (output("e131", 5568, universe=64000), "[[outputs]] #1 universe: must be <= 63999, got 64000"),
        (output("artnet", 6454, universe=32768), "[[outputs]] #1 universe: must be <= 32767, got 32768"),
        (output("ddp", 4048, packet_bytes=1000), "[[outputs]] #1 packet_bytes: 1000 is not a multiple of 3"),
        (output("ddp", 4048, packet_bytes=1440, order="GRBW"), None),  # 1440 = 360 RGBW LEDs: fine
        (
            output("ddp", 4048, packet_bytes=1302, order="RGBW"),
            "[[outputs]] #1 packet_bytes: 1302 is not a multiple of 4",
        ),
        (
            output("e131", 5568, universe=63500),
            "[[outputs]] #1 universe: 103680 LEDs need universes 63500..64109, past the last one, 63999",
        ),
        (
            output("e131", 5568, universe=1, channels_per_universe=2),
            "[[outputs]] #1 channels_per_universe: must be >= 3",
        ),
    ],
)
def test_bad_network_outputs_fail_at_start_naming_the_key(
    tmp_path: Path, display_name: str, outputs: str, message: str | None
) -> None:
    text = DOME.format(name=display_name) + outputs  # nothing is opened: the plan fails first
    if message is None:
        cfg = tmp_path / "good.toml"
        cfg.write_text(text)
        check = subprocess.run(
            [sys.executable, "-m", "skyscreen_hw", "check-config", str(cfg)], capture_output=True, text=True, timeout=60
        )
        assert check.returncode == 0, check.stderr
        return
    check, run = start_error(tmp_path, text)
    assert message in check and message in run, (check, run)


def test_check_config_shows_where_each_leds_goes_and_warns_where_the_wire_is_too_slow(tmp_path: Path) -> None:
    text = (
        "[websocket]\nenabled = false\n"
        + output("ddp", 4048, 0, 8640)
        + output("e131", 5568, 8640, 0, universe=1, sync_universe=9)
    )
    cfg = tmp_path / "dome.toml"
    cfg.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "skyscreen_hw", "check-config", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    ddp_line = next(line for line in lines if "[[outputs]] #1 ddp" in line)
    assert "127.0.0.1:4048: LEDs 0-8639 -> 18 packets of 1440 bytes (offsets 0-24480" in ddp_line
    assert "27,288 bytes a frame on the wire, 13.1 Mbit/s at 60 fps" in ddp_line
    e131_line = next(line for line in lines if "[[outputs]] #2 e131" in line)
    assert "LEDs 8640-103679 -> universes 1-560, 170 LEDs each" in e131_line and "sync universe 9" in e131_line
    warnings = [line for line in lines if line.startswith("# warning:")]
    assert any("#2: 560 universes to one controller" in w for w in warnings)
    assert any("#2:" in w and "more than a 100 Mbit/s Ethernet port carries" in w for w in warnings)
    assert any("use gigabit Ethernet" in w for w in warnings)
    assert not any("#1:" in w for w in warnings)
    assert "[[outputs]]" in lines  # the resolved TOML follows, as before


def test_check_config_says_nothing_more_without_network_outputs(tmp_path: Path) -> None:
    cfg = tmp_path / "serial.toml"
    cfg.write_text(
        '[websocket]\nenabled = false\n[[outputs]]\ntype = "serial"\nport = "/dev/null"\ncount = 100\n'
        '[[outputs]]\ntype = "simulator"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "skyscreen_hw", "check-config", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Mbit/s" not in done.stdout and "warning" not in done.stdout


def test_layout_png_draws_and_names_each_controller(tmp_path: Path) -> None:
    pytest.importorskip("pygame")
    example = Path(__file__).parent.parent / "examples" / "dome-ddp.toml"
    png = tmp_path / "dome.png"
    done = subprocess.run(
        [sys.executable, "-m", "skyscreen_hw", "--config", str(example), "layout", "--png", str(png), "--size", "400"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert done.stdout.count("[[outputs]] #") == 12 and "10.0.0.32:4048: LEDs 95040-103679" in done.stdout
