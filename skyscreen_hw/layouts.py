"""Layouts: where each LED is, and which frame pixel it shows.

A Layout lists the LEDs in wiring order. For LED ``i`` it knows

* ``positions[i]``: its physical (x, y) position, x to the right, y downwards (metres for the dome),
* ``frame_index[i]``: the flat index ``row * width + column`` of the frame pixel it shows.

``frame_index`` is the truth; it already includes the ``[[transforms]]`` (skyscreen_hw/transforms.py),
composed once here. Where the LEDs form a grid (dome, matrix) and the composed mapping takes whole rows or
columns of the frame in steps of one (any wiring, a roll of the vanes, a mirror, a crop, a quarter turn),
the layout also carries a plan of strided views that produces the same order without a gather: see
``strided_plan`` and ``LedGather``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skyscreen_hw import transforms
from skyscreen_hw.config import Config, LayoutConfig
from skyscreen_hw.errors import LayoutError

# A view plan: given the frame as (height, width, 3), pairs (LED rows, frame view) such that the LEDs,
# seen as a (grid rows, grid columns, 3) array, are ``leds[rows] = view`` for every pair.
ViewPlan = Callable[[np.ndarray], list[tuple[slice, np.ndarray]]]

MAX_VIEWS = 8  # a plan of more strided views than this is no faster than the gather
LINE = 1e-3  # a point map whose second spread is below this fraction of its first is a straight line
SOLID = 0.05  # ... and one whose third spread is above this fraction of the first is not flat
ROUND = 0.05  # points around an axis at radii within this fraction of their mean lie on a cylinder
PLANES = {"xy": (0, 1), "xz": (0, 2), "yz": (1, 2)}  # projection -> (across, up) axes of the points


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
    grid: tuple[int, int] | None = None  # (rows, columns) when the LEDs, in wiring order, form a grid
    transforms: tuple[str, ...] = ()  # what [[transforms]] did, in words, for `skyscreen-hw layout`

    @property
    def count(self) -> int:
        return int(self.frame_index.shape[0])

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """The LED positions' bounding box: (its low corner, its size), each an (x, y) array."""
        return transforms.bounding_box(self.positions)

    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the LED positions."""
        lo, span = self.box()
        return float(lo[0]), float(lo[1]), float(lo[0] + span[0]), float(lo[1] + span[1])

    def normalized_positions(self) -> np.ndarray:
        """Positions scaled into the unit square [0, 1]^2 of the bounding box, aspect kept."""
        lo, size = self.box()
        span = float(size.max()) or 1.0
        p = (self.positions - lo) / span
        # centre the shorter axis
        p += (1.0 - p.max(axis=0)) / 2.0
        return p


def build(config: Config) -> Layout:
    """The layout named by ``[layout]``, for the frame of ``[frame]``, through the ``[[transforms]]``.

    Raises LayoutError naming the file and the key (a transform that cannot apply, a bad points file), so
    `skyscreen-hw check-config` fails exactly where the daemon would.
    """
    lc = config.layout
    frame = (config.frame.height, config.frame.width)
    try:
        chain = transforms.compose(config.transforms, frame, polar=lc.type == "dome", vanes=lc.vanes)
        return compose(_base(lc, chain.shape), chain)
    except LayoutError as exc:
        raise LayoutError(f"{config.source}: {exc}") from None


def _base(lc: LayoutConfig, shape: tuple[int, int]) -> Layout:
    """The layout over a picture of ``shape``, before any transform."""
    if lc.type == "dome":
        return dome(lc, shape)
    if lc.type == "matrix":
        return matrix(lc, shape)
    return points(Path(lc.file), shape, lc.projection)


def compose(base: Layout, chain: transforms.Chain) -> Layout:
    """``base`` (a layout over the chain's last picture) mapped back through the transforms to the frame."""
    if chain.flat:
        rows, cols = transforms.flat_sample(base.positions, chain.shape)
    else:
        rows, cols = np.divmod(base.frame_index, chain.shape[1])
    rows, cols = chain.pull(rows, cols)
    index = rows * chain.frame[1] + cols
    plan = strided_plan(index, base.grid, chain.frame) if base.grid is not None else None
    return dataclasses.replace(
        base, frame_index=index, frame_shape=chain.frame, view_plan=plan, transforms=chain.describe()
    )


def _scaled(n: int, full: int) -> np.ndarray:
    """Nearest frame row/column for each of n LEDs spread over ``full`` frame rows/columns."""
    return (np.arange(n) * full) // n


def _grid_index(rows: int, cols: int, serpentine: bool) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of each LED of a grid wired row after row, odd rows reversed if serpentine."""
    i = np.arange(rows * cols)
    r, c = i // cols, i % cols
    if serpentine:
        c = np.where(r % 2 == 1, cols - 1 - c, c)
    return r, c


def dome(lc: LayoutConfig, shape: tuple[int, int]) -> Layout:
    """Radial vanes, LED p of a vane from the inside out.

    ``orientation = "default"``: vane v at 360 * v / vanes degrees clockwise from the top, frame column 0
    at the centre. ``"original"``: as the original Skyscreen's renderers drew it, vane v at
    ``2 pi v / vanes`` from the x axis (3 o'clock) with y down (clockwise), frame column 0 at the rim, at
    radius ``annulus + (width - column) / width * area`` (annulus = ``inner_radius * radius``).
    """
    height, width = shape
    vanes = lc.vanes or height
    per_vane = lc.leds_per_vane or width
    v, p = _grid_index(vanes, per_vane, lc.serpentine)
    angle = 2 * math.pi * v / vanes
    if lc.orientation == "original":
        column = _scaled(per_vane, width)[per_vane - 1 - p]
        radius = lc.radius * (lc.inner_radius + (1 - lc.inner_radius) * (p + 1) / per_vane)
        positions = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    else:
        column = _scaled(per_vane, width)[p]
        radius = lc.radius * (lc.inner_radius + (1 - lc.inner_radius) * (p + 0.5) / per_vane)
        positions = np.column_stack([radius * np.sin(angle), -radius * np.cos(angle)])
    frame_index = _scaled(vanes, height)[v] * width + column
    half_gap = math.pi * radius / vanes  # half the distance to the next vane, along the circle
    outward = positions / radius[:, None]
    footprint = np.column_stack([-outward[:, 1], outward[:, 0]]) * half_gap[:, None]  # along the circle
    return Layout("dome", positions, frame_index.astype(np.int64), shape, vanes, None, footprint, (vanes, per_vane))


def matrix(lc: LayoutConfig, shape: tuple[int, int]) -> Layout:
    """A grid wired row by row from the origin corner; odd rows reversed when serpentine."""
    height, width = shape
    rows = lc.height or height
    cols = lc.width or width
    r, c = _grid_index(rows, cols, lc.serpentine)
    fr = rows - 1 - r if lc.origin.startswith("bottom") else r
    fc = cols - 1 - c if lc.origin.endswith("right") else c
    frame_index = _scaled(rows, height)[fr] * width + _scaled(cols, width)[fc]
    positions = np.column_stack([fc, fr]).astype(np.float64)
    return Layout("matrix", positions, frame_index.astype(np.int64), shape, rows, None, None, (rows, cols))


# -- point maps -------------------------------------------------------------------------------------------


def _read_points(path: Path) -> np.ndarray:
    """(n, 3) float64 from an OpenPixelControl layout ``[{"point": [x, y, z]}, ...]`` (z = 0 for 2-D)."""
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
    return xyz


def _cylinder_axis(xyz: np.ndarray) -> tuple[int, float]:
    """(axis, spread of the radii / their mean) of the coordinate axis the points lie most evenly around."""
    best = (2, math.inf)
    for axis in range(3):
        u, v = (xyz[:, a] for a in range(3) if a != axis)
        r = np.hypot(u - (u.max() + u.min()) / 2, v - (v.max() + v.min()) / 2)
        mean = float(r.mean())
        roundness = float(r.std()) / mean if mean > 0 else math.inf
        if roundness < best[1]:
            best = (axis, roundness)
    return best


def detect_projection(xyz: np.ndarray) -> str:
    """What ``projection = "auto"`` picks: "line" for a straight strip, "cylinder" for points around an
    axis at one radius (not flat), else "plane" (the two axes the points spread most along)."""
    if len(xyz) < 2:
        return "plane"
    spread = np.linalg.svd(xyz - xyz.mean(axis=0), compute_uv=False)
    if spread[0] == 0:
        return "plane"
    if spread[1] <= LINE * spread[0]:
        return "line"
    if spread[2] > SOLID * spread[0] and _cylinder_axis(xyz)[1] < ROUND:
        return "cylinder"
    return "plane"


def _stretched(positions: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of each position, the bounding box stretched over the whole picture."""
    height, width = shape
    lo = positions.min(axis=0)
    extent = positions.max(axis=0) - lo
    unit = (positions - lo) / np.where(extent > 0, extent, 1.0)
    col = np.clip(np.round(unit[:, 0] * (width - 1)), 0, width - 1).astype(np.int64)
    row = np.clip(np.round(unit[:, 1] * (height - 1)), 0, height - 1).astype(np.int64)
    return row, col


def _cylinder(xyz: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unrolled around its axis: the angle runs along the columns (one turn = the width), the axis up the
    rows (the highest ring in row 0). Positions are the unrolled surface (arc length, -height)."""
    height, width = shape
    axis, _ = _cylinder_axis(xyz)
    u, v = (xyz[:, a] for a in range(3) if a != axis)
    u, v = u - (u.max() + u.min()) / 2, v - (v.max() + v.min()) / 2
    turn = np.mod(np.arctan2(u, v), 2 * math.pi) / (2 * math.pi)  # OpenPixelControl: x = sin, y = cos
    along = xyz[:, axis]
    col = np.mod(np.round(turn * width), width).astype(np.int64)
    extent = along.max() - along.min()
    up = (along.max() - along) / extent if extent > 0 else np.zeros(len(xyz))
    row = np.clip(np.round(up * (height - 1)), 0, height - 1).astype(np.int64)
    radius = float(np.hypot(u, v).mean())
    return np.column_stack([turn * 2 * math.pi * radius, -along]), row, col


def _line(xyz: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spread along the frame's diagonal by the distance along the strip from its first LED: a staircase of
    ``height + width - 1`` pixels from the top-left to the bottom-right corner, each step one pixel down or
    right (on a one-row frame, the row). A strip of more LEDs than that snakes along as many frame rows as
    it needs (spread over the height). Positions are along a horizontal line."""
    height, width = shape
    centred = xyz - xyz.mean(axis=0)
    direction = np.linalg.svd(centred, full_matrices=False)[2][0]
    along = centred @ direction
    if along[-1] < along[0]:
        along = -along
    extent = along.max() - along.min()
    t = (along - along.min()) / extent if extent > 0 else np.zeros(len(xyz))
    stairs = height + width - 1
    if len(xyz) <= stairs:
        step = np.round(t * (stairs - 1)).astype(np.int64)
        row = np.round(step * (height - 1) / max(stairs - 1, 1)).astype(np.int64)
        col = step - row
    else:
        bands = min(height, -(-len(xyz) // width))
        step = np.round(t * (bands * width - 1)).astype(np.int64)
        band, offset = np.divmod(step, width)
        col = np.where(band % 2 == 1, width - 1 - offset, offset)
        row = np.round(band * (height - 1) / max(bands - 1, 1)).astype(np.int64)
    return np.column_stack([along - along.min(), np.zeros(len(xyz))]), row, col


def points(path: Path, shape: tuple[int, int], projection: str = "auto") -> Layout:
    """An OpenPixelControl layout: ``[{"point": [x, y, z]}, ...]`` in wiring order.

    ``projection`` makes the 3-D points a flat picture: "xy", "xz", "yz" look at that plane (the first axis
    across, the second up: OpenPixelControl's z is up, so higher LEDs show higher frame rows), the
    bounding box stretched over the frame; "cylinder" unrolls points around an axis; "line" spreads a
    straight strip along the frame's diagonal; "auto" picks a line, a cylinder, or the plane of the two axes the
    points spread most along.
    """
    xyz = _read_points(path)
    kind = detect_projection(xyz) if projection == "auto" else projection
    if kind == "cylinder":
        positions, row, col = _cylinder(xyz, shape)
    elif kind == "line":
        positions, row, col = _line(xyz, shape)
    else:
        if kind in PLANES:
            h_axis, v_axis = PLANES[kind]
        else:
            spread = xyz.max(axis=0) - xyz.min(axis=0)
            h_axis, v_axis = sorted(np.argsort(spread, kind="stable")[1:])
        positions = np.column_stack([xyz[:, h_axis], -xyz[:, v_axis]])
        row, col = _stretched(positions, shape)
    return Layout("points", positions, row * shape[1] + col, shape, 1, None)


# -- strided views ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    """LED grid rows ``leds`` take frame lines: along a frame row (``across``) or down a frame column.

    LED row ``k`` of the block takes frame line ``line + k * line_step``; along it, LED column ``j`` takes
    frame position ``start + j * step`` (a column of the frame row, or a row of the frame column).
    """

    leds: slice
    across: bool
    line: int
    line_step: int
    count: int
    start: int
    step: int
    length: int

    def view(self, frame: np.ndarray) -> np.ndarray:
        lines = _span(self.line, self.count, self.line_step)
        along = _span(self.start, self.length, self.step)
        if self.across:
            return frame[lines, along]
        return frame[along, lines].transpose(1, 0, 2)


def _span(first: int, count: int, step: int) -> slice:
    """The slice of ``count`` items from ``first`` in steps of ``step`` (which may be negative)."""
    stop = first + step * (count - 1) + (1 if step > 0 else -1)
    return slice(first, stop if stop >= 0 else None, step)


def _runs(rows: np.ndarray, keys: np.ndarray, lines: np.ndarray, limit: int) -> list[tuple[int, int, int]] | None:
    """Split LED rows ``rows`` (in order) into runs sharing a key whose frame line moves by a constant step:
    [(first position in ``rows``, length, line step)], or None if more than ``limit`` runs are needed."""
    runs: list[tuple[int, int, int]] = []
    i, n = 0, len(rows)
    while i < n:
        j, step = i + 1, 0
        if j < n and keys[j] == keys[i] and lines[j] != lines[i]:
            step = int(lines[j] - lines[i])
            same = (keys[i:] == keys[i]) & (np.diff(lines[i:], prepend=lines[i] - step) == step)
            j = i + int(np.argmin(same)) if not same.all() else n
        runs.append((i, j - i, step or 1))
        if len(runs) > limit:
            return None
        i = j
    return runs


def _blocks(
    stride: int,
    keys: np.ndarray,
    line: np.ndarray,
    across: np.ndarray,
    start: np.ndarray,
    step: np.ndarray,
    length: int,
) -> list[_Block] | None:
    """The views for LED rows taken ``stride`` apart (1: in order; 2: even and odd rows apart), or None."""
    blocks: list[_Block] = []
    for first in range(stride):
        led_rows = np.arange(first, len(keys), stride)
        runs = _runs(led_rows, keys[led_rows], line[led_rows], MAX_VIEWS - len(blocks))
        if runs is None:
            return None
        for pos, count, line_step in runs:
            v = int(led_rows[pos])
            leds = slice(v, v + stride * (count - 1) + 1, stride)
            blocks.append(
                _Block(leds, bool(across[v]), int(line[v]), line_step, count, int(start[v]), int(step[v]), length)
            )
    return blocks


def strided_plan(index: np.ndarray, grid: tuple[int, int], frame: tuple[int, int]) -> ViewPlan | None:
    """A view plan producing ``index`` for LEDs forming a ``grid`` (rows, columns), or None.

    Each LED grid row must take one frame row (or column) in steps of +-1; rows that do so with a common
    start and a constant step between frame lines become one strided view. Tried for the rows in order
    (a roll is two views) and then for even and odd LED rows apart (serpentine wiring); at most MAX_VIEWS.
    """
    rows_n, cols_n = grid
    w = frame[1]
    if rows_n * cols_n != index.size or index.size == 0:
        return None
    fr, fc = np.divmod(index.reshape(rows_n, cols_n), w)
    if cols_n == 1:
        across = np.ones(rows_n, bool)
        step = np.ones(rows_n, np.int64)
    else:
        dr, dc = np.diff(fr, axis=1), np.diff(fc, axis=1)
        across = (dr == 0).all(axis=1) & (dc == dc[:, :1]).all(axis=1) & (np.abs(dc[:, 0]) == 1)
        down = (dc == 0).all(axis=1) & (dr == dr[:, :1]).all(axis=1) & (np.abs(dr[:, 0]) == 1)
        if not (across | down).all():
            return None
        step = np.where(across, dc[:, 0], dr[:, 0])
    line = np.where(across, fr[:, 0], fc[:, 0])
    start = np.where(across, fc[:, 0], fr[:, 0])
    keys = (start * 4 + (step + 1)) * 2 + across  # rows of one view share direction, start and step
    found = [b for stride in (1, 2) if (b := _blocks(stride, keys, line, across, start, step, cols_n)) is not None]
    if not found:
        return None
    blocks = min(found, key=len)

    def plan(frame_pixels: np.ndarray) -> list[tuple[slice, np.ndarray]]:
        return [(b.leds, b.view(frame_pixels)) for b in blocks]

    return plan


class LedGather:
    """Frame (height, width, 3) -> LEDs (n, 3) in wiring order.

    With a view plan the LEDs are copied through strided views (no index array, no per-LED work);
    otherwise gathered through ``frame_index``. The plan is checked against ``frame_index`` once.
    """

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.plan = layout.view_plan if layout.grid is not None else None
        self.grid = layout.grid
        if self.plan is not None and self.grid is not None:
            h, w = layout.frame_shape
            probe = np.arange(h * w, dtype=np.int64).reshape(h, w, 1)
            order = np.full((*self.grid, 1), -1, dtype=np.int64)
            for rows, view in self.plan(probe):
                order[rows] = view
            if not np.array_equal(order.reshape(-1), layout.frame_index):
                raise LayoutError(f"{layout.kind} layout: view plan disagrees with frame_index")

    @functools.cached_property
    def runs(self) -> np.ndarray:
        """``frame_index`` as runs of LEDs whose pixels are evenly spaced, for the compiled gather
        (`color.Lookups`): (k, 3) int32 rows of first pixel, step, LEDs. The dome wired serpentine is 719
        rows, not a 103,680-entry index read every frame."""
        return index_runs(self.layout.frame_index)

    def __call__(self, frame: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write the frame pixel of each LED into ``out`` (n, 3) uint8 and return it."""
        if self.plan is None or self.grid is None:
            np.take(frame.reshape(-1, 3), self.layout.frame_index, axis=0, out=out, mode="clip")
            return out
        grid = out.reshape(*self.grid, frame.shape[2])
        for rows, view in self.plan(frame):
            if view.strides[1] < 0:
                # numpy copies a reversed axis fastest one channel at a time (3x faster than at once)
                for ch in range(view.shape[2]):
                    np.copyto(grid[rows][..., ch], view[..., ch])
            else:
                np.copyto(grid[rows], view)
        return out


def index_runs(index: np.ndarray) -> np.ndarray:
    """(k, 3) int32 rows (first, step, count) that give ``index`` back, run after run: a new run starts
    wherever the step between neighbours changes (a run may then hold a single entry)."""
    index = np.asarray(index, dtype=np.int64)
    if index.size == 0:
        return np.zeros((0, 3), np.int32)
    steps = np.diff(index)
    starts = np.flatnonzero(np.diff(steps) != 0) + 2  # entry i + 2 breaks with the step before it
    starts = np.concatenate(([0], starts[starts < index.size]))
    # a run is [start, next start); pairs of one-entry runs are fine: the step of a single entry is 0
    counts = np.diff(np.append(starts, index.size))
    firsts = index[starts]
    run_steps = np.where(counts > 1, np.append(steps, 0)[starts], 0)
    return np.column_stack([firsts, run_steps, counts]).astype(np.int32)
