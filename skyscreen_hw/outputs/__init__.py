"""LED outputs: the Output interface, and the factory that plans and opens them from the configuration.

Each kind lives in its own module ``skyscreen_hw.outputs.<type>`` (the registry of kinds is
``config.OUTPUT_TYPES``), imported only when configured, so the daemon starts on any machine.
``plan`` does every check that needs no hardware, so `check-config` fails exactly where the daemon would.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

from skyscreen_hw.config import Config, OutputConfig, SimulatorOutputConfig
from skyscreen_hw.errors import ConfigError, OutputError, OutputUnavailable
from skyscreen_hw.layouts import Layout
from skyscreen_hw.outputs.base import Output

__all__ = ["Output", "OutputPlan", "close_all", "open_output", "plan"]


@dataclass(frozen=True)
class OutputPlan:
    """One output as the daemon will open it: its configuration and the LEDs it takes."""

    number: int  # 1-based position in [[outputs]], for messages
    config: OutputConfig
    first: int
    count: int

    @property
    def part(self) -> slice:
        return slice(self.first, self.first + self.count)


def plan(config: Config, layout: Layout, *, simulate: bool = False) -> list[OutputPlan]:
    """Every configured output with its LED range, checked against the layout and the kind's limits.

    ``simulate`` replaces the configured outputs with one simulator showing every LED.
    """
    n = layout.count
    entries = [SimulatorOutputConfig()] if simulate else list(config.outputs)
    plans = []
    for number, cfg in enumerate(entries, 1):
        where = f"{config.source}: [[outputs]] #{number}"
        if cfg.first >= n:
            raise ConfigError(f"{where} first: LED {cfg.first} is beyond the layout's {n} LEDs (0-{n - 1})")
        count = cfg.count or n - cfg.first
        if cfg.first + count > n:
            raise ConfigError(
                f"{where} count: LEDs {cfg.first}-{cfg.first + count - 1} run past the layout's {n} LEDs"
                f" (0-{n - 1}); at most count = {n - cfg.first} from first = {cfg.first}"
            )
        problem = cfg.check(count)
        if problem is not None:
            key, text = problem
            if key == "count" and not cfg.count:
                key = "count (0 = all remaining LEDs)"
            raise ConfigError(f"{where} {key}: {text}")
        plans.append(OutputPlan(number, cfg, cfg.first, count))
    return plans


def open_output(p: OutputPlan, layout: Layout, log: logging.Logger) -> Output:
    """Open one planned output; hardware absent on this machine falls back to the simulator with one warning."""
    module = importlib.import_module(f"skyscreen_hw.outputs.{p.config.type}")
    try:
        return module.create(p.config, layout, p.first, p.count, log)
    except OutputUnavailable as exc:
        log.warning("%s; showing LEDs %d-%d in the simulator instead", exc, p.first, p.first + p.count - 1)
        from skyscreen_hw.outputs import simulator

        return simulator.create(SimulatorOutputConfig(), layout, p.first, p.count, log)


def close_all(outputs: list[tuple[slice, Output]], log: logging.Logger) -> None:
    """Close every output, logging (not raising) what fails, so one bad output can't keep others lit."""
    for _, out in outputs:
        try:
            out.close()
        except (OutputError, OSError) as exc:
            log.warning("closing %s: %s", out.name, exc)
