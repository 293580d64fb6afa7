"""Live view benchmark: what `/live` viewers cost the daemon on the 103,680-LED dome, and what they receive.

Everything is measured in one run:

1. **In this process** (medians of ``--rounds``): the bytes of one dome frame raw, deflated (zlib level 1
   and 6) and scaled, for three demo patterns, with the time each compression takes, hence the bytes per
   second a viewer gets at 30 fps; ``LiveView.show`` (one copy and one comparison in the frame clock)
   against a plain ``np.copyto``; and the wake-up strategy: viewers woken by the clock thread
   (``call_soon_threadsafe`` while one waits, what the daemon does) against viewers polling at their fps,
   as CPU time of the whole process while a clock thread shows 60 (then 20) different frames a second.
2. **The whole daemon** (``python -m skyscreen_hw``, the dome, ``outputs = []``, 60 fps) fed by
   ``skyscreen-hw demo spiral`` at 60 fps: its CPU time per second (every thread, from /proc) with no
   viewer, with one viewer reading /live at 30 fps as the page does (offering per-message deflate, as
   browsers do; on loopback it keeps up, so it gets raw pictures), and with ten. Viewers are `websockets` clients in
   a process of their own (their CPU is not the daemon's). Windows take turns over the rounds; figures
   are medians, and each added cost is a ratio to the daemon's own CPU without viewers in the same round.

Everything made in /dev/shm is removed at the end, also on errors and on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from skyscreen_hw import config as configuration
from skyscreen_hw import demos, layouts
from skyscreen_hw.benchmarks import compare_seconds, report
from skyscreen_hw.benchmarks.support import (
    DaemonProcess,
    cpu_seconds,
    display_name,
    displays,
    stop_process,
    terminated_by_sigterm,
)
from skyscreen_hw.color import ColorCorrection
from skyscreen_hw.net import web
from skyscreen_hw.outputs.live import LiveView

CLOCK_FPS = 60
VIEWER_FPS = 30
WINDOW = 3.0  # seconds measured per window
WARMUP = 1.5  # seconds between the viewers connecting and the window
REPEATS = 3
MANY = 10

ONE_BAR = 0.5  # one viewer's added daemon CPU / the daemon's own
MANY_BAR = 2.0  # ten viewers' added CPU / the daemon's own

# one process holding N viewers: connect, say "ready", read until stdin closes, print frames and bytes
VIEWERS = """
import asyncio, sys
from websockets.asyncio.client import connect

url, count, deflate = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
totals = [0, 0]

async def viewer(ready):
    async with connect(url, max_size=None, compression="deflate" if deflate else None) as ws:
        ready.append(1)
        async for message in ws:
            if isinstance(message, bytes):
                totals[0] += 1
                totals[1] += len(message)

async def main():
    ready = []
    tasks = [asyncio.create_task(viewer(ready)) for _ in range(count)]
    while len(ready) < count:
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print(totals[0], totals[1], flush=True)
    for t in tasks:
        t.cancel()

