"""Benchmarks behind `skyscreen-hw bench` and bench/: medians and ratios measured in one run."""

from __future__ import annotations

import argparse
import importlib
import statistics
import time
from collections.abc import Callable

NAMES = ("frame", "simulator", "serial", "websocket")


def median_seconds(fn: Callable[[], object], rounds: int, warmup: int = 3) -> float:
    """The median wall time of ``fn()`` over ``rounds`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_all(args: argparse.Namespace) -> int:
    """Run one benchmark (``args.name``) or all of them."""
    for name in [args.name] if args.name else NAMES:
        print(f"== {name} ==", flush=True)
        importlib.import_module(f"skyscreen_hw.benchmarks.{name}").run(args)
        print(flush=True)
    return 0
