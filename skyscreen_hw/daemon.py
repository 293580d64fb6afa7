"""The daemon: wires sources -> compositor -> colour -> outputs and runs the frame clock.

One thread owns the frame clock (the main thread, which pygame also wants); the websocket server runs
its asyncio loop in a thread of its own and only touches the Canvas. Signals set flags the clock reads:
SIGTERM / SIGINT stop (all outputs get one black frame, then exit 0), SIGHUP reloads the configuration.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from dataclasses import dataclass
from types import FrameType

import numpy as np

from skyscreen_hw import config as configuration
from skyscreen_hw import layouts
from skyscreen_hw.color import ColorCorrection
from skyscreen_hw.compositor import CanvasLike, Compositor
from skyscreen_hw.config import Config
from skyscreen_hw.errors import SkyscreenError
from skyscreen_hw.outputs import Output, build_outputs, close_all
from skyscreen_hw.power import PowerLimit
from skyscreen_hw.service import Service
from skyscreen_hw.sources.shared_frame import FrameReader

KEEPALIVE = 1.0  # seconds: outputs get the current frame at least this often, even when nothing changes


@dataclass(frozen=True)
class RunOptions:
    """The command line's choices for one daemon run (BRIEF §5)."""

    config_path: str | None = None
    simulate: bool = False
    record: str | None = None
    snapshot: str | None = None
    duration: float | None = None


class Pipeline:
    """Everything built from one configuration: layout, compositor, colour, power limit, outputs."""

    def __init__(self, config: Config, options: RunOptions, canvas: CanvasLike | None, log: logging.Logger) -> None:
        self.config = config
        self.layout = layouts.build(config)
        self.compositor = Compositor(self.layout, canvas)
        self.color = ColorCorrection(config.color)
        self.power = PowerLimit(config.color)
        self.leds = np.zeros((self.layout.count, 3), dtype=np.uint8)
        simulate = options.simulate or (options.snapshot is not None and not _has_simulator(config))
        self.outputs: list[tuple[slice, Output]] = build_outputs(
            config, self.layout, log, simulate=simulate, record=options.record
        )
        self.log = log

    def show(self, frame: np.ndarray | None) -> None:
        """Compose, correct and send one frame (None: the last frame again, with the current canvas)."""
        leds = self.color(self.compositor.compose(frame), self.leds)
        self.power(leds)
        for part, out in self.outputs:
            out.show(leds[part])

    def blank_and_close(self) -> None:
        """One all-black frame to every output, then close them all."""
        self.leds[:] = 0
        for part, out in self.outputs:
            try:
                out.show(self.leds[part])
            except (SkyscreenError, OSError) as exc:
                self.log.warning("blanking %s: %s", out.name, exc)
        close_all(self.outputs, self.log)
        self.outputs = []

    def snapshot(self, path: str) -> None:
        for _, out in self.outputs:
            if hasattr(out, "snapshot"):
                out.snapshot(path)
                return

    @property
    def dropped(self) -> int:
        return sum(getattr(out, "frames_dropped", 0) for _, out in self.outputs)

    def stalled(self) -> list[str]:
        """Outputs that report their hardware stuck (an optional `stalled` attribute): the watchdog stops."""
        return [out.name for _, out in self.outputs if getattr(out, "stalled", False)]


def _has_simulator(config: Config) -> bool:
    return any(o.type == "simulator" for o in config.outputs)


