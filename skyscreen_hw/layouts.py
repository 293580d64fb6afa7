"""Layouts: where each LED is, and which frame pixel it shows.

A Layout lists the LEDs in wiring order. For LED ``i`` it knows

* ``positions[i]``: its physical (x, y) position, x to the right, y downwards (metres for the dome),
* ``frame_index[i]``: the flat index ``row * width + column`` of the frame pixel it shows.

``frame_index`` is the truth. For the common wirings (dome, matrix, either serpentine) the layout also
carries a plan of strided views that produces the same order without a gather: see ``LedGather``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skyscreen_hw.config import Config, LayoutConfig
from skyscreen_hw.errors import LayoutError

# A view plan: given the frame as (height, width, 3), pairs (LED rows, frame view) such that the LEDs,
# seen as a (height, width, 3) array, are ``leds[rows] = view`` for every pair.
ViewPlan = Callable[[np.ndarray], list[tuple[slice, np.ndarray]]]


@dataclass(frozen=True)
class Layout:
    """Every LED's physical position and frame pixel, in wiring order."""

    kind: str
    positions: np.ndarray  # (n, 2) float64, x right, y down
    frame_index: np.ndarray  # (n,) int64 into the flattened (height * width) frame
    frame_shape: tuple[int, int]  # (height, width)
    strands: int = 1  # vanes or rows: for drawing the wiring path
    view_plan: ViewPlan | None = field(default=None, compare=False, repr=False)
    # (n, 2): from each LED to the edge of the patch of the picture it stands for, across the direction
    # in which LEDs are sparse (between the dome's vanes); None where LEDs are dense enough
    footprint: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def count(self) -> int:
        return int(self.frame_index.shape[0])

    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the LED positions."""
        lo = self.positions.min(axis=0)
        hi = self.positions.max(axis=0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def normalized_positions(self) -> np.ndarray:
        """Positions scaled into the unit square [0, 1]^2 of the bounding box, aspect kept."""
        xmin, ymin, xmax, ymax = self.bounds()
        span = max(xmax - xmin, ymax - ymin) or 1.0
        p = (self.positions - (xmin, ymin)) / span
        # centre the shorter axis
        p += (1.0 - p.max(axis=0)) / 2.0
        return p


def build(config: Config) -> Layout:
    """The layout named by ``[layout]``, for the frame of ``[frame]``."""
    lc = config.layout
    shape = (config.frame.height, config.frame.width)
    if lc.type == "dome":
        return dome(lc, shape)
    if lc.type == "matrix":
        return matrix(lc, shape)
    try:
        return points(Path(lc.file), shape)
    except LayoutError as exc:
        raise LayoutError(f"{config.source}: {exc}") from None


def _scaled(n: int, full: int) -> np.ndarray:
    """Nearest frame row/column for each of n LEDs spread over ``full`` frame rows/columns."""
    return (np.arange(n) * full) // n


def _grid_plan(
    shape: tuple[int, int], rows: int, cols: int, flip_rows: bool, flip_cols: bool, serpentine: bool
) -> ViewPlan | None:
    """A view plan for a rows x cols grid wired along rows, if it covers the frame one to one."""
    if (rows, cols) != shape:
        return None
    rs = slice(None, None, -1) if flip_rows else slice(None)
    cs = slice(None, None, -1) if flip_cols else slice(None)
    rcs = slice(None) if flip_cols else slice(None, None, -1)

    def plan(frame: np.ndarray) -> list[tuple[slice, np.ndarray]]:
        f = frame[rs]
        if not serpentine:
            return [(slice(None), f[:, cs])]
        return [(slice(0, None, 2), f[0::2, cs]), (slice(1, None, 2), f[1::2, rcs])]

    return plan


def _grid_index(rows: int, cols: int, serpentine: bool) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of each LED of a grid wired row after row, odd rows reversed if serpentine."""
    i = np.arange(rows * cols)
    r, c = i // cols, i % cols
    if serpentine:
        c = np.where(r % 2 == 1, cols - 1 - c, c)
    return r, c


def dome(lc: LayoutConfig, shape: tuple[int, int]) -> Layout:
    """Radial vanes: vane v at angle 360 * v / vanes clockwise from the top, LED p from the inside out."""
    height, width = shape
    vanes = lc.vanes or height
    per_vane = lc.leds_per_vane or width
    v, p = _grid_index(vanes, per_vane, lc.serpentine)
    frame_index = _scaled(vanes, height)[v] * width + _scaled(per_vane, width)[p]
    angle = 2 * math.pi * v / vanes
    radius = lc.radius * (lc.inner_radius + (1 - lc.inner_radius) * (p + 0.5) / per_vane)
    positions = np.column_stack([radius * np.sin(angle), -radius * np.cos(angle)])
    half_gap = math.pi * radius / vanes  # half the distance to the next vane, along the circle
    footprint = np.column_stack([np.cos(angle), np.sin(angle)]) * half_gap[:, None]
    plan = _grid_plan(shape, vanes, per_vane, False, False, lc.serpentine)
    return Layout("dome", positions, frame_index.astype(np.int64), shape, vanes, plan, footprint)


