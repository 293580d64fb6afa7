"""The Python floor for the frame benchmark: the least a Python consumer of the shared frame can do.

The same work and pacing as the C reference (reference_consumer.c): sleep until one period after the last
frame taken, wait (timed) on the ready semaphore, copy the frame out of the file (preadv), post done, one
pass of the layout's gather through the gamma and brightness table (the package's compiled pass, numpy's
where it was not built), write the LEDs. Nothing else: no mixer, no pipeline, no checks. What this costs
over the C reference is what any Python process pays here for waking up, before the daemon's own work.

    floor_consumer.py NAME HEIGHT WIDTH GAMMA BRIGHTNESS FPS [OUTPUT [FRAMES]]

OUTPUT defaults to /dev/null; FRAMES > 0 exits after that many frames (for tests). SIGTERM stops it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType

import numpy as np
import posix_ipc

from skyscreen_hw import config, layouts
from skyscreen_hw.color import Lookups, gamma_table
from skyscreen_hw.sources.shared_frame import frame_path, semaphore_names


def main(argv: list[str]) -> int:
    if len(argv) < 6:
        print(f"usage: {sys.argv[0]} NAME HEIGHT WIDTH GAMMA BRIGHTNESS FPS [OUTPUT [FRAMES]]", file=sys.stderr)
        return 2
    name, height, width = argv[0], int(argv[1]), int(argv[2])
    gamma, brightness, period = float(argv[3]), float(argv[4]), 1.0 / float(argv[5])
    output = argv[6] if len(argv) > 6 else "/dev/null"
    frames = int(argv[7]) if len(argv) > 7 else 0

    layout = layouts.build(config.parse({"frame": {"height": height, "width": width}, "layout": {"serpentine": True}}))
    leds = np.zeros((layout.count, 3), np.uint8)
    one_pass = Lookups().frame_pass(layouts.LedGather(layout), gamma_table(gamma, brightness), leds, summed=False)
    frame = np.zeros((height, width, 3), np.uint8)
    fd = os.open(frame_path(name), os.O_RDONLY)
    ready, done = (posix_ipc.Semaphore(s) for s in semaphore_names(name))
    out = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    stopping = False

    def stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    next_take, shown = 0.0, 0
    while not stopping:
        now = time.monotonic()
        if now < next_take:
            time.sleep(next_take - now)
        try:
            ready.acquire(period)  # never waits longer than a period
        except (posix_ipc.BusyError, posix_ipc.SignalError):
            continue
        os.preadv(fd, (frame,), 0)
        done.release()
        next_take = time.monotonic() + period
        one_pass(frame, None)
        os.write(out, leds)
        shown += 1
        if frames and shown >= frames:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
