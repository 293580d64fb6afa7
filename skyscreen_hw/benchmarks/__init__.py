"""Benchmarks behind `skyscreen-hw bench` and bench/: medians and ratios measured in one run.

Every figure that has a bar is printed with it and PASS or FAIL (`report`); `run_all` ends with a summary
and exits 1 when any bar failed. SKIP means the figure could not be measured here (it says why).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time
from collections.abc import Callable

NAMES = ("frame", "simulator", "serial", "websocket", "live", "network", "network_receive", "modes")

RESULTS: list[tuple[str, str]] = []  # (label, PASS / FAIL / SKIP) of every bar reported in this process


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


def compare_seconds(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 3) -> dict[str, float]:
    """Median wall time of each function, calling them in turn (so all see the same machine load)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def report(label: str, figure: str, bar: str, ok: bool | None) -> bool:
    """Print one figure with its bar and PASS / FAIL (SKIP: ``ok`` None, not measured); remember it."""
    status = "SKIP" if ok is None else "PASS" if ok else "FAIL"
    print(f"  {status}  {label}: {figure}   (bar: {bar})", flush=True)
    RESULTS.append((label, status))
    return bool(ok)


def run_all(args: argparse.Namespace) -> int:
    """Run one benchmark (``args.name``) or all of them; 1 if any bar failed."""
    RESULTS.clear()
    for name in [args.name] if args.name else NAMES:
        print(f"== {name} ==", flush=True)
        importlib.import_module(f"skyscreen_hw.benchmarks.{name}").run(args)
        print(flush=True)
    failed = [label for label, status in RESULTS if status == "FAIL"]
    counts = {s: sum(1 for _, status in RESULTS if status == s) for s in ("PASS", "FAIL", "SKIP")}
    print(f"bars: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['SKIP']} SKIP", flush=True)
    for label in failed:
        print(f"  FAIL: {label}", flush=True)
    return 1 if failed else 0
