"""LED outputs: the Output interface and the factory that builds them from the configuration.

Each kind lives in its own module, imported only when configured, so the daemon starts on any machine.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from skyscreen_hw.config import Config, OutputConfig
from skyscreen_hw.errors import ConfigError, OutputError, OutputUnavailable
from skyscreen_hw.layouts import Layout
from skyscreen_hw.outputs.base import Output
from skyscreen_hw.outputs.record import Recorder

__all__ = ["Output", "build_outputs", "close_all"]


def _create(cfg: OutputConfig, layout: Layout, first: int, count: int, log: logging.Logger) -> Output:
    module = importlib.import_module(f"skyscreen_hw.outputs.{cfg.type}")
    try:
        return module.create(cfg, layout, first, count, log)
    except OutputUnavailable as exc:
        log.warning("%s; showing LEDs %d-%d in the simulator instead", exc, first, first + count - 1)
        from skyscreen_hw.outputs import simulator

        return simulator.create(cfg, layout, first, count, log)


def build_outputs(
    config: Config,
    layout: Layout,
    log: logging.Logger,
    *,
    simulate: bool = False,
    record: str | Path | None = None,
) -> list[tuple[slice, Output]]:
    """Every output with the slice of LEDs it takes; on any failure the ones already open are closed."""
    n = layout.count
    entries = [OutputConfig(type="simulator")] if simulate else list(config.outputs)
    built: list[tuple[slice, Output]] = []
    try:
        for i, cfg in enumerate(entries, 1):
            first = cfg.first
            count = cfg.count or n - first
            if first >= n or first + count > n:
                raise ConfigError(
                    f"{config.source}: [[outputs]] #{i} first/count: LEDs {first}-{first + count - 1}"
                    f" are beyond the layout's {n} LEDs (0-{n - 1})"
                )
            built.append((slice(first, first + count), _create(cfg, layout, first, count, log)))
        if record is not None:
            built.append((slice(0, n), Recorder(record)))
    except BaseException:
        close_all(built, log)
        raise
    return built


def close_all(outputs: list[tuple[slice, Output]], log: logging.Logger) -> None:
    """Close every output, logging (not raising) what fails, so one bad output can't keep others lit."""
    for _, out in outputs:
        try:
            out.close()
        except (OutputError, OSError) as exc:
            log.warning("closing %s: %s", out.name, exc)
