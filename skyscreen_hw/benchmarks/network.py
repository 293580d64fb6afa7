"""Network output benchmark: the whole dome at 60 fps as E1.31 (610 universes) and as DDP (216 packets).

Each sender sends to a receiver process on loopback that reads and counts every packet (its CPU is not
counted; the kernel's loopback delivery runs in the sender and is counted, for every sender alike).
Measured in one run, windows taking turns over a few rounds, medians of the CPU a frame:

* the paced loop alone: waking up 60 times a second and doing nothing, as the daemon's clock does anyway;
* the daemon's output: the real ``e131`` / ``ddp`` output (``show`` + ``end_frame``, as the frame clock
  calls them) on the shared sender, paced at 60 fps; CPU of this process (every thread) over the window.
  What the output adds is this less the paced loop alone;
* the same output with the sends handed to the network runtime's thread (``call_soon_threadsafe``, the
  clock waiting for them): what the other placement of the sends would cost;
* a plain Python loop of ``sendto`` per packet from the same packets;
* the C reference (bench/reference_sender.c, built here with ``gcc -O2``): the same packets from a
  pixel buffer, ``sendmsg`` with UDP_SEGMENT, paced alike.

Bar: what the daemon's output adds costs at most RATIO_BAR times the C reference (which pays its own
wake-ups), for both protocols.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import numpy as np

from skyscreen_hw import config as configuration
from skyscreen_hw.benchmarks import report
from skyscreen_hw.benchmarks.support import (
    FPS,
    HEIGHT,
    WIDTH,
    compile_reference,
    stop_process,
    terminated_by_sigterm,
)

LEDS = HEIGHT * WIDTH  # the dome
WINDOW = 2.0  # seconds a measured window
REPEATS = 3
RATIO_BAR = 1.5
C_REFERENCE = "reference_sender"  # bench/reference_sender.c

RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
buf = bytearray(65536)
n = 0
s.settimeout(1.0)
while True:
    try:
        s.recv_into(buf)
        n += 1
    except TimeoutError:
        if sys.stdin.closed:
            break
        continue
"""


def _quiet_log() -> logging.Logger:
    log = logging.getLogger("skyscreen.bench.network")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


def _paced(step: Callable[[], None], seconds: float) -> float:
    """Run ``step`` FPS times a second for ``seconds``; this process's CPU seconds a frame."""
    period, frames = 1.0 / FPS, 0
    start = next_tick = time.monotonic()
    cpu0 = time.process_time()
    while time.monotonic() - start < seconds:
        step()
        frames += 1
        next_tick += period
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return (time.process_time() - cpu0) / frames


def run(args: argparse.Namespace | None = None) -> None:
    seconds = float(getattr(args, "window", 0) or WINDOW)
    repeats = int(getattr(args, "repeats", 0) or REPEATS)
    from skyscreen_hw.outputs import ddp, e131
    from skyscreen_hw.outputs.network import shared_sender

    log = _quiet_log()
    leds = np.random.default_rng(0).integers(0, 256, (LEDS, 3), dtype=np.uint8)
    with terminated_by_sigterm(), contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        rx = subprocess.Popen(
            [sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True
        )
        stack.callback(stop_process, rx)
        port = int(rx.stdout.readline()) if rx.stdout else 0
        binary, why = compile_reference(C_REFERENCE, tmp)
        print(
            f"the dome ({LEDS} LEDs) at {FPS} fps to a receiver on loopback; {repeats} rounds of {seconds:g} s"
            " windows, CPU a frame (this process, every thread), medians"
        )
        cfgs = {
            "E1.31": configuration.E131OutputConfig(host="127.0.0.1", port=port),
            "DDP": configuration.DdpOutputConfig(host="127.0.0.1", port=port),
        }
        for label, cfg in cfgs.items():
            module = e131 if label == "E1.31" else ddp
            out = module.create(cfg, None, 0, LEDS, log)  # type: ignore[arg-type]
            stack.callback(out.close)
            rows = out.rows
            runtime = shared_sender(log).runtime
            sock = out.link.sock
            address = out.link.key
            done = threading.Event()

            def ours(o: object = out) -> None:
                o.show(leds)  # type: ignore[attr-defined]
                o.end_frame()  # type: ignore[attr-defined]

            def handed(o: object = out, rt: object = runtime, ev: threading.Event = done) -> None:
                o.prepare(leds)  # type: ignore[attr-defined]
                o.sender.stage(o)  # type: ignore[attr-defined]
                ev.clear()

                def flush() -> None:
                    o.sender.flush()  # type: ignore[attr-defined]
                    ev.set()

                rt.loop.call_soon_threadsafe(flush)  # type: ignore[attr-defined]
                ev.wait(1.0)

            def plain(r: object = rows, s: object = sock, a: tuple = address) -> None:
                r.fill(leds)  # type: ignore[attr-defined]
                for i in range(r.rows):  # type: ignore[attr-defined]
                    with contextlib.suppress(BlockingIOError):
                        s.sendto(r.packet(i), a)  # type: ignore[attr-defined]

            header = 126 if label == "E1.31" else 10
            results: dict[str, list[float]] = {
                "the paced loop alone": [],
                "daemon's output": [],
                "handed to the network thread": [],
                "plain Python sendto loop": [],
                "C reference": [],
            }
            for _ in range(repeats):
                results["the paced loop alone"].append(_paced(lambda: None, seconds))
                results["daemon's output"].append(_paced(ours, seconds))
                results["handed to the network thread"].append(_paced(handed, seconds))
                results["plain Python sendto loop"].append(_paced(plain, seconds))
                if binary is not None:
                    c = subprocess.run(
                        [
                            binary,
                            "127.0.0.1",
                            str(port),
                            str(rows.rows),
                            str(rows.stride),
                            str(rows.last_length),
                            str(header),
                            str(FPS),
                            str(seconds),
                        ],
                        capture_output=True,
                        text=True,
                        timeout=seconds + 30,
                        check=True,
                    )
                    results["C reference"].append(float(c.stdout.split()[0]) / 1e6)
            print(f"  {label}: {rows.rows} packets of {rows.stride} bytes, {rows.total_bytes} bytes a frame")
            for name, values in results.items():
                if values:
                    m = statistics.median(values)
                    print(
                        f"    {name:30s} {m * 1e6:7.0f} us/frame = {100 * m * FPS:5.1f}% of a core"
                        f"   (rounds: {', '.join(f'{v * 1e6:.0f}' for v in values)})"
                    )
            if results["C reference"]:
                # the daemon's clock wakes up every frame anyway: what the output adds is above the idle loop
                added = [
                    o - idle
                    for o, idle in zip(results["daemon's output"], results["the paced loop alone"], strict=True)
                ]
                print(f"    {'added by the output':30s} {statistics.median(added) * 1e6:7.0f} us/frame")
                ratio = statistics.median(a / c for a, c in zip(added, results["C reference"], strict=True))
                report(
                    f"network {label}, the dome at 60 fps: CPU the output adds / C reference",
                    f"x{ratio:.2f}",
                    f"<= {RATIO_BAR}",
                    ratio <= RATIO_BAR,
                )
            else:
                report(
                    f"network {label}: daemon's output / C reference", f"not measured: {why}", f"<= {RATIO_BAR}", None
                )
            out.close()
        if rx.stdin:
            rx.stdin.close()