class Daemon:
    """One running display: the shared frame reader, the canvas server, the pipeline and the clock."""

    def __init__(self, config: Config, options: RunOptions, log: logging.Logger) -> None:
        self.config = config
        self.options = options
        self.log = log
        self.service = Service.from_environment(log)
        self._stop = False
        self._reload = False
        self._shown: list[float] = []
        self._last_frame = -1e9  # when the shared frame last delivered (monotonic)
        self.reader: FrameReader | None = None
        self.canvas: CanvasLike | None = None
        self.server = None
        self.pipeline: Pipeline | None = None

    # -- start and stop -----------------------------------------------------------------------------

    def start(self) -> None:
        """Open the shared frame, the websocket server and the outputs; raises SkyscreenError."""
        fc = self.config.frame
        self.reader = FrameReader(fc.name, fc.height, fc.width, self.log, fc.group)
        self._start_server()
        self.pipeline = Pipeline(self.config, self.options, self.canvas, self.log)

    def _start_server(self) -> None:
        if not self.config.websocket.enabled:
            self.canvas, self.server = None, None
            return
        from skyscreen_hw.sources.canvas import Canvas
        from skyscreen_hw.sources.websocket import InstructionServer

        sockets = self.service.listen_fds()
        self.canvas = Canvas()
        self.server = InstructionServer(self.config.websocket, self.canvas, self.log, sockets[0] if sockets else None)
        self.server.start()

    def shutdown(self) -> None:
        """The one shutdown path: snapshot, black frame to every output, close everything."""
        self.service.stopping()
        if self.pipeline is not None:
            if self.options.snapshot:
                self.pipeline.snapshot(self.options.snapshot)
            self.pipeline.blank_and_close()
        if self.server is not None:
            self.server.stop()
        if self.reader is not None:
            self.reader.close()

    # -- the frame clock ----------------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM / SIGINT or the end of --duration; returns the exit code."""
        handlers = {
            signal.SIGTERM: signal.signal(signal.SIGTERM, self._on_stop),
            signal.SIGINT: signal.signal(signal.SIGINT, self._on_stop),
            signal.SIGHUP: signal.signal(signal.SIGHUP, self._on_reload),
        }
        try:
            self.start()
            self.service.ready(self.status())
            self.log.info("running: %s", self.describe())
            self._clock()
        finally:
            self.shutdown()
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        self.log.info("stopped")
        return 0

    def _clock(self) -> None:
        if self.reader is None or self.pipeline is None:
            return
        end = time.monotonic() + self.options.duration if self.options.duration else None
        next_take = last_show = 0.0
        while not self._stop:
            period = 1.0 / self.pipeline.config.display.fps
            now = time.monotonic()
            if end is not None and now >= end:
                break
            if now < next_take:
                time.sleep(next_take - now)
            frame = self.reader.poll(period)  # never waits on a writer longer than one period
            now = time.monotonic()
            if frame is not None:
                next_take = now + period  # at most fps frames a second: writers are paced by `done`
                self._last_frame = now
            if frame is not None or self.pipeline.compositor.canvas_changed or now - last_show >= KEEPALIVE:
                self.pipeline.show(frame)
                last_show = now
                self._count_shown(now)
            self.service.tick(self.status, alive=not self.pipeline.stalled())
            if self._reload:
                self._reload = False
                self.reload()

    def _count_shown(self, now: float) -> None:
        self._shown.append(now)
        while self._shown and self._shown[0] < now - 1.0:
            self._shown.pop(0)

    # -- signals and reload -------------------------------------------------------------------------

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop = True

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        self._reload = True

    def reload(self) -> None:
        """Re-read the configuration file; a bad one is rejected with one line and the old one stays.

        systemd hears RELOADING=1 first and READY=1 at the end, whether the new file was taken or not.
        """
        self.service.reloading()
        path = self.options.config_path
        try:
            new = configuration.load(path)
            if (new.frame, new.websocket) != (self.config.frame, self.config.websocket):
                raise SkyscreenError(
                    f"{new.source}: [frame] and [websocket] changes need a restart (systemctl restart skyscreen)"
                )
            layouts.build(new)  # fails here, before the running outputs are touched
        except SkyscreenError as exc:
            self.log.error("reload rejected, keeping the running configuration: %s", exc)
            self.service.ready(f"reload rejected (see the log); {self.status()}")
            return
        old = self.pipeline
        if old is not None:
            old.blank_and_close()
        try:
            self.pipeline = Pipeline(new, self.options, self.canvas, self.log)
            self.config = new
        except SkyscreenError as exc:
            self.log.error("reload failed, restoring the running configuration: %s", exc)
            self.pipeline = Pipeline(self.config, self.options, self.canvas, self.log)
        self.service.ready(self.status())
        self.log.info("reloaded: %s", self.describe())

    # -- reporting ----------------------------------------------------------------------------------

    def describe(self) -> str:
        p = self.pipeline
        if p is None or self.reader is None:
            return "starting"
        outs = ", ".join(out.name for _, out in p.outputs) or "none"
        ws = f"ws://{self.config.websocket.host}:{self.server.port}" if self.server else "websocket off"
        fc = self.config.frame
        return (
            f"display {fc.name!r} {fc.height}x{fc.width} ({self.reader.path}), {p.layout.count} LEDs"
            f" ({p.layout.kind}), outputs: {outs}; {ws}"
        )

    def status(self) -> str:
        """The one-line status for systemd: fps, LEDs, sources, dropped frames."""
        p = self.pipeline
        leds = p.layout.count if p else 0
        writing = time.monotonic() - self._last_frame < 2.0
        sources = [f"shared frame ({'writing' if writing else 'idle'})"]
        if self.server is not None:
            sources.append(f"websocket ({self.server.clients} clients)")
        dropped = (p.dropped if p else 0) + (self.reader.frames_skipped if self.reader else 0)
        text = f"{len(self._shown):.1f} fps, {leds} LEDs, sources: {', '.join(sources)}, {dropped} dropped frames"
        stalled = p.stalled() if p else []
        return f"{text}; stalled: {', '.join(stalled)}" if stalled else text


def run(options: RunOptions, log: logging.Logger) -> int:
    """Load the configuration and run the daemon; SkyscreenError propagates for the CLI to print."""
    config = configuration.load(options.config_path)
    if options.config_path is None and configuration.DEFAULT_PATH.exists():
        options = dataclasses.replace(options, config_path=str(configuration.DEFAULT_PATH))
    return Daemon(config, options, log).run()
