"""Simulator benchmark: the 103,680-LED dome drawn headless, per frame and as % of one core at 60 fps."""

from __future__ import annotations

import argparse
import logging
import os

import numpy as np

from skyscreen_hw import config as configuration
from skyscreen_hw import layouts
from skyscreen_hw.benchmarks import median_seconds, report

FPS = 60
CORE_BAR = 25.0  # % of one core


def run(args: argparse.Namespace | None = None) -> None:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from skyscreen_hw.outputs.simulator import Simulator

    rounds = (args.rounds if args and args.rounds else 0) or 200
    layout = layouts.build(configuration.Config())
    sim = Simulator(layout, 0, layout.count, 720, logging.getLogger("skyscreen.bench"))
    frames = np.random.default_rng(0).integers(0, 256, (4, layout.count, 3), dtype=np.uint8)
    i = iter(range(1 << 30))
    try:
        t = median_seconds(lambda: sim.show(frames[next(i) % 4]), rounds)
    finally:
        sim.close()
    print(f"simulator, dome {layout.count} LEDs in a 720x720 window (SDL {os.environ['SDL_VIDEODRIVER']})")
    share = 100 * t * FPS
    report(
        f"simulator show(), dome at {FPS} fps",
        f"{share:.1f}% of one core ({t * 1e3:.3f} ms/frame, median of {rounds})",
        f"<= {CORE_BAR:g}%",
        share <= CORE_BAR,
    )
