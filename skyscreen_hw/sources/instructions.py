"""The instruction stream (docs/instructions.md): 32-bit words -> validated drawing operations. Pure: no I/O.

A message is one transaction. `decode(message, state)` returns every operation of the message, or
raises `InstructionError` naming the first malformed word; nothing of a failed message is applied.
Runs of single-word commands (colour pixel, write character) are validated and decoded as whole numpy
arrays, not word by word.

Encoders for clients (`pixel`, `char`, `block_start`, `block_text`, `colour_block`, `QUIT`, `pack`) live
here too, so the CLI, the tests and the documentation build exactly the bytes the decoder reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from skyscreen_hw.errors import SkyscreenError

CELLS = 32  # the canvas is CELLS x CELLS cells
SOLID = 128  # glyph index of a filled cell (colour pixel); 0..127 are ASCII glyphs

TAG_PIXEL = 0b001
TAG_CHAR = 0b010
BLOCK_START = 0xFF000080
COLOUR_BLOCK = 0xFF01  # top 16 bits
QUIT = 0xFFFFFFFF


class InstructionError(SkyscreenError):
    """A malformed message: `index` and `word` name the first bad word (close code 1007)."""

    def __init__(self, index: int, word: int | bytes, problem: str) -> None:
        self.index = index
        self.word = word
        self.problem = problem
        value = f"0x{word:08X}" if isinstance(word, int) else "0x" + word.hex().upper()
        super().__init__(f"word {index} = {value}: {problem}")


@dataclass(frozen=True)
class SessionState:
    """What one connection remembers between messages: block mode and its text cursor (row * 32 + col)."""

    block: bool = False
    cursor: int = 0


@dataclass(frozen=True)
class Cells:
    """Draw cells, in order: `cell` = y * 32 + x, `glyph` 0..127 ASCII or SOLID, `colour` 0xRRGGBB on black."""

    cell: np.ndarray
    glyph: np.ndarray
    colour: np.ndarray  # uint32 0xRRGGBB

    @property
    def x(self) -> np.ndarray:
        return self.cell % CELLS

    @property
    def y(self) -> np.ndarray:
        return self.cell // CELLS


@dataclass(frozen=True)
class Rect:
    """Fill the cells from (left, top) to (right, bottom), edges included."""

    left: int
    top: int
    right: int
    bottom: int
    colour: int  # 0xRRGGBB


@dataclass
class Transaction:
    """One decoded message: the operations in order, the connection's state after it, and whether it quits."""

    ops: list[Cells | Rect] = field(default_factory=list)
    state: SessionState = SessionState()
    quit: bool = False


# -- decoding --------------------------------------------------------------------------------------------


