"""The daemon: sources -> mixer -> layout, colour and canvas overlay (one pass) -> power limit -> outputs,
paced by one clock.

Threads and what each owns:

* the **frame clock** (the main thread, which pygame also wants): the mixer's choice, the pipeline and
  every ``Output.show``; reloads happen here, between two frames;
* one thread per **paced source** (the shared frame): waits for a frame the clock did not find ready at its
  tick (a ready one the clock takes itself, ``Source.poll``), and only after the clock took the last one;
* the **network runtime** (one asyncio thread): every socket, the websocket instruction server among
  them, which touches only the Canvas; it opens and closes the UDP inputs' sockets;
* one **receive thread per UDP input**: reads that input's sockets (recvmmsg, parse, deliver);
* output workers (serial, ws281x) that put frames on slow wires.

Signals set flags the clock reads: SIGTERM / SIGINT stop (every output gets one black frame, then exit
0), SIGHUP reloads the configuration in place.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from collections import deque
from dataclasses import dataclass
from types import FrameType
from typing import Any

import numpy as np

from skyscreen_hw import config as configuration
from skyscreen_hw import layouts
from skyscreen_hw.color import ColorCorrection
from skyscreen_hw.compositor import CanvasLike, CanvasOverlay
from skyscreen_hw.config import Config
from skyscreen_hw.errors import ConfigError, SkyscreenError
from skyscreen_hw.layouts import Layout, LedGather
from skyscreen_hw.mixer import FRAME, LEDS, Mixer, Source
from skyscreen_hw.outputs import Output, OutputPlan, close_all, open_output, plan
from skyscreen_hw.outputs.live import LiveView
from skyscreen_hw.power import PowerLimit
from skyscreen_hw.service import Service

KEEPALIVE = 1.0  # seconds: outputs get the current picture at least this often, even when nothing changes
WAKE = 0.1  # seconds: the clock wakes at least this often (watchdog, STATUS, signals), whatever the fps


@dataclass(frozen=True)
class RunOptions:
    """The command line's choices for one daemon run."""

    config_path: str | None = None
    simulate: bool = False
    record: str | None = None
    snapshot: str | None = None
    duration: float | None = None


@dataclass
class Outputs:
    """The open outputs: each configured one with its plan, plus the recording and the live view (both kept
    across reloads, both covering every LED)."""

    planned: list[tuple[OutputPlan, Output]]
    record: Output | None = None
    live: LiveView | None = None

    def all(self, leds: int) -> list[tuple[slice, Output]]:
        parts = [(p.part, out) for p, out in self.planned]
        return [*parts, *((slice(0, leds), out) for out in (self.record, self.live) if out is not None)]


def open_outputs(
    plans: list[OutputPlan], layout: Layout, log: logging.Logger, keep: dict[OutputPlan, Output] | None = None
) -> list[tuple[OutputPlan, Output]]:
    """Open every planned output, taking already open ones from ``keep``; on failure, close what this opened."""
    keep = keep or {}
    opened: list[tuple[OutputPlan, Output]] = []
    try:
        for p in plans:
            opened.append((p, keep.pop(p) if p in keep else open_output(p, layout, log)))
    except BaseException:
        close_all([(p.part, out) for p, out in opened if out not in keep.values()], log)
        raise
    return opened