asyncio.run(main())
"""


def _quiet_log() -> logging.Logger:
    log = logging.getLogger("skyscreen.bench.live")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


def _dome() -> tuple[layouts.Layout, layouts.LedGather, ColorCorrection]:
    config = configuration.parse({"layout": {"serpentine": True}}, "(benchmark)")
    layout = layouts.build(config)
    return layout, layouts.LedGather(layout), ColorCorrection(config.color)


# -- 1. in this process ----------------------------------------------------------------------------------------


def _sizes(rounds: int) -> None:
    layout, gather, color = _dome()
    grid = demos.Grid.of(*layout.frame_shape)
    leds = np.empty((layout.count, 3), np.uint8)
    raw_bytes = layout.count * 3
    print(f"one dome frame: {raw_bytes} bytes raw = {raw_bytes * VIEWER_FPS / 1e6:.1f} MB/s at {VIEWER_FPS} fps")
    for name in ("spiral", "rings", "noise"):
        data = color(gather(demos.PATTERNS[name](1.3, grid), leds), np.empty_like(leds)).tobytes()
        t = compare_seconds({"1": lambda d=data: web.deflate(d, 1), "6": lambda d=data: web.deflate(d, 6)}, rounds)
        one, six = len(web.deflate(data, 1)), len(web.deflate(data, 6))
        pays = "pays" if one <= web.DEFLATE_PAYS * raw_bytes else "does not pay: sent raw"
        print(
            f"  {name:7s} deflate level 1: {one:7d} bytes ({raw_bytes / one:5.1f}x smaller) in {t['1'] * 1e3:5.2f} ms,"
            f" {one * VIEWER_FPS / 1e6:5.2f} MB/s; level 6: {six} bytes in {t['6'] * 1e3:5.2f} ms ({pays})"
        )
    for scale in (2, 4, 8):
        print(f"  ?scale={scale}: {raw_bytes // scale} bytes raw, {raw_bytes // scale * VIEWER_FPS / 1e6:.2f} MB/s")
    live = LiveView(layout, _quiet_log())
    live.viewers = 1
    frames = [np.random.default_rng(i).integers(0, 256, leds.shape, np.uint8) for i in range(2)]
    turn = [0]

    def show() -> None:
        turn[0] ^= 1
        live.show(frames[turn[0]])

    out = np.empty_like(leds)
    t = compare_seconds({"show": show, "copy": lambda: np.copyto(out, frames[turn[0]])}, rounds)
    print(
        f"  LiveView.show (copy + compare + wake-up check) {t['show'] * 1e6:6.1f} us a frame,"
        f" a plain np.copyto {t['copy'] * 1e6:6.1f} us: {100 * t['show'] * CLOCK_FPS:.2f}% of a core at {CLOCK_FPS} fps"
    )


def _wake_cost(viewers: int, push: bool, seconds: float, clock_fps: float) -> float:
    """CPU seconds per second of this process: a clock thread showing ``clock_fps`` new frames a second to
    ``viewers`` tasks that take them at VIEWER_FPS, woken by the clock (push) or polling (not push)."""
    layout = layouts.build(configuration.parse({"frame": {"height": 8, "width": 8}, "layout": {"type": "matrix"}}, "-"))
    live = LiveView(layout, _quiet_log())
    live.viewers = viewers
    frames = [np.full((layout.count, 3), i, np.uint8) for i in range(2)]
    taken = [0]

    async def viewer_push() -> None:
        loop = asyncio.get_running_loop()
        seen, due, period = -1, loop.time(), 1 / VIEWER_FPS
        while True:  # as LiveStreams._stream: the viewer's rate first, then the newest picture
            now = loop.time()
            if now < due:
                await asyncio.sleep(due - now)
            picture = await live.changed(seen)
            seen, due = picture.version, max(due + period, now)
            taken[0] += 1

    async def viewer_poll() -> None:
        seen = -1
        while True:
            await asyncio.sleep(1 / VIEWER_FPS)
            picture = live.picture
            if picture.version != seen and picture.leds:
                seen = picture.version
                taken[0] += 1

    async def main() -> float:
        if push:
            live.attach(asyncio.get_running_loop())
        stop = threading.Event()

        def clock() -> None:
            k, next_tick = 0, time.monotonic()
            while not stop.is_set():
                k ^= 1
                live.show(frames[k])
                next_tick += 1 / clock_fps
                time.sleep(max(0.0, next_tick - time.monotonic()))

        tasks = [asyncio.create_task(viewer_push() if push else viewer_poll()) for _ in range(viewers)]
        thread = threading.Thread(target=clock, daemon=True)
        thread.start()
        await asyncio.sleep(0.3)
        cpu, start = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        used = (time.process_time() - cpu) / (time.monotonic() - start)
        stop.set()
        thread.join()
        for t in tasks:
            t.cancel()
        return used

    return asyncio.run(main())


def _wake_strategies(seconds: float) -> None:
    print(f"wake-ups: viewers taking {VIEWER_FPS} fps from a clock thread (CPU of this whole process)")
    for clock_fps in (CLOCK_FPS, 20):
        for viewers in (1, MANY):
            push = statistics.median(_wake_cost(viewers, True, seconds, clock_fps) for _ in range(3))
            poll = statistics.median(_wake_cost(viewers, False, seconds, clock_fps) for _ in range(3))
            print(
                f"  clock at {clock_fps} fps, {viewers:2d} viewer(s): woken by the clock {push * 1e3:5.1f} ms/s,"
                f" polling at their fps {poll * 1e3:5.1f} ms/s (woken / polling {push / poll:.2f})"
            )


# -- 2. the whole daemon ---------------------------------------------------------------------------------------


class Viewers:
    """A process holding ``count`` /live viewers (deflate offered or not) until ``stop``."""

    def __init__(self, url: str, count: int, deflate: bool) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", VIEWERS, f"{url}/live?fps={VIEWER_FPS}", str(count), "1" if deflate else "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        if line != "ready":
            stop_process(self.proc, 5)
            raise RuntimeError(f"viewers could not connect to {url}/live (exit {self.proc.poll()})")

    def stop(self) -> tuple[int, int]:
        """(frames, bytes) the viewers received."""
        try:
            out, _ = self.proc.communicate("", timeout=20)
            frames, size = out.split()[-2:]
            return int(frames), int(size)
        finally:
            stop_process(self.proc, 5)


def _daemon(rounds: int) -> None:
    cases = {"no viewer": (0, True), "1 viewer": (1, True), f"{MANY} viewers": (MANY, True)}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    received: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    with terminated_by_sigterm(), contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        names = stack.enter_context(displays())
        name = display_name()
        names.append(name)
        text = f'outputs = []\n[frame]\nname = "{name}"\n[layout]\nserpentine = true\n[display]\nfps = {CLOCK_FPS}\n'
        text += "[websocket]\nport = 0\n"
        daemon = DaemonProcess(tmp, text)
        stack.callback(daemon.stop)
        daemon.wait_running()
        cfg = next(Path(tmp).glob("bench-*.toml"))
        writer = subprocess.Popen(
            [sys.executable, "-m", "skyscreen_hw", "--config", str(cfg), "demo", "spiral", "--fps", str(CLOCK_FPS)],
            cwd=tmp,
        )
        stack.callback(stop_process, writer)
        time.sleep(2.0)
        pid = daemon.proc.pid
        for _ in range(rounds):
            for case, (count, deflate) in cases.items():
                viewers = Viewers(daemon.url, count, deflate) if count else None
                try:
                    time.sleep(WARMUP)
                    c0, t0 = cpu_seconds(pid), time.monotonic()
                    time.sleep(WINDOW)
                    c1, t1 = cpu_seconds(pid), time.monotonic()
                finally:
                    got = viewers.stop() if viewers else (0, 0)
                cpu[case].append((c1 - c0) / (t1 - t0))
                window = WINDOW + WARMUP  # what the viewers counted spans both
                received[case].append((got[0] / window / max(count, 1), got[1] / window / max(count, 1)))
    base = cpu["no viewer"]
    print(
        f"the daemon on the dome at {CLOCK_FPS} fps fed by the spiral demo; viewers at {VIEWER_FPS} fps;"
        f" medians of {rounds} rounds of {WINDOW:g} s"
    )
    print(f"  no viewer: {statistics.median(base) * 1e3:6.1f} ms CPU a second (the frame path's own)")
    ratios = {}
    for case in list(cases)[1:]:
        added = [c - b for c, b in zip(cpu[case], base, strict=True)]
        ratios[case] = statistics.median(a / b for a, b in zip(added, base, strict=True))
        fps = statistics.median(r[0] for r in received[case])
        rate = statistics.median(r[1] for r in received[case])
        print(
            f"  {case}: +{statistics.median(added) * 1e3:6.1f} ms CPU a second ({ratios[case]:.2f} x the frame path);"
            f" each viewer got {fps:4.1f} frames/s, {rate / 1e6:5.2f} MB/s of pictures (after inflating)"
        )
    one, many = ratios["1 viewer"], ratios[f"{MANY} viewers"]
    report("one /live viewer at 30 fps: added daemon CPU / frame path", f"{one:.2f}", f"<= {ONE_BAR}", one <= ONE_BAR)
    report("ten /live viewers: added daemon CPU / frame path", f"{many:.2f}", f"<= {MANY_BAR}", many <= MANY_BAR)


def run(args: argparse.Namespace | None = None) -> None:
    rounds = (args.rounds if args and args.rounds else 0) or 50
    _sizes(rounds)
    _wake_strategies(2.0)
    _daemon(max(1, min(rounds, REPEATS)) if args and args.rounds else REPEATS)
