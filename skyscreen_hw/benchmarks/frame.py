"""Frame path benchmark: the 103,680-LED dome wired serpentine, gamma 2.2, brightness 0.8, at 60 fps.

Everything is measured in one run, against references measured in the same run:

1. **Steps, in this process** (hot caches; medians of ``--rounds`` frames): the frame path (poll +
   gather + colour) against naive numpy and a per-LED Python loop; and each step's fast version against
   the simple one: the canvas overlay against the masked ``np.copyto``, the gamma lookup against
   ``table[leds]`` and the previous widening ``np.take``, the power limit against the previous widening
   sum and byte table.
2. **Whole processes**, each fed by a writer of its own that always has the next frame ready, so each
   consumer sets its own pace: the daemon (``python -m skyscreen_hw --record /dev/null``, ``outputs =
   []``, websocket on) on the plain dome, with the canvas drawn, and with a power limit that scales every
   frame; against a C consumer doing the same work the plainest fast way (bench/reference_consumer.c,
   built with ``gcc -O2``: memcpy out of the mapping, fused serpentine + gamma table, write), paced like
   the daemon, so both pay the same wake-ups. Beside them, for scale and without a bar, the same loop in
   Python and nothing else (bench/floor_consumer.py: preadv, the package's compiled pass, write): what any
   Python consumer pays here for waking up every 16 ms. CPU per frame: the process's CPU time (every thread, from
   /proc) over a window, divided by the frames it took. The C reference and the three daemons are fed at
   once over the same short windows (a writer thread each), so a burst of load on this shared machine
   falls on all of them: ratios and added costs pair the figures of one window, and the printed values
   are medians over the rounds. Between windows the consumers are stopped (SIGSTOP). The daemon with
   ``fps = 1000`` (no sleeping) is measured alone, for what waking up every 16 ms costs.
   ``SKYSCREEN_BENCH_TREES="before=/path/a,after=/path/b"`` adds the same three daemons run from other
   checkouts, each group measured with the C reference: versions compared in one run.

Everything made in /dev/shm is removed at the end, also on errors and on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from skyscreen_hw import config as configuration
from skyscreen_hw import layouts
from skyscreen_hw.benchmarks import compare_seconds, median_seconds, report
from skyscreen_hw.benchmarks.support import (
    CHECKOUT,
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
from skyscreen_hw.color import ColorCorrection, Lookups, gamma_table
from skyscreen_hw.compositor import CanvasOverlay, canvas_samples
from skyscreen_hw.power import PowerLimit
from skyscreen_hw.sources import instructions as ins
from skyscreen_hw.sources.canvas import Canvas
from skyscreen_hw.sources.shared_frame import FrameReader, FrameWriter

GAMMA, BRIGHTNESS = 2.2, 0.8
LED_MILLIAMPS = 55.0
WINDOW = 0.5  # seconds of each measured window: short, so paired windows see the same machine
WARMUP = 0.25  # seconds fed before each window (after SIGCONT)
REPEATS = 12  # rounds of windows
TOGETHER = True  # the 60 fps consumers fed at once, each by its own writer thread: they share the machine's load
C_SOURCE = Path(__file__).resolve().parents[2] / "bench" / "reference_consumer.c"
FLOOR_SOURCE = C_SOURCE.with_name("floor_consumer.py")

PLAIN, CANVAS, POWER = "daemon", "daemon, canvas drawn", "daemon, power limit"  # the daemons measured
UNPACED = "daemon unpaced (fps 1000)"
REFERENCE = "C reference"
FLOOR = "Python floor"  # bench/floor_consumer.py: the C reference's loop in Python, nothing else

RATIO_BAR = 1.5  # daemon / C, plain dome
CANVAS_BAR = 50e-6  # seconds a frame the canvas overlay may add
POWER_BAR = 60e-6  # seconds a frame an active power limit may add
PATH_BAR = 0.5  # in-process frame path / naive numpy
CORE_BAR = 3.0  # % of one core for the daemon on the plain dome at 60 fps


def _quiet_log() -> logging.Logger:
    log = logging.getLogger("skyscreen.bench")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


def _config(name: str, max_milliamps: int = 0) -> configuration.Config:
    return configuration.parse(
        {
            "frame": {"name": name, "height": HEIGHT, "width": WIDTH},
            "layout": {"serpentine": True},
            "color": {
                "gamma": GAMMA,
                "brightness": BRIGHTNESS,
                "max_milliamps": max_milliamps,
                "led_milliamps": LED_MILLIAMPS,
            },
        },
        "(benchmark)",
    )


def _picture(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)


def _half_the_draw(picture: np.ndarray) -> int:
    """A max_milliamps that scales ``picture`` (and any frame a byte away from it) to about half."""
    cc = ColorCorrection(configuration.ColorConfig(gamma=GAMMA, brightness=BRIGHTNESS))
    power = PowerLimit(configuration.ColorConfig(led_milliamps=LED_MILLIAMPS))
    return int(power.estimate_milliamps(cc(picture, np.empty_like(picture))) / 2)


def _canvas_words() -> list[bytes]:
    """A few messages drawing text and a block on cells the dome shows."""
    lines = ["SKYSCREEN", "HELLO DOME", "60 FPS"]
    messages = [
        ins.pack([ins.char(8 + x, 11 + 3 * row, 3, 2, 1, ch) for x, ch in enumerate(text)])
        for row, text in enumerate(lines)
    ]
    messages.append(ins.pack(ins.colour_block(12, 20, 19, 23, 15, 8, 1)))
    return messages


# -- 1. steps, in this process ---------------------------------------------------------------------------


def _steps(rounds: int) -> None:
    name = display_name()
    config = _config(name)
    layout = layouts.build(config)
    n = layout.count
    picture = _picture(0)
    with displays() as names:
        names.append(name)
        reader = FrameReader(name, HEIGHT, WIDTH, _quiet_log())
        writer = FrameWriter(name, HEIGHT, WIDTH)
        try:
            writer.frame[:] = picture
            gather = layouts.LedGather(layout)
            color = ColorCorrection(config.color)
            out = np.empty((n, 3), np.uint8)

            one_pass = color.frame_pass(gather, out, summed=False)  # as the daemon has it without a power limit

            def ours() -> None:
                writer.ready.release()
                one_pass(reader.poll(0.1), None)
                writer.done.acquire(0.1)

            lut = gamma_table(GAMMA, BRIGHTNESS)
            index = layout.frame_index

            def naive() -> None:
                writer.ready.release()
                reader.ready.acquire(0.1)
                frame = np.array(writer.frame).reshape(-1, 3)  # a copy out of the mapping
                reader.done.release()
                lut[frame[index]]
                writer.done.acquire(0.1)

            mapped = writer.frame

            def per_led() -> None:
                frame = bytes(mapped)
                leds = bytearray(n * 3)
                for i in range(n):
                    p = int(index[i]) * 3
                    leds[3 * i] = lut[frame[p]]
                    leds[3 * i + 1] = lut[frame[p + 1]]
                    leds[3 * i + 2] = lut[frame[p + 2]]

            t = compare_seconds({"ours": ours, "naive": naive}, rounds)
            t_ours, t_naive = t["ours"], t["naive"]
            t_loop = median_seconds(per_led, 3, warmup=0)
        finally:
            writer.close()
            reader.close()
    budget = 1 / FPS
    print(f"steps in this process: dome {n} LEDs, serpentine, gamma {GAMMA}, medians of {rounds} frames")
    print(f"  frame path (poll + gather + colour): {t_ours * 1e3:6.3f} ms = {100 * t_ours / budget:5.2f}% at {FPS} fps")
    print(f"  naive numpy (copy, index gather, table): {t_naive * 1e3:6.3f} ms; per-LED loop {t_loop * 1e3:.0f} ms")
    report("frame path / naive numpy", f"{t_ours / t_naive:.3f}", f"< {PATH_BAR}", t_ours / t_naive < PATH_BAR)

    leds = np.random.default_rng(4).integers(0, 256, (n, 3), np.uint8)
    _overlay_step(layout, leds, rounds)
    _colour_step(config.color, leds, rounds)
    _power_step(leds, rounds)


def _overlay_step(layout: layouts.Layout, leds: np.ndarray, rounds: int) -> None:
    canvas = Canvas()
    for message in _canvas_words():
        canvas.apply(1, ins.decode(message))
    overlay = CanvasOverlay(layout, canvas)
    overlay.draw(leds)
    # the simple way, prepared once as well: each LED's canvas colour and a bool mask, np.copyto where drawn
    rgb, alpha = canvas.texture()
    flat = rgb.reshape(-1, 3).astype(np.int64)
    colour = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    key = (alpha.reshape(-1).astype(np.int64) << 31) | ((colour != 0).astype(np.int64) << 30) | colour
    best = np.max([key[index] for index in canvas_samples(layout, canvas.SIZE)], axis=0)
    mask = (best >> 31).astype(bool)[:, None]
    paint = np.column_stack([(best >> 16) & 0xFF, (best >> 8) & 0xFF, best & 0xFF]).astype(np.uint8)
    simple_out = np.empty_like(leds)

    def simple() -> None:
        np.copyto(simple_out, leds)
        np.copyto(simple_out, paint, where=mask)

    t = compare_seconds({"fast": lambda: overlay.draw(leds), "simple": simple}, rounds)
    t_fast, t_simple = t["fast"], t["simple"]
    same = np.array_equal(simple_out, overlay.draw(leds))
    print(
        f"  canvas overlay ({int(mask.sum())} LEDs under drawing): byte masks {t_fast * 1e6:6.1f} us,"
        f" masked np.copyto {t_simple * 1e6:6.1f} us: x{t_fast / t_simple:.3f}{'' if same else '  RESULTS DIFFER'}"
    )


def _colour_step(color_config: configuration.ColorConfig, leds: np.ndarray, rounds: int) -> None:
    color = ColorCorrection(color_config)
    pairs = ColorCorrection(color_config, Lookups(compiled=None))  # numpy's pair lookups (no C module)
    out = np.empty_like(leds)
    table = color.table
    which = "C lookups" if color.lookups.compiled is not None else "C lookups not built, numpy's"
    t = compare_seconds(
        {"ours": lambda: color(leds, out), "pairs": lambda: pairs(leds, out), "simple": lambda: table[leds]}, rounds
    )
    t_ours, t_pairs, t_simple = t["ours"], t["pairs"], t["simple"]
    print(
        f"  gamma table ({which}): {t_ours * 1e6:6.1f} us; numpy pair lookups {t_pairs * 1e6:6.1f} us"
        f" (x{t_ours / t_pairs:.3f}); table[leds] {t_simple * 1e6:6.1f} us (x{t_ours / t_simple:.3f})"
    )


def _power_step(leds: np.ndarray, rounds: int) -> None:
    settings = configuration.ColorConfig(led_milliamps=LED_MILLIAMPS)
    limit = int(PowerLimit(settings).estimate_milliamps(leds) / 2)  # the frame is scaled to about half
    settings = dataclasses.replace(settings, max_milliamps=limit)
    power, in_numpy = PowerLimit(settings), PowerLimit(settings, Lookups(compiled=None))
    out = np.empty_like(leds)
    which = "C lookups" if power.lookups.compiled is not None else "C lookups not built, numpy's"
    t = compare_seconds({"ours": lambda: power.limit(leds, out), "numpy": lambda: in_numpy.limit(leds, out)}, rounds)
    print(
        f"  power limit on a frame over it (sum, then scaled; {which}): {t['ours'] * 1e6:6.1f} us;"
        f" numpy {t['numpy'] * 1e6:6.1f} us"
    )


# -- 2. whole processes ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Consumer:
    """One consumer process of its own display, and the writer feeding it."""

    label: str
    proc: subprocess.Popen
    writer: FrameWriter
    log_path: Path | None = None

    def window(self, seconds: float) -> tuple[float, float]:
        """Continue it, feed it for WARMUP + ``seconds``, stop it; (CPU seconds per frame, frames/s)."""
        pid = self.proc.pid
        os.kill(pid, signal.SIGCONT)
        try:
            k = self._feed(WARMUP, 0)[1]
            c0, t0 = cpu_seconds(pid), time.monotonic()
            frames, _ = self._feed(seconds, k)
            c1, t1 = cpu_seconds(pid), time.monotonic()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        if frames == 0:
            log = self.log_path.read_text(errors="replace")[-3000:] if self.log_path else ""
            raise RuntimeError(f"{self.label} took no frames (exit {self.proc.poll()}):\n{log}")
        return (c1 - c0) / frames, frames / (t1 - t0)

    def _feed(self, seconds: float, k: int) -> tuple[int, int]:
        """Flush frames (one byte changed each time) for ``seconds``; (frames taken, counter)."""
        end, taken = time.monotonic() + seconds, 0
        while time.monotonic() < end:
            k += 1
            self.writer.frame[0, 0, 0] = k & 0xFF
            taken += self.writer.flush(0.5)
        return taken, k


def _together(group: list[Consumer], seconds: float) -> list[tuple[float, float]]:
    """Feed every consumer of ``group`` at once (a writer thread each) over the same window."""
    results: list[tuple[float, float]] = [(0.0, 0.0)] * len(group)
    errors: list[BaseException] = []
    start = threading.Barrier(len(group))

    def feed(i: int, c: Consumer) -> None:
        try:
            k = c._feed(WARMUP, 0)[1]
            start.wait(10)
            c0, t0 = cpu_seconds(c.proc.pid), time.monotonic()
            frames, _ = c._feed(seconds, k)
            c1, t1 = cpu_seconds(c.proc.pid), time.monotonic()
            if frames == 0:
                raise RuntimeError(f"{c.label} took no frames (exit {c.proc.poll()})")
            results[i] = ((c1 - c0) / frames, frames / (t1 - t0))
        except BaseException as exc:
            errors.append(exc)
            start.abort()

    for c in group:
        os.kill(c.proc.pid, signal.SIGCONT)
    try:
        threads = [threading.Thread(target=feed, args=(i, c), daemon=True) for i, c in enumerate(group)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for c in group:
            with contextlib.suppress(ProcessLookupError):
                os.kill(c.proc.pid, signal.SIGSTOP)
    if errors:
        raise errors[0]
    return results


def _other_trees() -> list[tuple[str, str]]:
    """SKYSCREEN_BENCH_TREES="before=/path/a,after=/path/b": more daemons, each run from that source tree."""
    trees = []
    for item in os.environ.get("SKYSCREEN_BENCH_TREES", "").split(","):
        if "=" in item:
            label, path = item.split("=", 1)
            trees.append((label.strip(), str(Path(path.strip()).resolve())))
    return trees


def _compile(tmp: str) -> tuple[str | None, str]:
    """The C reference built into ``tmp``: (path, "") or (None, why not)."""
    if not C_SOURCE.exists():
        return None, f"{C_SOURCE} not found (run from a checkout)"
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        return None, "no gcc on this machine"
    binary = str(Path(tmp) / "reference_consumer")
    done = subprocess.run(
        [gcc, "-O2", "-o", binary, str(C_SOURCE), "-pthread", "-lm"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return None, f"gcc failed: {done.stderr.strip()[:300]}"
    return binary, ""


def _daemon_text(name: str, fps: float, max_milliamps: int) -> str:
    return (
        f'outputs = []\n[frame]\nname = "{name}"\nheight = {HEIGHT}\nwidth = {WIDTH}\n'
        f"[layout]\nserpentine = true\n"
        f"[color]\ngamma = {GAMMA}\nbrightness = {BRIGHTNESS}\nmax_milliamps = {max_milliamps}\n"
        f"led_milliamps = {LED_MILLIAMPS}\n"
        f"[display]\nfps = {fps}\n[websocket]\nport = 0\n"
    )


async def _draw(url: str, messages: list[bytes]) -> None:
    from websockets.asyncio.client import connect

    async with connect(url) as ws:
        for message in messages:
            await ws.send(message)
        with contextlib.suppress(TimeoutError):  # a rejection (1003 / 1007) would close it now
            await asyncio.wait_for(ws.wait_closed(), 0.3)
        await ws.close()
    if ws.close_code not in (1000, None):
        raise RuntimeError(f"the daemon refused the drawing: {ws.close_code} {ws.close_reason}")


def _processes(seconds: float, repeats: int, together: bool) -> None:
    picture = _picture(1)
    limit = _half_the_draw(picture)
    consumers: list[Consumer] = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        names = stack.enter_context(displays())  # removed last: after every process below has stopped

        def start(label: str, proc: subprocess.Popen, name: str, log_path: Path | None = None) -> None:
            stack.callback(stop_process, proc)
            writer = FrameWriter(name, HEIGHT, WIDTH, timeout=2.0)
            stack.callback(writer.close)
            writer.frame[:] = picture
            consumers.append(Consumer(label, proc, writer, log_path))

        binary, why = _compile(tmp)
        if binary is not None:
            name = display_name()
            names.append(name)
            FrameWriter(name, HEIGHT, WIDTH).close()  # the frame file and semaphores, for the C consumer to open
            args = [binary, name, str(HEIGHT), str(WIDTH), str(GAMMA), str(BRIGHTNESS), str(FPS)]
            start(REFERENCE, subprocess.Popen(args, stdout=subprocess.DEVNULL), name)
        if FLOOR_SOURCE.exists():
            name = display_name()
            names.append(name)
            FrameWriter(name, HEIGHT, WIDTH).close()
            args = [sys.executable, str(FLOOR_SOURCE), name, str(HEIGHT), str(WIDTH), str(GAMMA), str(BRIGHTNESS)]
            start(FLOOR, subprocess.Popen([*args, str(FPS)], env={**os.environ, "PYTHONPATH": str(CHECKOUT)}), name)
        plans: list[tuple[str, float, int, str | None]] = [
            (PLAIN, FPS, 0, None),
            (CANVAS, FPS, 0, None),
            (POWER, FPS, limit, None),
            (UNPACED, 1000, 0, None),  # no sleeping: what waking up every 16 ms costs
        ]
        for tree, source in _other_trees():
            plans += [(f"{label} [{tree}]", FPS, ma, source) for label, ma in ((PLAIN, 0), (CANVAS, 0), (POWER, limit))]
        for label, fps, max_milliamps, source in plans:
            name = display_name()
            names.append(name)
            text = _daemon_text(name, fps, max_milliamps)
            daemon = DaemonProcess(tmp, text, "--record", "/dev/null", source=source)
            stack.callback(daemon.stop)
            daemon.wait_running()
            start(label, daemon.proc, name, daemon.log_path)
            if label.startswith(CANVAS):
                asyncio.run(_draw(daemon.url, _canvas_words()))
        for c in consumers:
            os.kill(c.proc.pid, signal.SIGSTOP)
        # groups to compare: this checkout's daemons, and each other tree's, each with the C reference
        reference = [c for c in consumers if c.label == REFERENCE]
        groups = {"": [*reference, *(c for c in consumers if c.label in (FLOOR, PLAIN, CANVAS, POWER))]}
        for tree, _ in _other_trees():
            groups[tree] = [*reference, *(c for c in consumers if c.label.endswith(f" [{tree}]"))]
        figures: dict[str, dict[str, list[tuple[float, float]]]] = {g: {} for g in groups}
        for r in range(repeats):
            for tree, group in groups.items():
                if together:
                    measured = list(zip(group, _together(group, seconds), strict=True))
                else:
                    order = group[r % len(group) :] + group[: r % len(group)]  # a different one first
                    measured = [(c, c.window(seconds)) for c in order]
                for c, figure in measured:
                    figures[tree].setdefault(c.label.removesuffix(f" [{tree}]"), []).append(figure)
            for c in consumers:
                if c.label == UNPACED:  # alone: it takes a core
                    figures[""].setdefault(UNPACED, []).append(c.window(seconds))
    _print_processes(figures, seconds, repeats, together, why)


def _print_processes(
    figures: dict[str, dict[str, list[tuple[float, float]]]], seconds: float, repeats: int, together: bool, why: str
) -> None:
    """``figures[tree][label]``: (CPU seconds per frame, frames/s) of each round."""
    how = "fed at once, a writer each" if together else "fed in turn"
    print(
        f"whole processes ({how}; writers that keep up); {repeats} rounds of {seconds:g} s windows,"
        " CPU of every thread from /proc per frame taken, medians"
    )
    for tree, rows in figures.items():
        for label, values in rows.items():
            cpu = statistics.median(v[0] for v in values)
            rate = statistics.median(v[1] for v in values)
            print(
                f"  {label + (f' [{tree}]' if tree else ''):30s} {cpu * 1e6:7.1f} us/frame at {rate:5.1f} frames/s"
                f" = {100 * cpu * rate:5.2f}% of a core   (rounds: {', '.join(f'{v[0] * 1e6:.0f}' for v in values)})"
            )
    ours = figures[""]
    for tree, rows in figures.items():
        if tree:
            ratio = (
                f"x{_paired(rows[PLAIN], rows[REFERENCE], lambda d, c: d / c):.2f} the C reference, "
                if REFERENCE in rows
                else ""
            )
            canvas = _paired(rows[CANVAS], rows[PLAIN], lambda x, p: x - p)
            power = _paired(rows[POWER], rows[PLAIN], lambda x, p: x - p)
            print(
                f"  [{tree}]: daemon {ratio}canvas adds {canvas * 1e6:.0f} us/frame, power limit {power * 1e6:.0f} us"
            )
    plain = ours[PLAIN]
    core = statistics.median(v[0] for v in plain) * statistics.median(v[1] for v in plain) * 100
    report("daemon CPU on the plain dome at 60 fps", f"{core:.2f}% of a core", f"<= {CORE_BAR}%", core <= CORE_BAR)
    if REFERENCE in ours and FLOOR in ours:
        floor = _paired(ours[FLOOR], ours[REFERENCE], lambda f, c: f / c)
        print(f"  Python floor / C reference: x{floor:.2f} (what any Python consumer pays here; not a bar)")
    if REFERENCE in ours:
        ratio = _paired(plain, ours[REFERENCE], lambda d, c: d / c)
        report("daemon / C reference, plain dome", f"x{ratio:.2f}", f"<= {RATIO_BAR}", ratio <= RATIO_BAR)
    else:
        report("daemon / C reference, plain dome", f"not measured: {why}", f"<= {RATIO_BAR}", None)
    for label, bar, what in (
        (CANVAS, CANVAS_BAR, "canvas overlay adds"),
        (POWER, POWER_BAR, "active power limit adds"),
    ):
        added = _paired(ours[label], plain, lambda x, p: x - p)
        report(f"{what} (vs the plain daemon)", f"{added * 1e6:.0f} us/frame", f"<= {bar * 1e6:.0f} us", added <= bar)


def _paired(a: list[tuple[float, float]], b: list[tuple[float, float]], f: Callable[[float, float], float]) -> float:
    """The median over rounds of ``f`` of the CPU per frame of ``a`` and ``b`` in the same round."""
    return statistics.median(f(x[0], y[0]) for x, y in zip(a, b, strict=True))


def run(args: argparse.Namespace | None = None) -> None:
    rounds = (args.rounds if args and args.rounds else 0) or 300
    seconds = float(getattr(args, "window", 0) or WINDOW)
    repeats = int(getattr(args, "repeats", 0) or REPEATS)
    with terminated_by_sigterm():
        _steps(rounds)
        _processes(seconds, repeats, bool(getattr(args, "together", TOGETHER)))