def _packed(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((r << 16) | (g << 8) | b).astype(np.uint32)


_codes12, _codes6 = np.arange(4096), np.arange(64)
RGB12 = _packed((_codes12 >> 8) * 17, ((_codes12 >> 4) & 15) * 17, (_codes12 & 15) * 17)  # 0000RRRR GGGGBBBB
RGB6 = _packed((_codes6 >> 4) * 85, ((_codes6 >> 2) & 3) * 85, (_codes6 & 3) * 85)  # 00RRGGBB

PIXEL_MASK, PIXEL_BITS = 0xE0E0F000, 0x20200000  # 001xxxxx 001yyyyy 0000.... ........
CHAR_MASK, CHAR_BITS = 0xE0E0C080, 0x40400000  # 010xxxxx 010yyyyy 00...... 0.......


def _diagnose(word: int) -> str:
    """Why a single-word command is malformed (only called for a word that is)."""
    b0, b1, b2, b3 = word >> 24, (word >> 16) & 0xFF, (word >> 8) & 0xFF, word & 0xFF
    tag = b0 >> 5
    if tag not in (TAG_PIXEL, TAG_CHAR):
        return f"unknown command tag {tag:03b} (001 pixel, 010 character, 0xFF block commands)"
    if b1 >> 5 != tag:
        return f"the y byte's tag {b1 >> 5:03b} differs from the x byte's {tag:03b}"
    if tag == TAG_PIXEL:
        return f"colour byte 0x{b2:02X} has its top bits set (0000RRRR expected)"
    if b2 >> 6:
        return f"colour byte 0x{b2:02X} has its top bits set (00RRGGBB expected)"
    return f"character 0x{b3:02X} is not ASCII"


def cell_index(words: np.ndarray) -> np.ndarray:
    """The cell (y * 32 + x) each colour-pixel or write-character word names."""
    return ((words >> 16) & 31) * CELLS + ((words >> 24) & 31)


def pixel_runs(messages: Sequence[bytes | str]) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    """A fast path for a stream of pixels, checked for several messages at once: (words, offsets, only).

    ``words`` (uint32) holds every binary message whose length is a multiple of 4, message k's words being
    ``words[offsets[k] : offsets[k + 1]]``; ``only[k]``: message k is made only of colour-pixel words. Such
    messages are whole transactions that leave the session's state as it was, so outside block mode a run
    of them applied at once (`Canvas.paint`) is each applied in turn; any other message is for `decode`.
    """
    usable = [isinstance(m, bytes) and not len(m) % 4 for m in messages]
    kept = messages if all(usable) else [m for m, u in zip(messages, usable, strict=True) if u]
    offsets = np.zeros(len(messages) + 1, np.int64)
    np.cumsum([len(m) // 4 if u else 0 for m, u in zip(messages, usable, strict=True)], out=offsets[1:])
    words = np.frombuffer(b"".join(kept), dtype=">u4").astype(np.uint32)  # type: ignore[arg-type]
    bad = (words & PIXEL_MASK) != PIXEL_BITS
    if not bad.any():  # the common case
        return words, offsets, usable
    where = np.flatnonzero(bad)
    clean = (np.searchsorted(where, offsets[:-1]) == np.searchsorted(where, offsets[1:])).tolist()
    return words, offsets, [u and c for u, c in zip(usable, clean, strict=True)]


def _single_words(words: np.ndarray, start: int) -> Cells:
    """A run of colour-pixel and write-character words (none starting with 0xFF), as one Cells op."""
    cell = cell_index(words)
    pix = (words & PIXEL_MASK) == PIXEL_BITS
    if pix.all():  # the common case: a run of pixels
        return Cells(cell, np.full(len(words), SOLID, np.int16), RGB12[words & 0xFFF])
    bad = ~(pix | ((words & CHAR_MASK) == CHAR_BITS))
    if bad.any():
        first = int(np.argmax(bad))
        raise InstructionError(start + first, int(words[first]), _diagnose(int(words[first])))
    glyph = np.where(pix, SOLID, words & 0xFF).astype(np.int16)
    colour = np.where(pix, RGB12[words & 0xFFF], RGB6[(words >> 8) & 0x3F])
    return Cells(cell, glyph, colour)


def _block_text(words: np.ndarray, start: int, cursor: int) -> tuple[list[Cells], int]:
    """Block-mode words (two 00RRGGBB + char pairs each) -> Cells at the cursor; returns the new cursor."""
    halves = np.stack([words >> 16, words & 0xFFFF], axis=-1).reshape(-1)
    colour, code = halves >> 8, halves & 0xFF
    bad = (colour >> 6 != 0) | (code >= 0x80)
    if bad.any():
        i = int(np.argmax(bad))
        problem = (
            f"colour byte 0x{int(colour[i]):02X} has its top bits set (block mode: 00RRGGBB+char pairs until FFFFFFFF)"
            if colour[i] >> 6
            else f"character 0x{int(code[i]):02X} is not ASCII"
        )
        raise InstructionError(start + i // 2, int(words[i // 2]), problem)
    keep = code != 0  # NUL is padding
    colour, code = colour[keep], code[keep]
    ops = []
    # one slice per line: positions run on from the cursor, a newline moves it to the next line's start
    breaks = np.flatnonzero(code == 0x0A)
    begin = 0
    for end in [*breaks.tolist(), len(code)]:
        n = end - begin
        if n:
            pos = (cursor + np.arange(n)) % (CELLS * CELLS)
            ops.append(Cells(pos, code[begin:end].astype(np.int16), RGB6[colour[begin:end]]))
            cursor = (cursor + n) % (CELLS * CELLS)
        if end < len(code):  # a newline
            cursor = ((cursor // CELLS + 1) * CELLS) % (CELLS * CELLS)
        begin = end + 1
    return ops, cursor


def _rect(words: np.ndarray, k: int) -> Rect:
    if k + 1 >= len(words):
        raise InstructionError(k, int(words[k]), "colour block without its rectangle word")
    head, rect = int(words[k]), int(words[k + 1])
    if (head >> 12) & 0xF:
        raise InstructionError(k, head, f"colour byte 0x{(head >> 8) & 0xFF:02X} has its top bits set (0000RRRR)")
    parts = [(rect >> s) & 0xFF for s in (24, 16, 8, 0)]
    if any(p >> 5 != TAG_PIXEL for p in parts):
        raise InstructionError(k + 1, rect, "rectangle word must be 001-xl 001-yt 001-xr 001-yb")
    xl, yt, xr, yb = (p & 31 for p in parts)
    return Rect(min(xl, xr), min(yt, yb), max(xl, xr), max(yt, yb), int(RGB12[head & 0xFFF]))


def decode(message: bytes, state: SessionState = SessionState()) -> Transaction:
    """Decode one binary message; raises InstructionError (nothing applied) on the first malformed word."""
    if len(message) % 4:
        index = len(message) // 4
        raise InstructionError(
            index, bytes(message[index * 4 :]), f"message length {len(message)} is not a multiple of 4 bytes"
        )
    words = np.frombuffer(message, dtype=">u4").astype(np.uint32)
    n = len(words)
    quits = np.flatnonzero(words == QUIT)
    commands = np.flatnonzero((words >> 24) == 0xFF)
    result = Transaction(state=state)
    block, cursor = state.block, state.cursor
    i = 0
    while i < n:
        if block:
            j = int(quits[np.searchsorted(quits, i)]) if np.searchsorted(quits, i) < len(quits) else n
            ops, cursor = _block_text(words[i:j], i, cursor)
            result.ops.extend(ops)
            if j < n:
                block = False
            i = j + 1
            continue
        after = np.searchsorted(commands, i)
        k = int(commands[after]) if after < len(commands) else n
        if k > i:
            result.ops.append(_single_words(words[i:k], i))
        if k == n:
            break
        word = int(words[k])
        if word == BLOCK_START:
            block, cursor = True, 0
            i = k + 1
        elif word >> 16 == COLOUR_BLOCK:
            result.ops.append(_rect(words, k))
            i = k + 2
        elif word == QUIT:
            result.quit = True  # the rest of the message is ignored: the connection closes
            break
        else:
            raise InstructionError(k, word, "unknown 0xFF command (FF000080 block, FF01 colour block, FFFFFFFF quit)")
    result.state = SessionState(block, cursor)
    return result


# -- encoding (for clients) ------------------------------------------------------------------------------


def _check(name: str, value: int, limit: int) -> int:
    if not 0 <= value < limit:
        raise ValueError(f"{name} must be 0..{limit - 1}, got {value}")
    return value


def pixel(x: int, y: int, r: int, g: int, b: int) -> int:
    """Colour pixel: 001xxxxx 001yyyyy 0000RRRR GGGGBBBB (4-bit channels)."""
    x, y = _check("x", x, CELLS), _check("y", y, CELLS)
    r, g, b = (_check(c, v, 16) for c, v in zip("rgb", (r, g, b), strict=True))
    return (TAG_PIXEL << 29) | (x << 24) | (TAG_PIXEL << 21) | (y << 16) | (r << 8) | (g << 4) | b


def _colour2(r: int, g: int, b: int) -> int:
    r, g, b = (_check(c, v, 4) for c, v in zip("rgb", (r, g, b), strict=True))
    return (r << 4) | (g << 2) | b


def char(x: int, y: int, r: int, g: int, b: int, ch: str | int) -> int:
    """Write character: 010xxxxx 010yyyyy 00RRGGBB <ASCII> (2-bit channels)."""
    code = _check("character", ord(ch) if isinstance(ch, str) else ch, 0x80)
    x, y = _check("x", x, CELLS), _check("y", y, CELLS)
    return (TAG_CHAR << 29) | (x << 24) | (TAG_CHAR << 21) | (y << 16) | (_colour2(r, g, b) << 8) | code


def block_start() -> int:
    """Enter write-block mode: FF 00 00 80."""
    return BLOCK_START


def block_text(text: str, r: int, g: int, b: int) -> list[int]:
    """Block-mode words for `text` in one colour (2-bit channels), NUL-padded to whole words."""
    colour = _colour2(r, g, b)
    codes = [_check("character", ord(c), 0x80) for c in text]
    if len(codes) % 2:
        codes.append(0)
    return [(colour << 24) | (codes[i] << 16) | (colour << 8) | codes[i + 1] for i in range(0, len(codes), 2)]


def colour_block(left: int, top: int, right: int, bottom: int, r: int, g: int, b: int) -> list[int]:
    """Colour block: FF 01 0000RRRR GGGGBBBB, then 001-xl 001-yt 001-xr 001-yb."""
    r, g, b = (_check(c, v, 16) for c, v in zip("rgb", (r, g, b), strict=True))
    names = ("left", "top", "right", "bottom")
    edges = [_check(n, v, CELLS) for n, v in zip(names, (left, top, right, bottom), strict=True)]
    rect = 0
    for e in edges:
        rect = (rect << 8) | (TAG_PIXEL << 5) | e
    return [(COLOUR_BLOCK << 16) | (r << 8) | (g << 4) | b, rect]


def pack(words: list[int]) -> bytes:
    """Words -> one message, most significant byte first."""
    return b"".join(w.to_bytes(4, "big") for w in words)