class Pipeline:
    """One configuration's frame path: layout, colour and canvas overlay (one pass), power limit, outputs (given).

    The winner's pixels go through the layout and the colour table as they are taken (`take`), the canvas
    drawn over in colours corrected the same way; the power limit then measures and scales that: the same
    bytes as correcting after the overlay, since the table works on each byte alone.
    """

    def __init__(self, config: Config, layout: Layout, outputs: Outputs, canvas: CanvasLike | None) -> None:
        self.config = config
        self.layout = layout
        self.outputs = outputs
        self.gather = LedGather(layout)
        self.color = ColorCorrection(config.color)
        self.overlay = CanvasOverlay(layout, canvas, self.color) if canvas is not None else None
        self.power = PowerLimit(config.color, self.color.lookups)
        self.picture = np.zeros((layout.count, 3), dtype=np.uint8)  # the LEDs, corrected, canvas drawn over
        self.total: int | None = None  # the sum of ``picture``'s bytes, where it came free
        self.source: Source | None = None  # whose pixels ``picture`` holds
        self.period = 1.0 / config.display.fps
        self._frame_pass = self.color.frame_pass(self.gather, self.picture, summed=self.power.enabled)
        self.use_outputs()

    def use_outputs(self) -> None:
        """Show to ``outputs`` as they are now (at the start, and after a reload put them back)."""
        self.parts = self.outputs.all(self.layout.count)
        self._shows = [(out.show, self.picture[part]) for part, out in self.parts]  # the views made once
        self._ends = [out.end_frame for _, out in self.parts]
        if self.outputs.live is not None:
            self.outputs.live.follow(self.layout, self.parts)

    @property
    def canvas_changed(self) -> bool:
        return self.overlay is not None and self.overlay.changed

    def take(self, source: Source | None) -> None:
        """The picture: the winning source's pixels through the layout and the colour table, the canvas drawn
        over. With no winner, the last picture's source again (its last delivery: the LEDs keep the last
        picture) under the canvas as it is now. Call with the mixer's lock held."""
        source = source or self.source
        self.source = source
        overlay = self.overlay if self.overlay is not None and self.overlay.update() else None
        self.total = None
        if source is None:
            self.picture[:] = 0
        elif source.address == FRAME:
            self.total = self._frame_pass(source.front, overlay)
            return
        else:
            self.color(source.front, self.picture)
        if overlay is not None:
            overlay.draw_in_place(self.picture)

    def show(self) -> None:
        """Limit and send the picture to every output (call right after `take`: the limit scales it in place)."""
        self.power.limit(self.picture, self.picture, self.total)
        for show, leds in self._shows:
            show(leds)
        for end_frame in self._ends:
            end_frame()

    def blank(self, outputs: list[tuple[slice, Output]], log: logging.Logger) -> None:
        """One all-black frame to ``outputs``."""
        black = np.zeros_like(self.picture)
        for part, out in outputs:
            try:
                out.show(black[part])
            except (SkyscreenError, OSError) as exc:
                log.warning("blanking %s: %s", out.name, exc)
        for _, out in outputs:
            try:
                out.end_frame()
            except (SkyscreenError, OSError) as exc:
                log.warning("blanking %s: %s", out.name, exc)

    def snapshot(self, path: str) -> bool:
        return any(out.snapshot(path) for _, out in self.parts)

    def stalled(self) -> list[str]:
        """Outputs that report their hardware stuck: the watchdog stops."""
        return [out.name for _, out in self.parts if out.stalled]

    def running(self) -> bool:
        """No output reports its hardware stuck (asked before each watchdog ping)."""
        return not self.stalled()


