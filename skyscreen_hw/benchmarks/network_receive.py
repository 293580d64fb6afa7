"""Network receive benchmark: the dome at 60 fps into the daemon's E1.31 and DDP inputs, against C.

The dome (360 x 288 LEDs, 311,040 bytes a frame) as E1.31 (610 universes of 510 channels: 36,600
packets a second) and as DDP (216 packets of 1,440 bytes), sent on loopback by a C sender
(bench/reference_receiver.c, `gcc -O2` at run time) at 60 frames a second, each frame one burst:

* C reference, "wait": recvmmsg(MSG_WAITFORONE) 1,024 at a time, counting datagrams: the plain fast loop;
* C reference, "burst": poll, 1 ms for the burst to arrive, then drain it with recvmmsg;
* the daemon's input (skyscreen_hw.sources.network_inputs, in a process of its own with its network
  runtime and a mixer): every packet parsed, checked and landed in the frame, a delivery a frame;
* the daemon's input again, the sender using UDP segmentation offload (as the daemon's own outputs do):
  with UDP GRO it takes 64 packets a datagram.

Each receiver's CPU time (all its threads, from /proc) is measured over SECONDS of sending after a second
of warm-up; rounds alternate between the receivers, the figures are medians. Bars: the daemon's CPU at
most 1.3 x the C "wait" loop's, and no packet lost.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from skyscreen_hw.benchmarks import report
from skyscreen_hw.benchmarks.support import (
    CHECKOUT,
    HEIGHT,
    WIDTH,
    compile_reference,
    cpu_seconds,
    stop_process,
    terminated_by_sigterm,
)

FPS = 60.0
SECONDS = 3.0
WARMUP = 1.0
ROUNDS = 3
RATIO_BAR = 1.3
C_REFERENCE = "reference_receiver"  # bench/reference_receiver.c
E131_SEQUENCE = 111  # the byte the sender sets to the frame number


def frame_packets(protocol: str) -> list[bytes]:
    """One frame of the dome as the packets a sender sends."""
    import uuid

    from skyscreen_hw.protocols import ddp, e131

    size = HEIGHT * WIDTH * 3
    pixels = bytes(range(256)) * (size // 256 + 1)
    if protocol == "e131":
        cid = uuid.UUID(int=0x5C1)
        per = 510
        return [
            e131.data_packet(cid, "bench", 1 + i, pixels[i * per : min((i + 1) * per, size)])
            for i in range(-(-size // per))
        ]
    per = ddp.DEFAULT_PACKET_BYTES
    starts = range(0, size, per)
    return [ddp.packet(pixels[s : s + per], s, push=s + per >= size) for s in starts]


def serve(protocol: str, port: int) -> None:
    """The daemon's input alone (the child process the benchmark measures): listen, report at SIGTERM."""
    import logging

    from skyscreen_hw.config import DdpInputConfig, E131InputConfig
    from skyscreen_hw.mixer import Mixer
    from skyscreen_hw.net.runtime import NetworkRuntime
    from skyscreen_hw.sources.network_inputs import create_input

    log = logging.getLogger("bench")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    runtime = NetworkRuntime(log)
    runtime.start()
    mixer = Mixer()
    config = (E131InputConfig if protocol == "e131" else DdpInputConfig)(bind="127.0.0.1", port=port)
    source = create_input(config, 1, (HEIGHT, WIDTH), HEIGHT * WIDTH, mixer, runtime, log)
    source.start()
    print("ready", flush=True)
    while not stopped.wait(0.5):
        pass
    receiver = source.receiver
    source.close()
    runtime.stop()
    took = receiver.packets + sum(receiver.dropped.values())
    print(took, source.stats.frames, source.overruns, dict(receiver.dropped), flush=True)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _receiver(kind: str, binary: str, protocol: str, port: int) -> Iterator[subprocess.Popen]:
    if kind.startswith("C"):
        cmd = [binary, "recv", str(port), kind.split()[1]]
    else:
        code = f"from skyscreen_hw.benchmarks.network_receive import serve; serve({protocol!r}, {port})"
        cmd = [sys.executable, "-c", code]
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"{kind} receiver did not start: {line!r}")
        yield proc
    finally:
        stop_process(proc)


def _send(binary: str, frame_file: str, port: int, seconds: float, gso: bool, sequence: int) -> int:
    done = subprocess.run(
        [binary, "send", frame_file, str(port), str(FPS), str(seconds), str(sequence), "1" if gso else "0"],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 30,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the sender failed: {done.stderr.strip()[:300]}")
    return int(done.stdout.split()[0])


def _measure(kind: str, binary: str, protocol: str, frame_file: str, packets: int) -> tuple[float, int, int]:
    """(CPU seconds a frame, packets sent, packets received) for one receiver."""
    port = _free_udp_port()
    gso = kind.endswith("GSO")
    sequence = E131_SEQUENCE if protocol == "e131" else -1
    with _receiver(kind, binary, protocol, port) as proc:
        frames = _send(binary, frame_file, port, WARMUP, gso, sequence)
        time.sleep(0.1)
        before = cpu_seconds(proc.pid)
        measured = _send(binary, frame_file, port, SECONDS, gso, sequence)
        time.sleep(0.1)
        cpu = cpu_seconds(proc.pid) - before
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    received = int(out.split()[0])
    return cpu / measured, (frames + measured) * packets, received


def run(args: argparse.Namespace) -> None:
    rounds = args.rounds or ROUNDS
    with terminated_by_sigterm(), tempfile.TemporaryDirectory(prefix="skyscreen-bench-") as tmp:
        binary, why = compile_reference(C_REFERENCE, tmp)
        if binary is None:
            report("network receive", "not measured", f"<= {RATIO_BAR} x C", None)
            print(f"  ({why})")
            return
        for protocol, title in (("e131", "E1.31, 610 universes a frame"), ("ddp", "DDP, 216 packets a frame")):
            packets = frame_packets(protocol)
            frame_file = str(Path(tmp) / f"{protocol}.frame")
            with open(frame_file, "wb") as f:
                for p in packets:
                    f.write(len(p).to_bytes(2, "little") + p)
            kinds = ["C wait", "C burst", "daemon", "daemon, GSO"]
            cpu: dict[str, list[float]] = {k: [] for k in kinds}
            lost: dict[str, int] = dict.fromkeys(kinds, 0)
            for _ in range(rounds):
                for kind in kinds:
                    per_frame, sent, received = _measure(kind, binary, protocol, frame_file, len(packets))
                    cpu[kind].append(per_frame)
                    lost[kind] += max(0, sent - received)
            median = {k: statistics.median(v) * 1e6 for k, v in cpu.items()}
            print(f"  {title} at {FPS:g} fps (us of CPU a frame, median of {rounds}):", flush=True)
            for kind in kinds:
                print(f"    {kind:12s} {median[kind]:8.0f} us  ({median[kind] * FPS / 1e4:.1f}% of a core)", flush=True)
            for kind in ("daemon", "daemon, GSO"):
                ratio = median[kind] / median["C wait"]
                report(
                    f"{protocol} receive, {kind} vs the C recvmmsg loop",
                    f"{ratio:.2f} x ({median[kind]:.0f} vs {median['C wait']:.0f} us a frame)",
                    f"<= {RATIO_BAR}",
                    ratio <= RATIO_BAR,
                )
                report(f"{protocol} receive, {kind}: packets lost", f"{lost[kind]}", "0", lost[kind] == 0)
