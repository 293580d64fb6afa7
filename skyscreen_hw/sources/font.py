"""A 5 x 7 pixel font for printable ASCII, drawn for the canvas (our own; rows top to bottom, bit 4 = left).

Bold enough to read on a dome where a canvas cell covers a handful of LEDs. Control characters show
as a hollow box, so a client's mistake is visible; NUL and space are blank.
"""

from __future__ import annotations

import numpy as np

WIDTH, HEIGHT = 5, 7

# one line per character from 0x20 (space) to 0x7E (~): seven rows of five bits, in hex
GLYPHS = """
00 00 00 00 00 00 00
04 04 04 04 04 00 04
0A 0A 0A 00 00 00 00
0A 0A 1F 0A 1F 0A 0A
04 0F 14 0E 05 1E 04
18 19 02 04 08 13 03
0C 12 14 08 15 12 0D
0C 04 08 00 00 00 00
02 04 08 08 08 04 02
08 04 02 02 02 04 08
00 04 15 0E 15 04 00
00 04 04 1F 04 04 00
00 00 00 00 0C 04 08
00 00 00 1F 00 00 00
00 00 00 00 00 0C 0C
00 01 02 04 08 10 00
0E 11 13 15 19 11 0E
04 0C 04 04 04 04 0E
0E 11 01 02 04 08 1F
1F 02 04 02 01 11 0E
02 06 0A 12 1F 02 02
1F 10 1E 01 01 11 0E
06 08 10 1E 11 11 0E
1F 01 02 04 08 08 08
0E 11 11 0E 11 11 0E
0E 11 11 0F 01 02 0C
00 0C 0C 00 0C 0C 00
00 0C 0C 00 0C 04 08
02 04 08 10 08 04 02
00 00 1F 00 1F 00 00
08 04 02 01 02 04 08
0E 11 01 02 04 00 04
0E 11 01 0D 15 15 0E
0E 11 11 11 1F 11 11
1E 11 11 1E 11 11 1E
0E 11 10 10 10 11 0E
1C 12 11 11 11 12 1C
1F 10 10 1E 10 10 1F
1F 10 10 1E 10 10 10
0E 11 10 17 11 11 0F
11 11 11 1F 11 11 11
0E 04 04 04 04 04 0E
07 02 02 02 02 12 0C
11 12 14 18 14 12 11
10 10 10 10 10 10 1F
11 1B 15 15 11 11 11
11 11 19 15 13 11 11
0E 11 11 11 11 11 0E
1E 11 11 1E 10 10 10
0E 11 11 11 15 12 0D
1E 11 11 1E 14 12 11
0F 10 10 0E 01 01 1E
1F 04 04 04 04 04 04
11 11 11 11 11 11 0E
11 11 11 11 11 0A 04
11 11 11 15 15 15 0A
11 11 0A 04 0A 11 11
11 11 11 0A 04 04 04
1F 01 02 04 08 10 1F
0E 08 08 08 08 08 0E
00 10 08 04 02 01 00
0E 02 02 02 02 02 0E
04 0A 11 00 00 00 00
00 00 00 00 00 00 1F
08 04 02 00 00 00 00
00 00 0E 01 0F 11 0F
10 10 16 19 11 11 1E
00 00 0E 10 10 11 0E
01 01 0D 13 11 11 0F
00 00 0E 11 1F 10 0E
06 09 08 1C 08 08 08
00 0F 11 11 0F 01 0E
10 10 16 19 11 11 11
04 00 0C 04 04 04 0E
02 00 06 02 02 12 0C
10 10 12 14 18 14 12
0C 04 04 04 04 04 0E
00 00 1A 15 15 11 11
00 00 16 19 11 11 11
00 00 0E 11 11 11 0E
00 00 1E 11 1E 10 10
00 00 0D 13 0F 01 01
00 00 16 19 10 10 10
00 00 0E 10 0E 01 1E
08 08 1C 08 08 09 06
00 00 11 11 11 13 0D
00 00 11 11 11 0A 04
00 00 11 11 15 15 0A
00 00 11 0A 04 0A 11
00 00 11 11 0F 01 0E
00 00 1F 02 04 08 1F
02 04 04 08 04 04 02
04 04 04 04 04 04 04
08 04 04 02 04 04 08
00 00 08 15 02 00 00
"""

BOX = "1F 11 11 11 11 11 1F"  # control characters


def _rows(line: str) -> list[int]:
    return [int(v, 16) for v in line.split()]


def glyph_bitmaps(cell: int = 8) -> np.ndarray:
    """(129, cell, cell) bool: glyphs 0..127 by ASCII code, then 128 = a filled cell."""
    if cell < HEIGHT + 1:
        raise ValueError(f"cell must be at least {HEIGHT + 1} pixels, got {cell}")
    lines = GLYPHS.strip().splitlines()
    rows = np.zeros((129, HEIGHT), dtype=np.int64)
    rows[1:32] = rows[127] = _rows(BOX)
    rows[0x20:0x7F] = [_rows(line) for line in lines]
    bits = (rows[:, :, None] >> np.arange(WIDTH - 1, -1, -1)) & 1  # (129, 7, 5)
    out = np.zeros((129, cell, cell), dtype=bool)
    top, left = (cell - HEIGHT - 1) // 2, (cell - WIDTH) // 2
    out[:, top : top + HEIGHT, left : left + WIDTH] = bits.astype(bool)
    out[128] = True
    return out