class Daemon:
    """One running display: the sources, the network runtime, the pipeline and the clock."""

    def __init__(self, config: Config, options: RunOptions, log: logging.Logger) -> None:
        self.config = config
        self.options = options
        self.log = log
        self.service = Service.from_environment(log)
        self.mixer = Mixer()
        self.frame_source = None
        self.frame_v2_source = None
        self.canvas = None
        self.runtime = None
        self.server = None
        self.pipeline: Pipeline | None = None
        self._stop = False
        self._reload = False
        self._shown: deque[float] = deque(maxlen=int(configuration.MAX_FPS) + 1)  # when the last frames were shown
        self._frames_shown = 0
        self._started = time.monotonic()

    # -- start and stop -----------------------------------------------------------------------------

    def start(self) -> None:
        """Open the sources, the network runtime and the outputs; raises SkyscreenError."""
        from skyscreen_hw.sources.frame_source import SharedFrameSource
        from skyscreen_hw.sources.frame_v2 import SharedFrameV2Source

        self.frame_source = SharedFrameSource(self.config.frame, self.mixer, self.log)
        self.mixer.add(self.frame_source)
        self.frame_v2_source = SharedFrameV2Source(self.config.frame, self.mixer, self.log)  # beside v1
        self.mixer.add(self.frame_v2_source)
        layout = layouts.build(self.config)
        self._start_runtime()
        self._start_network(layout)
        self._start_inputs(layout)
        plans = plan(self.config, layout, simulate=self.options.simulate)
        if self.options.simulate and not _has_display():
            self.log.info("--simulate: no display here, the simulator runs headless (--snapshot PATH saves it)")
        record = None
        if self.options.record is not None:
            from skyscreen_hw.outputs.record import Recorder

            record = Recorder(self.options.record, self.log)
        try:
            live = self.server.live if self.server is not None else None
            outputs = Outputs(open_outputs(plans, layout, self.log), record, live)
        except BaseException:
            if record is not None:
                record.close()
            raise
        self.pipeline = Pipeline(self.config, layout, outputs, self.canvas)
        self.frame_source.start()
        self.frame_v2_source.start()

    def _start_runtime(self) -> None:
        """The one network runtime, when anything talks to the network: the websocket, inputs, controllers."""
        from skyscreen_hw.config import NetworkOutputConfig
        from skyscreen_hw.outputs.network import use_runtime

        networked = any(isinstance(o, NetworkOutputConfig) for o in self.config.outputs) and not self.options.simulate
        if not (self.config.websocket.enabled or self.config.inputs or networked):
            return
        from skyscreen_hw.net.runtime import NetworkRuntime

        self.runtime = NetworkRuntime(self.log)
        self.runtime.start()
        use_runtime(self.runtime)  # network outputs, also those a reload opens, send through it

    def _start_network(self, layout: Layout) -> None:
        if not self.config.websocket.enabled:
            return
        from skyscreen_hw.sources.canvas import Canvas
        from skyscreen_hw.sources.websocket import InstructionServer

        sockets = self.service.listen_fds()
        self.canvas = Canvas(on_change=self.mixer.poke)
        self.server = InstructionServer(
            self.config.websocket,
            self.canvas,
            self.log,
            self.runtime,
            sock=sockets[0] if sockets else None,
            report=self.report,
            live=LiveView(layout, self.log),
        )
        self.server.start()

    def _start_inputs(self, layout: Layout) -> None:
        """[[inputs]]: each a source of the mixer, listening on the network runtime (closed with the sources)."""
        if not self.config.inputs:
            return
        from skyscreen_hw.sources.network_inputs import open_inputs

        if self.runtime is None:
            return
        for source in open_inputs(self.config, layout.count, self.mixer, self.runtime, self.log):
            self.mixer.add(source)

    def shutdown(self) -> None:
        """The one shutdown path: snapshot, black frame to every output, close everything."""
        self.service.stopping()
        p = self.pipeline
        if p is not None:
            if self.options.snapshot and not p.snapshot(self.options.snapshot):
                self.log.warning("--snapshot %s: no simulator output to take it from", self.options.snapshot)
            p.blank(p.parts, self.log)
            close_all(p.parts, self.log)
            self.pipeline = None
        if self.server is not None:
            self.server.stop()
        for source in list(self.mixer.sources):
            source.close()
            self.mixer.remove(source)
        if self.runtime is not None:
            from skyscreen_hw.outputs.network import use_runtime

            use_runtime(None)
            self.runtime.stop()
        self.service.close()

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
        """Show the mixer's winner at most ``fps`` times a second, on an absolute schedule.

        A tick is due at ``next_tick``; it shows when a source delivered, the canvas changed, or the
        keepalive is due, and the next tick is one period after the scheduled one (not after the work),
        so a writer that keeps up gets exactly ``fps`` frames a second.
        """
        end = time.monotonic() + self.options.duration if self.options.duration else None
        next_tick = time.monotonic()
        last_show = -KEEPALIVE
        mixer = self.mixer
        while not self._stop:
            p = self.pipeline
            if p is None:
                return
            now = time.monotonic()
            if end is not None and now >= end:
                break
            self.service.tick(self.status, p.running)
            if self._reload:
                self._reload = False
                self.reload()
                last_show = -KEEPALIVE  # show the picture through the new configuration at once
                continue
            if now < next_tick:
                time.sleep(min(next_tick - now, WAKE))
                now = time.monotonic()
                if now < next_tick or self._stop or self._reload:
                    continue
            mixer.poll()  # frames already flushed are taken here, in this thread
            with mixer.lock:
                due = mixer.news or p.canvas_changed or now - last_show >= KEEPALIVE
                if due:
                    p.take(mixer.take(now)[0])
            if not due:
                mixer.wait(min(WAKE, last_show + KEEPALIVE - now))
                continue
            p.show()
            last_show = now
            self._frames_shown += 1
            self._shown.append(now)
            next_tick += p.period
            if next_tick < now:  # idle or late by more than a period: start the schedule afresh
                next_tick = now + p.period
        self._show_last_delivery()

    def _show_last_delivery(self) -> None:
        """At the stop: a frame a writer was told we took, or a drawing applied, is shown (and recorded)
        before the black one."""
        p = self.pipeline
        with self.mixer.lock:
            if p is None or not (p.canvas_changed or any(s.fresh for s in self.mixer.sources)):
                return
            source, _ = self.mixer.take(time.monotonic())
            p.take(source)
        p.show()

    # -- signals and reload -------------------------------------------------------------------------

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop = True

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        self._reload = True

    def reload(self) -> None:
        """Re-read the configuration file and swap, between two frames, only what changed.

        Colour, power limit, layout and fps change in place; an output is reopened only when its own
        keys changed. A file that does not load is rejected with one line and the running configuration
        stays. systemd hears RELOADING=1 first and READY=1 at the end, whether the file was taken or not.
        """
        self.service.reloading()
        try:
            new = self._load_for_reload()
            self._swap(new)
        except SkyscreenError as exc:
            self.log.error("reload rejected, keeping the running configuration: %s", exc)
            self.service.ready(f"reload rejected (see the log); {self.status()}")
            return
        self.service.ready(self.status())
        self.log.info("reloaded: %s", self.describe())

    def _load_for_reload(self) -> Config:
        path = self.options.config_path
        if path is None:
            raise ConfigError("no configuration file to reload (started without --config and without the default)")
        new = configuration.load(path, allow_empty=False)
        old = self.config
        restart = [
            f"[{section}] {f.name}"
            for section, keys in (("frame", ("name", "width", "height", "group", "slots")), ("websocket", None))
            for f in dataclasses.fields(getattr(new, section))
            if (keys is None or f.name in keys)
            and getattr(getattr(new, section), f.name) != getattr(getattr(old, section), f.name)
        ]
        if new.inputs != old.inputs:
            restart.append("[[inputs]]")
        elif any(i.address == LEDS for i in new.inputs) and (new.layout, new.frame) != (old.layout, old.frame):
            restart.append('[layout] (it sizes [[inputs]] with address = "leds")')
        if restart:
            raise ConfigError(
                f"{new.source}: {', '.join(restart)} changed: that needs a restart (systemctl restart skyscreen)"
            )
        return new

    def _swap(self, new: Config) -> None:
        """Build the new pipeline, reusing every output whose plan did not change; raises SkyscreenError."""
        old = self.pipeline
        if old is None:
            return
        mapped = (new.layout, new.frame, new.transforms)  # [[transforms]] are part of the layout's frame index
        layout = old.layout if mapped == (self.config.layout, self.config.frame, self.config.transforms) else None
        layout = layout or layouts.build(new)
        plans = plan(new, layout, simulate=self.options.simulate)
        # an output follows its plan; the simulator also draws the layout, so it follows that too
        keep = {p: out for p, out in old.outputs.planned if layout is old.layout or p.config.type != "simulator"}
        reopen = [(p, out) for p, out in old.outputs.planned if p not in plans or p not in keep]
        if reopen:
            old.blank([(p.part, out) for p, out in reopen], self.log)
            close_all([(p.part, out) for p, out in reopen], self.log)
        kept = {p: out for p, out in keep.items() if p in plans}
        try:
            planned = open_outputs(plans, layout, self.log, dict(kept))
        except SkyscreenError:
            # put back what was closed, so the display carries on as it was
            restored = open_outputs([p for p, _ in old.outputs.planned], old.layout, self.log, kept)
            old.outputs.planned = restored
            old.use_outputs()
            raise
        pipeline = Pipeline(new, layout, Outputs(planned, old.outputs.record, old.outputs.live), self.canvas)
        with self.mixer.lock:  # the last picture, through the new layout and colour, also from a silent source
            pipeline.take(old.source)
        self.mixer.current = None  # the winner is taken again at the next tick
        for frame_source in (self.frame_source, self.frame_v2_source):
            frame_source.priority, frame_source.timeout = new.frame.priority, new.frame.timeout
        self.pipeline, self.config = pipeline, new

    # -- reporting ----------------------------------------------------------------------------------

    def describe(self) -> str:
        p = self.pipeline
        if p is None or self.frame_source is None:
            return "starting"
        outs = ", ".join(out.name for _, out in p.parts) or "none"
        ws = f"ws://{self.config.websocket.host}:{self.server.port}" if self.server else "websocket off"
        fc = self.config.frame
        return (
            f"display {fc.name!r} {fc.height}x{fc.width} ({self.frame_source.path}, v2 {self.frame_v2_source.path}),"
            f" {p.layout.count} LEDs"
            f" ({p.layout.kind}), outputs: {outs}; {ws}"
        )

    def report(self) -> dict[str, Any]:
        """Everything STATUS, `/status` and `skyscreen-hw status` tell: plain JSON-able values."""
        from skyscreen_hw import __version__

        p = self.pipeline
        now = time.monotonic()
        parts = p.parts if p else []
        sources = [
            {
                "name": s.name,
                "kind": s.kind,
                "priority": s.priority,
                "live": s.live(now),
                "showing": s is self.mixer.current,
                "frames": s.stats.frames,
                "status": s.describe(now),
                **({"figures": figures} if (figures := s.figures(now)) else {}),
            }
            for s in self.mixer.sources
        ]
        outputs = [
            {
                "name": out.name,
                "kind": out.kind,
                "leds": part.stop - part.start,
                "health": out.health,
                "stalled": out.stalled,
                "frames_sent": out.stats.frames_sent,
                "frames_dropped": out.stats.frames_dropped,
                "frames_failed": out.stats.frames_failed,
            }
            for part, out in parts
        ]
        server = self.server
        return {
            "version": __version__,
            "uptime": round(now - self._started, 3),
            "fps": float(sum(1 for t in list(self._shown) if t >= now - 1.0)),  # a copy: the clock appends
            "fps_configured": self.config.display.fps,
            "leds": p.layout.count if p else 0,
            "layout": p.layout.kind if p else "",
            "frames_shown": self._frames_shown,
            "frames_dropped": sum(o["frames_dropped"] for o in outputs),
            "frames_failed": sum(o["frames_failed"] for o in outputs),
            "torn_frames_skipped": sum(s.skipped for s in (self.frame_source, self.frame_v2_source) if s is not None),
            "power_scale": p.power.last_scale if p is not None and p.power.enabled else 1.0,
            "sources": sources,
            "websocket": (
                {"clients": server.clients, "viewers": server.viewers, "refused": server.rejected}
                if server is not None
                else None
            ),
            "outputs": outputs,
        }

    def status(self) -> str:
        """The one-line status for systemd: fps, LEDs, sources, frames dropped and failed, power, stalls."""
        r = self.report()
        sources = [s["status"] for s in r["sources"]]
        ws = r["websocket"]
        if ws is not None:
            refused = f", {ws['refused']} refused" if ws["refused"] else ""
            sources.append(f"websocket ({ws['clients']} clients{refused})")
        text = (
            f"{r['fps']:.1f} fps, {r['leds']} LEDs, sources: {', '.join(sources)},"
            f" {r['frames_dropped']} dropped frames (wire rate), {r['frames_failed']} failed,"
            f" {r['torn_frames_skipped']} torn frames skipped"
        )
        if r["power_scale"] < 1.0:
            text += f", power limit at {r['power_scale']:.0%}"
        troubled = [f"{o['name']}: {o['health']}" for o in r["outputs"] if o["health"] != "ok" and not o["stalled"]]
        if troubled:
            text += f"; {'; '.join(troubled)}"
        stalled = [o["name"] for o in r["outputs"] if o["stalled"]]
        return f"{text}; stalled: {', '.join(stalled)}" if stalled else text


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or (
        os.environ.get("SDL_VIDEODRIVER", "") not in ("", "dummy", "offscreen")
    )


def run(options: RunOptions, log: logging.Logger) -> int:
    """Load the configuration and run the daemon; SkyscreenError propagates for the CLI to print."""
    config = configuration.load(options.config_path)
    if options.config_path is None and configuration.DEFAULT_PATH.exists():
        options = dataclasses.replace(options, config_path=str(configuration.DEFAULT_PATH))
    return Daemon(config, options, log).run()
