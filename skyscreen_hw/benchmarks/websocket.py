"""Instruction stream benchmark: 256-word pixel messages from several client processes, daemon vs a bare server.

Two servers, each a process of its own on loopback: the daemon (the default 103,680-LED dome with its
frame clock, `outputs = []`, so the canvas is drawn over the LEDs as usual while messages arrive) and a
plain `websockets` server whose handler only receives. Each round, CLIENTS client processes per server
connect, wait for a common start, then send their messages without waiting and a quit; the round ends
when the server has closed every connection, i.e. after it has taken every message. Rounds alternate
between the two servers, so both see the same machine load; the figures are medians.

Everything made in /dev/shm (the daemon's display) is removed at the end, also on errors and SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from skyscreen_hw.benchmarks import report
from skyscreen_hw.benchmarks.support import DaemonProcess, display_name, displays, stop_process, terminated_by_sigterm

WORDS = 256
CLIENTS = 4
MESSAGES = 1500  # per client and round
RATIO_BAR = 0.7

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
    async with serve(handler, "127.0.0.1", 0, max_size=1 << 20, compression=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""

# one client: connect, say "ready", wait for "go" on stdin, send everything and a quit, wait for the
# server to close, print the monotonic time it closed
CLIENT = """
import asyncio, sys, time
from websockets.asyncio.client import connect
from skyscreen_hw.benchmarks.websocket import pixel_messages
from skyscreen_hw.sources import instructions as ins

url, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
messages = pixel_messages(count, seed)

async def main():
    async with connect(url, max_size=1 << 20, compression=None) as ws:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        for m in messages:
            await ws.send(m)
        await ws.send(ins.pack([ins.QUIT]))
        await ws.wait_closed()
        end = time.monotonic()
        if ws.close_code != 1000:
            sys.exit(f"server closed with {ws.close_code} {ws.close_reason}")
    print(end, flush=True)

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


def _round(url: str, messages: int) -> float:
    """CLIENTS processes send ``messages`` each at once; words per second the server took."""
    clients: list[subprocess.Popen] = []
    try:
        for seed in range(CLIENTS):
            clients.append(
                subprocess.Popen(
                    [sys.executable, "-c", CLIENT, url, str(messages), str(seed)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for c in clients:
            if c.stdout is None or c.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a client could not connect to {url} (exit {c.wait(10)})")
        start = time.monotonic()
        for c in clients:
            assert c.stdin is not None
            c.stdin.write("go\n")
            c.stdin.flush()
        ends = []
        for c in clients:
            out, _ = c.communicate(timeout=120)
            if c.returncode != 0 or not out.strip():
                raise RuntimeError(f"a client failed against {url} (exit {c.returncode})")
            ends.append(float(out.split()[-1]))
        return CLIENTS * messages * WORDS / (max(ends) - start)
    finally:
        for c in clients:
            stop_process(c, 5)


def run(args: argparse.Namespace | None = None) -> None:
    rounds = (args.rounds if args and args.rounds else 0) or 5
    messages = int(getattr(args, "messages", 0) or MESSAGES)
    ours, plain = [], []
    with terminated_by_sigterm(), contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        names = stack.enter_context(displays())
        bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER], stdout=subprocess.PIPE, text=True)
        stack.callback(stop_process, bare)
        name = display_name()
        names.append(name)
        daemon = DaemonProcess(tmp, f'outputs = []\n[frame]\nname = "{name}"\n[websocket]\nport = 0\n')
        stack.callback(daemon.stop)
        daemon.wait_running()
        if not daemon.url:
            raise RuntimeError(f"the daemon does not say where its websocket is:\n{daemon.log}")
        port = bare.stdout.readline().strip() if bare.stdout else ""
        bare_url = f"ws://127.0.0.1:{port}"
        _round(bare_url, 100)  # warm up both
        _round(daemon.url, 100)
        for _ in range(rounds):  # alternating, so both see the same machine load
            plain.append(_round(bare_url, messages))
            ours.append(_round(daemon.url, messages))
    mo, mp = statistics.median(ours), statistics.median(plain)
    print(
        f"{CLIENTS} client processes x {messages} messages of {WORDS} colour-pixel words, sent without waiting;"
        f" medians of {rounds} rounds"
    )
    print(f"  bare websockets server (receive only): {mp / 1e6:6.2f} M words/s")
    print(f"  skyscreen-hw daemon (decode + canvas + frame clock on the dome): {mo / 1e6:6.2f} M words/s")
    ratio = mo / mp
    report("websocket words/s, daemon / bare server", f"{ratio:.3f}", f">= {RATIO_BAR}", ratio >= RATIO_BAR)
