"""Instruction stream benchmark: 256-word pixel messages through the running daemon vs a bare server.

Both servers are separate processes on loopback, fed by the same client over one connection: it sends
the messages, then a quit, and the clock stops when the server closes the connection, i.e. after it has
taken every message. The bare server is a plain `websockets` server whose handler only receives.
The daemon runs the default dome (103,680 LEDs) with its frame clock, so the canvas is composed onto
the LEDs as usual while messages arrive.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from skyscreen_hw.sources import instructions as ins

WORDS = 256

BARE_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve

QUIT = b"\\xff\\xff\\xff\\xff"

async def handler(ws):
    async for message in ws:
        if message == QUIT:
            await ws.close(1000, "quit")
            return

async def main():
    async with serve(handler, "127.0.0.1", 0, max_size=1 << 20) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


def pixel_messages(count: int, seed: int = 0) -> list[bytes]:
    """`count` messages of WORDS random colour-pixel words each."""
    rng = np.random.default_rng(seed)
    x, y, c = (
        rng.integers(0, 32, (count, WORDS)),
        rng.integers(0, 32, (count, WORDS)),
        rng.integers(0, 4096, (count, WORDS)),
    )
    words = (1 << 29) | (x << 24) | (1 << 21) | (y << 16) | c
    return [row.astype(">u4").tobytes() for row in words]


async def _feed(url: str, messages: list[bytes]) -> float:
    from websockets.asyncio.client import connect

    async with connect(url, max_size=1 << 20) as ws:
        start = time.perf_counter()
        for m in messages:
            await ws.send(m)
        await ws.send(ins.pack([ins.QUIT]))
        await ws.wait_closed()
        elapsed = time.perf_counter() - start
        if ws.close_code != 1000:
            raise RuntimeError(f"server closed with {ws.close_code} {ws.close_reason}")
    return elapsed


def _words_per_second(url: str, messages: list[bytes], rounds: int) -> float:
    times = [asyncio.run(_feed(url, messages)) for _ in range(rounds)]
    return len(messages) * WORDS / statistics.median(times)


def _start_daemon(tmp: str) -> tuple[subprocess.Popen, str]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    cfg = Path(tmp) / "bench.toml"
    cfg.write_text(f'outputs = []\n[frame]\nname = "{name}"\n[websocket]\nport = 0\n')
    log = Path(tmp) / "daemon.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "skyscreen_hw", "--config", str(cfg)], stderr=log.open("wb"), stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"ws://[\d.]+:\d+", log.read_text())
        if found:
            return proc, found.group(0)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.terminate()
    raise RuntimeError(f"daemon did not start:\n{log.read_text()}")


def run(args: argparse.Namespace | None = None) -> None:
    rounds = (args.rounds if args and args.rounds else 0) or 5
    messages = pixel_messages(2000)
    bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER], stdout=subprocess.PIPE, text=True)
    with tempfile.TemporaryDirectory() as tmp:
        daemon, url = _start_daemon(tmp)
        try:
            bare_url = f"ws://127.0.0.1:{bare.stdout.readline().strip()}" if bare.stdout else ""
            _words_per_second(bare_url, messages[:200], 1)  # warm up both
            _words_per_second(url, messages[:200], 1)
            ours, plain = [], []
            for _ in range(rounds):  # interleaved, so both see the same machine load
                plain.append(_words_per_second(bare_url, messages, 1))
                ours.append(_words_per_second(url, messages, 1))
        finally:
            for proc in (daemon, bare):
                proc.terminate()
                proc.wait(10)
    mo, mp = statistics.median(ours), statistics.median(plain)
    print(f"{len(messages)} messages of {WORDS} colour-pixel words, one connection; medians of {rounds} rounds")
    print(f"  bare websockets server (receive only): {mp / 1e6:6.2f} M words/s")
    print(f"  skyscreen-hw daemon (decode + canvas + frame clock on the dome): {mo / 1e6:6.2f} M words/s")
    print(f"  ratio daemon / bare: {mo / mp:.3f}   (bar: >= 0.5)")
