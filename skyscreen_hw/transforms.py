"""[[transforms]]: rotate, mirror, crop and flat, composed once into a layout's frame index.

The transforms are applied in order to the frame a writer wrote, each giving a new picture, and the layout
maps the last picture onto the LEDs::

    frame --rotate--> picture 1 --crop--> picture 2 --...--> picture n --layout--> LEDs

Nothing here runs per frame. ``compose`` checks the list against the frame's shape once and returns a
``Chain``; ``Chain.pull`` carries the (row, column) of every LED in picture n back to the frame, so the
layout's ``frame_index`` already includes every transform. Everything is pure: index arrays in, index
arrays out, errors as LayoutError naming the entry and the key (``[[transforms]] #2 rows: ...``).

What each transform does to the picture it takes (rows x columns):

* ``rotate``: on a dome's own picture (rows are vanes) a turn by whole vanes, a roll of the rows, clockwise
  for positive degrees; on a flat picture (a matrix, a point map, or before ``flat``) a quarter turn
  clockwise, 90, 180 or 270 degrees; 90 and 270 need a square picture (a turned 360 x 288 picture would be
  288 x 360 and no longer fit the layout).
* ``mirror``: reverses the order of the rows (``axis = "rows"``) or of the columns (``"columns"``).
* ``crop``: keeps the window ``rows = [first, count]``, ``columns = [first, count]`` (either may be left
  out: all of them). Several daemons can each show their window of one big frame: a video wall.
* ``flat``: the layout samples the picture as a flat image at each LED's physical position (aspect kept,
  centred), the way the original Skyscreen's flat-space tool did: video and ordinary 2-D patterns show
  undistorted on the round dome. It is how the layout reads the picture, so it comes last.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from skyscreen_hw.config import TransformConfig
from skyscreen_hw.errors import LayoutError

FULL_TURN = 360.0
QUARTER_TURN = 90.0
WHOLE = 1e-9  # how close to a whole number a number of vanes or rows must be

Shape = tuple[int, int]  # (rows, columns) of a picture
Index = tuple[np.ndarray, np.ndarray]  # (rows, columns) int64 arrays, one entry per LED


@dataclass(frozen=True)
class Step:
    """One transform, checked against the picture it takes: ``before`` -> ``after`` (rows, columns)."""

    where: str  # "[[transforms]] #2", for messages
    kind: str  # rotate, mirror, crop
    before: Shape
    after: Shape
    roll: int = 0  # rotate on a dome's picture: rows rolled (content of row r moves to row r + roll)
    quarters: int = 0  # rotate on a flat picture: clockwise quarter turns, 1..3
    axis: str = ""  # mirror: rows or columns
    offset: Shape = (0, 0)  # crop: first row, first column

    def pull(self, rows: np.ndarray, cols: np.ndarray) -> Index:
        """Coordinates in the picture this step gives -> the same pixels in the picture it takes."""
        h, w = self.before
        if self.kind == "crop":
            return rows + self.offset[0], cols + self.offset[1]
        if self.kind == "mirror":
            return (h - 1 - rows, cols) if self.axis == "rows" else (rows, w - 1 - cols)
        if self.roll:
            return (rows - self.roll) % h, cols
        if self.quarters == 1:  # clockwise: picture[r, c] = before[h - 1 - c, r]
            return h - 1 - cols, rows
        if self.quarters == 2:
            return h - 1 - rows, w - 1 - cols
        if self.quarters == 3:  # counter-clockwise: picture[r, c] = before[c, w - 1 - r]
            return cols, w - 1 - rows
        return rows, cols

    def describe(self) -> str:
        if self.kind == "crop":
            (r0, c0), (h, w) = self.offset, self.after
            return f"crop rows {r0}..{r0 + h - 1}, columns {c0}..{c0 + w - 1} of {self.before[0]}x{self.before[1]}"
        if self.kind == "mirror":
            return f"mirror {self.axis}"
        if self.roll:
            return f"rotate by {self.roll} of {self.before[0]} rows (whole vanes)"
        return f"rotate {self.quarters * 90} degrees clockwise" if self.quarters else "rotate 0 (nothing)"


@dataclass(frozen=True)
class Chain:
    """The transforms of a configuration, checked: the picture the layout maps and the way back to the frame."""

    frame: Shape  # what writers write
    shape: Shape  # the picture the layout maps (after every crop)
    steps: tuple[Step, ...] = ()
    flat: bool = False  # the layout samples the picture at each LED's physical position

    def pull(self, rows: np.ndarray, cols: np.ndarray) -> Index:
        """(row, column) in the layout's picture -> (row, column) in the frame, through every step."""
        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        for step in reversed(self.steps):
            rows, cols = step.pull(rows, cols)
        h, w = self.frame
        if rows.size and (rows.min() < 0 or rows.max() >= h or cols.min() < 0 or cols.max() >= w):
            raise LayoutError(f"[[transforms]]: a frame pixel out of range of the {h}x{w} frame (a bug: please report)")
        return rows, cols

    def describe(self) -> tuple[str, ...]:
        flat = ("flat: each LED shows the pixel at its position",) if self.flat else ()
        return tuple(s.describe() for s in self.steps) + flat


