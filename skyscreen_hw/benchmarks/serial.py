"""Serial output benchmark: encoding and writing a frame, as a share of the frame's time on the wire.

A real pseudo-terminal pair stands in for the USB serial controller; a thread drains the controller's
end. Measured per frame: Adalight/TPM2 encoding with colour reordering, and encoding plus the write into
the port, against the wire time of the frame at the configured baud (10 bits a byte).
"""

from __future__ import annotations

import argparse
import os
import pty
import threading
import tty

import numpy as np

from skyscreen_hw.benchmarks import median_seconds, report
from skyscreen_hw.outputs.framing import Framer
from skyscreen_hw.outputs.serial import _open_serial

BAUD = 2_000_000
SHARE_BAR = 5.0  # % of the frame's wire time


def _drain(fd: int, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            os.read(fd, 1 << 16)
        except OSError:
            return


def run(args: argparse.Namespace | None = None) -> None:
    rounds = (args.rounds if args and args.rounds else 0) or 200
    master, slave = pty.openpty()
    tty.setraw(slave)
    stop = threading.Event()
    drain = threading.Thread(target=_drain, args=(master, stop), daemon=True)
    drain.start()
    port = _open_serial(os.ttyname(slave), BAUD, 1.0)
    print(f"pty pair at {BAUD} baud, GRB order; medians of {rounds} frames")
    try:
        for protocol, count in (("adalight", 1000), ("adalight", 10_000), ("tpm2", 1000)):
            framer = Framer(protocol, count, "GRB")
            leds = np.random.default_rng(0).integers(0, 256, (count, 3), dtype=np.uint8)
            wire = len(framer.buffer) * 10 / BAUD
            t_encode = median_seconds(lambda f=framer, x=leds: f.encode(x), rounds)
            t_write = median_seconds(lambda f=framer, x=leds: port.write(f.encode(x)), rounds)
            share = 100 * t_write / wire
            report(
                f"serial {protocol} {count} LEDs, encode + write / wire time",
                f"{share:.2f}% (wire {wire * 1e3:.2f} ms/frame; encode {t_encode * 1e6:.1f} us,"
                f" encode+write {t_write * 1e6:.1f} us)",
                f"<= {SHARE_BAR}%",
                share <= SHARE_BAR,
            )
    finally:
        stop.set()
        port.close()
        os.close(master)
        os.close(slave)
