"""Frame path benchmark: the 103,680-LED dome, wired serpentine, gamma 2.2, at 60 fps.

Measured in one run, on real shared memory and semaphores:

* ours: ``FrameReader.poll`` (semaphores + pread) + compositor (serpentine gather) + colour + power limit;
* naive numpy: copy the mapped frame, gather it through an index array, look up gamma;
* a per-LED Python loop (a few frames only: it is slow);
* the real daemon process fed at 60 fps by a writer: its CPU time from /proc, as % of one core.
"""

from __future__ import annotations

import argparse
import contextlib
import mmap
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from skyscreen_hw import config as configuration
from skyscreen_hw import layouts
from skyscreen_hw.benchmarks import median_seconds
from skyscreen_hw.color import ColorCorrection, gamma_table
from skyscreen_hw.compositor import Compositor
from skyscreen_hw.power import PowerLimit
from skyscreen_hw.sources.shared_frame import FrameReader, FrameWriter, frame_path, semaphore_names

FPS = 60


def _cleanup(name: str) -> None:
    import posix_ipc

    frame_path(name).unlink(missing_ok=True)
    Path(f"/dev/shm/{name}.lock").unlink(missing_ok=True)
    for sem in semaphore_names(name):
        with contextlib.suppress(posix_ipc.ExistentialError):
            posix_ipc.unlink_semaphore(sem)


def _daemon_cpu(config_text: str, name: str, seconds: float, pace: bool = True) -> tuple[float, float]:
    """Run the daemon fed by a writer (at 60 fps, or as fast as it takes frames); return (% of a core, fps)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.toml"
        cfg.write_text(config_text)
        proc = subprocess.Popen(
            [sys.executable, "-m", "skyscreen_hw", "--config", str(cfg)],
            stderr=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        try:
            with FrameWriter(name, 360, 288, timeout=2.0) as writer:
                writer.frame[:] = np.random.default_rng(1).integers(0, 256, writer.frame.shape, np.uint8)
                while not writer.flush(0.2):  # until the daemon is up
                    if proc.poll() is not None:
                        raise RuntimeError("daemon exited during the benchmark")
                ticks = os.sysconf("SC_CLK_TCK")

                def cpu() -> float:
                    fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                    return (int(fields[11]) + int(fields[12])) / ticks

                for _ in range(FPS):  # warm up for a second
                    writer.flush()
                c0, t0, taken = cpu(), time.monotonic(), 0
                next_frame = t0
                while time.monotonic() - t0 < seconds:
                    writer.frame[0, 0, 0] = taken & 0xFF
                    taken += writer.flush()
                    if pace:
                        next_frame += 1 / FPS
                        time.sleep(max(0.0, next_frame - time.monotonic()))
                elapsed = time.monotonic() - t0
                return 100 * (cpu() - c0) / elapsed, taken / elapsed
        finally:
            proc.terminate()
            proc.wait(10)


def run(args: argparse.Namespace | None = None) -> None:
    rounds = (args.rounds if args and args.rounds else 0) or 300
    name = f"bench-{uuid.uuid4().hex[:8]}"
    config = configuration.parse(
        {"frame": {"name": name}, "layout": {"serpentine": True}, "color": {"gamma": 2.2}}, "(benchmark)"
    )
    layout = layouts.build(config)
    n = layout.count
    try:
        reader = FrameReader(name, 360, 288, _quiet_log())
        writer = FrameWriter(name, 360, 288)
        writer.frame[:] = np.random.default_rng(0).integers(0, 256, writer.frame.shape, np.uint8)
        compositor = Compositor(layout)
        color = ColorCorrection(config.color)
        power = PowerLimit(config.color)
        out = np.empty((n, 3), np.uint8)

        def ours() -> None:
            writer.ready.release()
            frame = reader.poll(0.1)
            power(color(compositor.compose(frame), out))
            writer.done.acquire(0.1)

        fd = os.open(frame_path(name), os.O_RDONLY)
        mapped = np.frombuffer(mmap.mmap(fd, 360 * 288 * 3, prot=mmap.PROT_READ), np.uint8)
        os.close(fd)
        lut = gamma_table(2.2, 1.0)
        index = layout.frame_index

        def naive() -> None:
            writer.ready.release()
            reader.ready.acquire(0.1)
            frame = np.array(mapped).reshape(-1, 3)
            reader.done.release()
            lut[frame[index]]
            writer.done.acquire(0.1)

        def per_led() -> None:
            frame = bytes(mapped)
            leds = bytearray(n * 3)
            for i in range(n):
                p = int(index[i]) * 3
                leds[3 * i] = lut[frame[p]]
                leds[3 * i + 1] = lut[frame[p + 1]]
                leds[3 * i + 2] = lut[frame[p + 2]]

        t_ours = median_seconds(ours, rounds)
        t_naive = median_seconds(naive, rounds)
        t_loop = median_seconds(per_led, 3, warmup=0)
        writer.close()
        reader.close()
    finally:
        _cleanup(name)
    budget = 1 / FPS
    print(f"dome {n} LEDs, serpentine, gamma 2.2; medians of {rounds} frames")
    print(f"  frame path: {t_ours * 1e3:7.3f} ms/frame = {100 * t_ours / budget:5.2f}% of a core at {FPS} fps")
    print(
        f"  naive numpy copy+gather+gamma: {t_naive * 1e3:7.3f} ms/frame = {100 * t_naive / budget:5.2f}% at {FPS} fps"
    )
    print(f"  per-LED Python loop     : {t_loop * 1e3:7.1f} ms/frame")
    print(f"  ratio ours / naive numpy: {t_ours / t_naive:.3f}   (bar: < 0.5)")
    print(f"  ratio ours / Python loop: {t_ours / t_loop:.5f}")
    for pace in (True, False):
        name = f"bench-{uuid.uuid4().hex[:8]}"
        fps = FPS if pace else 1000
        try:
            text = (
                f'outputs = []\n[frame]\nname = "{name}"\n[layout]\nserpentine = true\n[display]\nfps = {fps}\n'
                "[websocket]\nenabled = false\n"
            )
            percent, rate = _daemon_cpu(text, name, 5.0, pace)
        finally:
            _cleanup(name)
        per_frame = percent / 100 / rate
        if pace:
            print(
                f"  daemon process fed at {FPS} fps for 5 s: {rate:.1f} frames/s taken, {percent:.2f}% of one core"
                f" ({per_frame * 1e3:.3f} ms/frame; bar: <= 3%)"
            )
        else:
            print(
                f"  daemon process fed as fast as it takes frames (fps = 1000) for 5 s: {rate:.0f} frames/s,"
                f" {per_frame * 1e3:.3f} ms/frame = {100 * per_frame * FPS:.2f}% of a core at {FPS} fps"
                " (the gap to the line above: waking up every 16 ms to cold caches)"
            )


def _quiet_log():
    import logging

    log = logging.getLogger("skyscreen.bench")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log