def matrix(lc: LayoutConfig, shape: tuple[int, int]) -> Layout:
    """A grid wired row by row from the origin corner; odd rows reversed when serpentine."""
    height, width = shape
    rows = lc.height or height
    cols = lc.width or width
    r, c = _grid_index(rows, cols, lc.serpentine)
    flip_rows = lc.origin.startswith("bottom")
    flip_cols = lc.origin.endswith("right")
    fr = rows - 1 - r if flip_rows else r
    fc = cols - 1 - c if flip_cols else c
    frame_index = _scaled(rows, height)[fr] * width + _scaled(cols, width)[fc]
    positions = np.column_stack([fc, fr]).astype(np.float64)
    plan = _grid_plan(shape, rows, cols, flip_rows, flip_cols, lc.serpentine)
    return Layout("matrix", positions, frame_index.astype(np.int64), shape, rows, plan)


def points(path: Path, shape: tuple[int, int]) -> Layout:
    """An OpenPixelControl layout: ``[{"point": [x, y, z]}, ...]`` in wiring order.

    The two axes with the largest spread make the picture; the vertical one points up (OPC's
    convention), so higher LEDs show higher frame rows. Each LED shows the frame pixel under it.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LayoutError(f"[layout] file: {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LayoutError(f"[layout] file: {path}: cannot read OpenPixelControl JSON: {exc}") from None
    if not isinstance(data, list) or not data:
        raise LayoutError(f'[layout] file: {path}: must be a non-empty JSON list of {{"point": [x, y, z]}}')
    try:
        xyz = np.array([entry["point"] for entry in data], dtype=np.float64)
    except (TypeError, KeyError, ValueError):
        raise LayoutError(f'[layout] file: {path}: every entry must be {{"point": [x, y, z]}}') from None
    if xyz.ndim != 2 or xyz.shape[1] not in (2, 3) or not np.isfinite(xyz).all():
        raise LayoutError(f"[layout] file: {path}: every point must be 2 or 3 finite numbers")
    if xyz.shape[1] == 2:
        xyz = np.column_stack([xyz, np.zeros(len(xyz))])
    spread = xyz.max(axis=0) - xyz.min(axis=0)
    h_axis, v_axis = sorted(np.argsort(spread)[1:])
    positions = np.column_stack([xyz[:, h_axis], -xyz[:, v_axis]])
    height, width = shape
    lo = positions.min(axis=0)
    span = np.where(positions.max(axis=0) - lo > 0, positions.max(axis=0) - lo, 1.0)
    unit = (positions - lo) / span
    col = np.clip(np.round(unit[:, 0] * (width - 1)), 0, width - 1).astype(np.int64)
    row = np.clip(np.round(unit[:, 1] * (height - 1)), 0, height - 1).astype(np.int64)
    return Layout("points", positions, row * width + col, shape, 1, None)


class LedGather:
    """Frame (height, width, 3) -> LEDs (n, 3) in wiring order.

    With a view plan the LEDs are copied through strided views (no index array, no per-LED work);
    otherwise gathered through ``frame_index``. The plan is checked against ``frame_index`` once.
    """

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.plan = layout.view_plan
        if self.plan is not None:
            h, w = layout.frame_shape
            probe = np.arange(h * w, dtype=np.int64).reshape(h, w, 1)
            order = np.empty_like(probe)
            for rows, view in self.plan(probe):
                order[rows] = view
            if not np.array_equal(order.reshape(-1), layout.frame_index):
                raise LayoutError(f"{layout.kind} layout: view plan disagrees with frame_index")

    def __call__(self, frame: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write the frame pixel of each LED into ``out`` (n, 3) uint8 and return it."""
        if self.plan is None:
            np.take(frame.reshape(-1, 3), self.layout.frame_index, axis=0, out=out, mode="clip")
            return out
        grid = out.reshape(frame.shape)
        for rows, view in self.plan(frame):
            if view.strides[1] < 0:
                # numpy copies a reversed axis fastest one channel at a time (3x faster than at once)
                for ch in range(view.shape[2]):
                    np.copyto(grid[rows][..., ch], view[..., ch])
            else:
                np.copyto(grid[rows], view)
        return out
