"""`skyscreen-hw layout --png`: a picture of the layout with its wiring path, for installers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skyscreen_hw.errors import OutputError
from skyscreen_hw.layouts import Layout
from skyscreen_hw.outputs.simulator import pixel_positions

PATH_COLOUR = (70, 70, 110)
FRAME_BLUE = 160  # LEDs are drawn red by frame column and green by frame row, over this much blue
ORIGIN_COLOR = (0, 255, 255)
FIRST_COLOUR = (0, 255, 0)
LAST_COLOUR = (255, 40, 40)
STRAND_COLOUR = (255, 200, 0)


def frame_colors(layout: Layout) -> np.ndarray:
    """(n, 3) uint8: each LED colored by the frame pixel it shows, red growing with the frame column and
    green with the frame row (blue FRAME_BLUE): rotations, mirrors, crops and flat sampling show."""
    h, w = layout.frame_shape
    rows, cols = np.divmod(layout.frame_index, w)
    red = np.round(cols * 255 / max(w - 1, 1))
    green = np.round(rows * 255 / max(h - 1, 1))
    return np.column_stack([red, green, np.full(layout.count, FRAME_BLUE)]).astype(np.uint8)


@dataclass(frozen=True)
class Controller:
    """A network output's LEDs in the picture: its part of the wiring path in a colour of its own,
    labelled at its first LED."""

    first: int
    count: int
    label: str  # e.g. "#3 10.0.0.23 u103-153"


def controllers(plans: Sequence[Any]) -> list[Controller]:
    """The network outputs among ``plans`` (output plans), labelled with number, host and universes."""
    from skyscreen_hw.config import NetworkOutputConfig
    from skyscreen_hw.outputs.network import summarize

    found = []
    for p in plans:
        if isinstance(p.config, NetworkOutputConfig):
            summary = summarize(p.config, p.first, p.count, 60.0)
            where = f"u{summary.universes[0]}-{summary.universes[1]}" if summary and summary.universes else "ddp"
            found.append(Controller(p.first, p.count, f"#{p.number} {p.config.host} {where}"))
    return found


def draw(layout: Layout, path: str | Path, size: int = 1024, controllers: Sequence[Controller] = ()) -> None:
    """Save a PNG: the wiring path as a line, every LED as a dot colored by the frame pixel it shows
    (``frame_colors``, so the effect of [[transforms]] shows), a cyan ring around the LED showing the
    first frame pixel any LED shows, LED 0 green, the last LED red (with a ring), and the first LED of
    every strand (vane or row) yellow. With ``controllers`` (network outputs), each one's part of the
    path is drawn in a colour of its own, labelled at its first LED with its number, host and universes."""
    try:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame
    except ImportError:
        raise OutputError("layout --png: pygame is not installed (pip install 'skyscreen-hw[sim]')") from None
    pixels = pixel_positions(layout, size)
    surface = pygame.Surface((size, size))
    surface.fill((0, 0, 0))
    if layout.count > 1:
        pygame.draw.lines(surface, PATH_COLOUR, False, pixels.tolist(), 1)
    for i, c in enumerate(controllers):
        if c.count > 1:
            pygame.draw.lines(
                surface, _hue(i, len(controllers)), False, pixels[c.first : c.first + c.count].tolist(), 2
            )
    picture = pygame.surfarray.pixels3d(surface)
    picture[pixels[:, 0], pixels[:, 1]] = frame_colors(layout)
    del picture  # unlock the surface
    pygame.draw.circle(surface, ORIGIN_COLOR, pixels[int(np.argmin(layout.frame_index))].tolist(), 7, 2)
    per_strand = max(layout.count // max(layout.strands, 1), 1)
    for x, y in pixels[::per_strand].tolist():
        pygame.draw.circle(surface, STRAND_COLOUR, (x, y), 3)
    # the last LED first, as a dot with a wide ring, and LED 0 over it: where the two are neighbours (a
    # serpentine dome ends next to where it starts) LED 0 stays visible and the ring still shows the end
    pygame.draw.circle(surface, LAST_COLOUR, pixels[-1].tolist(), 5)
    pygame.draw.circle(surface, LAST_COLOUR, pixels[-1].tolist(), 10, 2)
    pygame.draw.circle(surface, FIRST_COLOUR, pixels[0].tolist(), 5)
    if controllers:
        pygame.font.init()
        font = pygame.font.Font(None, max(14, size // 60))
        for i, c in enumerate(controllers):
            colour = _hue(i, len(controllers))
            pygame.draw.circle(surface, colour, pixels[c.first].tolist(), 4)  # where its LEDs start
            # the label in the middle of its LEDs, on a dark box so the dots do not hide it
            x, y = pixels[c.first : c.first + c.count].mean(axis=0).astype(int).tolist()
            text = font.render(c.label, True, colour)
            box = text.get_rect(center=(x, y))
            surface.fill((0, 0, 0), box.inflate(4, 2))
            surface.blit(text, box)
    pygame.image.save(surface, str(path))


def _hue(i: int, n: int) -> tuple[int, int, int]:
    """A bright colour of its own for controller ``i`` of ``n``."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(i / max(n, 1), 0.75, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def describe(layout: Layout) -> str:
    """A few lines of text about the layout."""
    xmin, ymin, xmax, ymax = layout.bounds()
    step = np.linalg.norm(np.diff(layout.positions, axis=0), axis=1) if layout.count > 1 else np.zeros(1)
    return (
        f"{layout.kind}: {layout.count} LEDs in {layout.strands} strand(s), frame {layout.frame_shape[0]}"
        f"x{layout.frame_shape[1]}\n"
        f"bounds x {xmin:.3f}..{xmax:.3f}, y {ymin:.3f}..{ymax:.3f}; median LED spacing {np.median(step):.4f}\n"
        f"LED 0 at ({layout.positions[0][0]:.3f}, {layout.positions[0][1]:.3f}) shows frame pixel"
        f" {divmod(int(layout.frame_index[0]), layout.frame_shape[1])}"
        + "".join(f"\ntransform: {t}" for t in layout.transforms)
        + f"\n{'strided views' if layout.view_plan is not None else 'index gather'} per frame"
    )