def _window(where: str, key: str, window: Sequence[int], size: int, what: str) -> tuple[int, int]:
    """(first, count) of a crop window inside ``size`` rows or columns; all of them when not given."""
    if not window:
        return 0, size
    first, count = int(window[0]), int(window[1])
    if first + count > size:
        raise LayoutError(
            f"{where} {key}: [{first}, {count}] takes {what} {first}..{first + count - 1}, but the picture has"
            f" {size} {what} here (0..{size - 1}): a crop must lie inside the frame (after the transforms"
            " before it); make the frame bigger ([frame] height / width) or the window smaller"
        )
    return first, count


def _whole(x: float) -> bool:
    return abs(x - round(x)) < WHOLE


def _rotate(where: str, degrees: float, shape: Shape, polar: bool, vanes: int) -> Step:
    turn = degrees % FULL_TURN
    h, w = shape
    if polar:
        steps = turn * vanes / FULL_TURN
        if not _whole(steps):
            raise LayoutError(
                f"{where} degrees: {degrees:g} is not a whole number of vanes (the dome has {vanes} vanes,"
                f" {FULL_TURN / vanes:g} degrees apart): the dome turns by whole vanes only, e.g."
                f" {math.floor(steps) * FULL_TURN / vanes:g} or {math.ceil(steps) * FULL_TURN / vanes:g}"
            )
        rows = turn * h / FULL_TURN
        if not _whole(rows):
            raise LayoutError(
                f"{where} degrees: {degrees:g} turns the {h} frame rows of the dome by {rows:g} rows, not a whole"
                f" number: pick a turn that is a whole number of rows ({FULL_TURN / h:g} degrees each) as well as"
                " of vanes, or make the frame's height a multiple of the vanes"
            )
        return Step(where, "rotate", shape, shape, roll=round(rows) % h)
    if not _whole(turn / QUARTER_TURN):
        hint = " (a dome's own picture turns by whole vanes; before flat the picture is flat)" if vanes else ""
        raise LayoutError(
            f"{where} degrees: {degrees:g} is not a quarter turn: a flat picture turns by 90, 180 or 270 degrees{hint}"
        )
    quarters = round(turn / QUARTER_TURN) % 4
    if quarters % 2 and h != w:
        raise LayoutError(
            f"{where} degrees: a {quarters * 90:g}-degree turn needs a square picture, but it is {h}x{w} (rows x"
            f" columns) here: turned it would be {w}x{h} and no longer fit the layout; crop it square first"
            ' (type = "crop") or write a square frame'
        )
    return Step(where, "rotate", shape, shape, quarters=quarters)


def compose(transforms: Sequence[TransformConfig], frame: Shape, *, polar: bool, vanes: int = 0) -> Chain:
    """Check ``transforms`` (in order) against the ``frame`` shape; the Chain the layout then maps through.

    ``polar``: the layout is a dome, whose own picture has a vane per row (rotate turns by whole vanes);
    ``vanes``: its vane count (0 = as many as the picture has rows). Raises LayoutError naming the entry.
    """
    shape = frame
    flat_at = next((i for i, t in enumerate(transforms) if t.type == "flat"), None)
    if flat_at is not None and flat_at != len(transforms) - 1:
        raise LayoutError(
            f"[[transforms]] #{flat_at + 1} type: flat must be the last transform (it is how the layout samples"
            " the picture); put rotate, mirror and crop before it, where they act on the flat picture"
        )
    # the shapes first: a dome's vane count follows the picture the layout gets (after every crop)
    for i, t in enumerate(transforms):
        if t.type == "crop":
            where = f"[[transforms]] #{i + 1}"
            rows = _window(where, "rows", t.rows, shape[0], "rows")
            cols = _window(where, "columns", t.columns, shape[1], "columns")
            shape = (rows[1], cols[1])
    vanes = vanes or shape[0]
    shape, steps = frame, []
    for i, t in enumerate(transforms):
        where = f"[[transforms]] #{i + 1}"
        if t.type == "crop":
            rows = _window(where, "rows", t.rows, shape[0], "rows")
            cols = _window(where, "columns", t.columns, shape[1], "columns")
            after = (rows[1], cols[1])
            steps.append(Step(where, "crop", shape, after, offset=(rows[0], cols[0])))
            shape = after
        elif t.type == "mirror":
            steps.append(Step(where, "mirror", shape, shape, axis=t.axis))
        elif t.type == "rotate":
            steps.append(_rotate(where, t.degrees, shape, polar and flat_at is None, vanes if polar else 0))
    return Chain(frame, shape, tuple(steps), flat_at is not None)


def bounding_box(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(low corner, size) of the box around ``positions`` (n, 2): the one place layouts are measured."""
    lo = positions.min(axis=0)
    return lo, positions.max(axis=0) - lo


def flat_sample(positions: np.ndarray, shape: Shape) -> Index:
    """(row, column) of the pixel under each position, the positions' bounding box fitted into the picture
    with its aspect kept and centred (x right, y down; the shorter side has a margin on both sides)."""
    h, w = shape
    lo, span = bounding_box(positions)
    limits = [(w - 1) / span[0] if span[0] > 0 else math.inf, (h - 1) / span[1] if span[1] > 0 else math.inf]
    scale = min(limits)
    if not math.isfinite(scale):  # a single point: the middle of the picture
        scale = 0.0
    used = span * scale
    x = (positions[:, 0] - lo[0]) * scale + (w - 1 - used[0]) / 2
    y = (positions[:, 1] - lo[1]) * scale + (h - 1 - used[1]) / 2
    cols = np.clip(np.round(x), 0, w - 1).astype(np.int64)
    rows = np.clip(np.round(y), 0, h - 1).astype(np.int64)
    return rows, cols
