"""Frame modes and transforms: what v2 frames and [[transforms]] cost the daemon, measured in one run.

1. **Transforms, in this process** (medians of ``--rounds`` frames, taken in turns): the gather of the
   103,680-LED dome wired serpentine, without transforms and with ``rotate`` (by whole vanes) and
   ``mirror``, composed once into the layout's strided views: the same work per frame. (``flat`` is shown
   for information: a gather through the index, prepared once.)
2. **Whole processes**: two daemons (``--record /dev/null``, ``outputs = []``) on the same dome at 60
   fps, one fed by a v1 writer (flush, wait), one by a v2 writer with 4 slots running ahead; each daemon's
   CPU time (every thread, from /proc) per frame taken, over windows taken in turns (the daemon not being
   measured is stopped), medians of the per-round ratio.

Everything made in /dev/shm is removed at the end, also on errors and on SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np

from skyscreen_hw import config as configuration
from skyscreen_hw import layouts
from skyscreen_hw.benchmarks import compare_seconds, report
from skyscreen_hw.benchmarks.support import (
    FPS,
    HEIGHT,
    WIDTH,
    DaemonProcess,
    cpu_seconds,
    display_name,
    displays,
    stop_process,
    terminated_by_sigterm,
)
from skyscreen_hw.sources.frame_v2 import FrameWriterV2
from skyscreen_hw.sources.shared_frame import FrameWriter

SLOTS = 4
WINDOW = 2.0  # seconds of each measured window
WARMUP = 0.5  # seconds fed before each window (after SIGCONT)
REPEATS = 5  # rounds of windows
TRANSFORM_BAR = 1.10  # dome with rotate + mirror / plain dome, per frame
V2_BAR = 1.10  # daemon CPU per frame, fed by a v2 writer / by a v1 writer
TURN = [{"type": "rotate", "degrees": 90}, {"type": "mirror", "axis": "columns"}]


def _layout(transforms: list[dict]) -> layouts.Layout:
    sections = {"frame": {"height": HEIGHT, "width": WIDTH}, "layout": {"serpentine": True}, "transforms": transforms}
    return layouts.build(configuration.parse(sections, "(benchmark)"))


def _transforms(rounds: int) -> None:
    frame = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)
    gathers: dict[str, Callable[[], object]] = {}
    for label, transforms in (("plain", []), ("rotate + mirror", TURN), ("flat", [{"type": "flat"}])):
        start = time.perf_counter()
        layout = _layout(transforms)
        gather = layouts.LedGather(layout)
        built = time.perf_counter() - start
        out = np.empty((layout.count, 3), np.uint8)
        views = len(gather.plan(frame)) if gather.plan is not None else 0
        print(f"  {label:16s} built once in {built * 1e3:6.1f} ms; {views or 'no'} strided views per frame")
        gathers[label] = lambda g=gather, o=out: g(frame, o)
    t = compare_seconds(gathers, rounds)
    for label, seconds in t.items():
        print(f"  {label:16s} {seconds * 1e6:7.1f} us a frame (gather of {HEIGHT * WIDTH} LEDs)")
    ratio = t["rotate + mirror"] / t["plain"]
    report(
        "dome with rotate + mirror / plain dome, per frame",
        f"x{ratio:.3f}",
        f"<= {TRANSFORM_BAR}",
        ratio <= TRANSFORM_BAR,
    )


def _daemon_text(name: str) -> str:
    return (
        f'outputs = []\n[frame]\nname = "{name}"\nheight = {HEIGHT}\nwidth = {WIDTH}\nslots = {SLOTS}\n'
        f"[layout]\nserpentine = true\n[display]\nfps = {FPS}\n[websocket]\nenabled = false\n"
    )


class _Fed:
    """A daemon process and the writer (v1 or v2) feeding it from this process."""

    def __init__(self, label: str, daemon: DaemonProcess, name: str, version: int) -> None:
        self.label, self.daemon = label, daemon
        picture = np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)
        self.v1 = FrameWriter(name, HEIGHT, WIDTH, timeout=2.0) if version == 1 else None
        self.v2 = FrameWriterV2(name, timeout=2.0, wait=10.0) if version == 2 else None
        if self.v1 is not None:
            self.v1.frame[:] = picture
        self.picture = picture

    def _feed(self, seconds: float) -> int:
        """Write frames (one byte changed each time) for ``seconds``; the frames the daemon took."""
        end, k = time.monotonic() + seconds, 0
        if self.v2 is not None:
            before = self.v2.taken
            while time.monotonic() < end:
                k += 1
                self.picture[0, 0, 0] = k & 0xFF
                self.v2.write(self.picture, 0.5)  # waits while SLOTS frames are ahead: paced by the display
            return self.v2.taken - before
        taken = 0
        while self.v1 is not None and time.monotonic() < end:
            k += 1
            self.v1.frame[0, 0, 0] = k & 0xFF
            taken += self.v1.flush(0.5)
        return taken

    def window(self, seconds: float) -> float:
        """Continue the daemon, feed it WARMUP + ``seconds``, stop it; its CPU seconds per frame taken."""
        pid = self.daemon.proc.pid
        os.kill(pid, signal.SIGCONT)
        try:
            self._feed(WARMUP)
            c0 = cpu_seconds(pid)
            frames = self._feed(seconds)
            c1 = cpu_seconds(pid)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        if frames == 0:
            raise RuntimeError(f"{self.label}: the daemon took no frames:\n{self.daemon.log[-3000:]}")
        return (c1 - c0) / frames

    def close(self) -> None:
        for writer in (self.v1, self.v2):
            if writer is not None:
                writer.close()


def _processes(seconds: float, repeats: int) -> None:
    logging.getLogger("skyscreen").addHandler(logging.NullHandler())
    fed: list[_Fed] = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        names = stack.enter_context(displays())
        for label, version in (("v1 writer", 1), (f"v2 writer, {SLOTS} slots", 2)):
            name = display_name()
            names.append(name)
            daemon = DaemonProcess(tmp, _daemon_text(name), "--record", "/dev/null")
            stack.callback(daemon.stop)
            daemon.wait_running()
            feeder = _Fed(label, daemon, name, version)
            stack.callback(feeder.close)
            stack.callback(stop_process, daemon.proc)  # continued before it is stopped (SIGCONT first)
            fed.append(feeder)
        for f in fed:
            os.kill(f.daemon.proc.pid, signal.SIGSTOP)
        per_frame: dict[str, list[float]] = {f.label: [] for f in fed}
        for r in range(repeats):
            for f in fed[r % 2 :] + fed[: r % 2]:  # a different one first each round
                per_frame[f.label].append(f.window(seconds))
    print(f"whole daemons on the dome at {FPS} fps, {repeats} rounds of {seconds:g} s windows, CPU per frame taken:")
    for label, values in per_frame.items():
        print(
            f"  {label:22s} {statistics.median(values) * 1e6:7.1f} us/frame"
            f"   (rounds: {', '.join(f'{v * 1e6:.0f}' for v in values)} us)"
        )
    v1, v2 = per_frame.values()
    ratio = statistics.median(b / a for a, b in zip(v1, v2, strict=True))
    report("daemon CPU per frame, v2 writer / v1 writer", f"x{ratio:.3f}", f"<= {V2_BAR}", ratio <= V2_BAR)


def run(args: argparse.Namespace | None = None) -> None:
    rounds = (args.rounds if args and args.rounds else 0) or 300
    seconds = float(getattr(args, "window", 0) or WINDOW)
    repeats = int(getattr(args, "repeats", 0) or REPEATS)
    with terminated_by_sigterm():
        print(f"transforms, in this process: the {HEIGHT}x{WIDTH} dome wired serpentine, medians of {rounds} frames")
        _transforms(rounds)
        _processes(seconds, repeats)


if __name__ == "__main__":
    import sys

    from skyscreen_hw.benchmarks import run_all

    sys.exit(run_all(argparse.Namespace(name="modes", rounds=0)))
