"""The `skyscreen-hw` command: run the daemon, or one of demo / send / bench / check-config / layout."""

from __future__ import annotations

import signal

# Ctrl-C before a command installs its own handler (the daemon's blanks the LEDs) just ends the process:
# nothing is open yet, and no traceback from the middle of an import. Set before the other imports.
signal.signal(signal.SIGINT, signal.SIG_DFL)

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from skyscreen_hw import __version__  # noqa: E402
from skyscreen_hw import config as configuration  # noqa: E402
from skyscreen_hw.errors import SkyscreenError  # noqa: E402


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skyscreen-hw",
        description="LED-display daemon: shows the shared frame and the websocket canvas on the LEDs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", metavar="PATH", help=f"configuration file (default {configuration.DEFAULT_PATH})")
    parser.add_argument(
        "--simulate", action="store_true", help="show the LEDs in the pygame simulator instead of the outputs"
    )
    parser.add_argument("--record", metavar="PATH", help="append every frame sent to the outputs to PATH (raw RGB)")
    parser.add_argument("--snapshot", metavar="PATH", help="on exit, save the simulator's picture as PNG")
    parser.add_argument("--duration", metavar="SECONDS", type=_positive, help="run this long, then stop as on SIGTERM")
    parser.add_argument("--demo", metavar="PATTERN", help="also run a demo pattern writer (see `demo --help`)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from skyscreen_hw.demos import PATTERNS

    demo = sub.add_parser("demo", help="write a demo pattern through the shared frame")
    demo.add_argument("pattern", choices=sorted(PATTERNS))
    demo.add_argument("--fps", type=_positive, default=60.0)
    demo.add_argument("--duration", metavar="SECONDS", type=_positive)
    demo.add_argument("--name", help="display name (default: the configuration's [frame] name)")

    check = sub.add_parser("check-config", help="validate a configuration and print it resolved")
    check.add_argument("path", nargs="?", help="configuration file (default: --config or the default path)")

    layout = sub.add_parser("layout", help="describe the layout; --png draws it with its wiring path")
    layout.add_argument("--png", metavar="PATH", help="save a picture of the layout")
    layout.add_argument("--size", type=int, default=1024, help="picture size in pixels")

    from skyscreen_hw.benchmarks import NAMES as BENCHMARKS

    bench = sub.add_parser("bench", help="measure speed against references in the same run (PASS/FAIL per bar)")
    bench.add_argument("name", nargs="?", choices=BENCHMARKS)
    bench.add_argument("--rounds", type=int, default=0, help="repetitions (0: each benchmark's default)")

    from skyscreen_hw import send, status_cli

    send.add_parser(sub)
    status_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # again: main() may be called after a handler was set
    args = build_parser().parse_args(argv)
    from skyscreen_hw.service import setup_logging

    log = setup_logging(args.verbose)
    try:
        return _dispatch(args, log)
    except SkyscreenError as exc:
        print(f"skyscreen-hw: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `skyscreen-hw check-config | head`: the reader left, which is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush stays quiet
        return 0


def _dispatch(args: argparse.Namespace, log: logging.Logger) -> int:
    if args.command == "check-config":
        return _check_config(args.path or args.config)
    if args.command == "layout":
        return _layout(args)
    if args.command == "demo":
        from skyscreen_hw import demos

        fc = configuration.load(args.config).frame
        return demos.run(args.name or fc.name, args.pattern, fc.height, fc.width, args.fps, args.duration, fc.group)
    if args.command == "bench":
        from skyscreen_hw.benchmarks import run_all

        return run_all(args)
    if args.command == "send":
        from skyscreen_hw import send

        return send.run(args)
    if args.command == "status":
        from skyscreen_hw import status_cli

        return status_cli.run(args)
    return _run_daemon(args, log)


def _check_config(path: str | None) -> int:
    """Build everything the daemon builds short of opening hardware, so it fails where the daemon would."""
    from skyscreen_hw import layouts, outputs

    config = configuration.load(path)
    layout = layouts.build(config)
    plans = outputs.plan(config, layout)
    print(f"# {config.source}: OK, {layout.count} LEDs ({layout.kind}), {len(plans)} output(s)")
    _network_summary(config, plans)
    print(config.to_toml([p.count for p in plans]))
    return 0


def _network_summary(config: configuration.Config, plans: Sequence) -> None:
    """Which controller, universes or packets each network output's LEDs go to, and where the wire is too slow."""
    from skyscreen_hw.outputs.network import DEFAULT_LINK_MBITS, summarize

    fps, total = config.display.fps, 0
    for p in plans:
        summary = summarize(p.config, p.first, p.count, fps)
        if summary is None:
            continue
        total += summary.wire_bytes
        print(f"#   [[outputs]] #{p.number} {summary.text}")
        for warning in summary.warnings:
            print(f"# warning: [[outputs]] #{p.number}: {warning}")
    mbits = total * fps * 8 / 1e6
    if total:
        print(f"#   all network outputs: {total:,} bytes a frame, {mbits:.0f} Mbit/s at {fps:g} fps")
    if mbits > DEFAULT_LINK_MBITS:
        print(
            f"# warning: {mbits:.0f} Mbit/s leave this machine: more than {DEFAULT_LINK_MBITS:g} Mbit/s Ethernet,"
            " use gigabit Ethernet (not Wi-Fi)"
        )


def _layout(args: argparse.Namespace) -> int:
    from skyscreen_hw import layout_drawing, layouts, outputs

    config = configuration.load(args.config)
    layout = layouts.build(config)
    print(layout_drawing.describe(layout))
    plans = outputs.plan(config, layout)
    _network_summary(config, plans)
    if args.png:
        layout_drawing.draw(layout, args.png, args.size, controllers=layout_drawing.controllers(plans))
        print(f"saved {args.png}")
    return 0


def _run_daemon(args: argparse.Namespace, log: logging.Logger) -> int:
    from skyscreen_hw import daemon

    options = daemon.RunOptions(args.config, args.simulate, args.record, args.snapshot, args.duration)
    if not args.demo:
        return daemon.run(options, log)
    from skyscreen_hw.demos import PATTERNS

    if args.demo not in PATTERNS:
        raise SkyscreenError(f"--demo {args.demo}: no such pattern (choose from {', '.join(sorted(PATTERNS))})")
    cmd = [sys.executable, "-m", "skyscreen_hw", *(["--config", args.config] if args.config else [])]
    writer = subprocess.Popen([*cmd, "demo", args.demo])
    try:
        return daemon.run(options, log)
    finally:
        writer.terminate()
        writer.wait(5)


if __name__ == "__main__":  # python -m skyscreen_hw.cli, the same as python -m skyscreen_hw
    raise SystemExit(main())
