"""The pure instruction decoder and the canvas: every command of docs/instructions.md, block mode, bad words;
the websocket server's batches of messages (in-process, no network)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from skyscreen_hw.config import WebsocketConfig
from skyscreen_hw.sources import instructions as ins
from skyscreen_hw.sources.canvas import Canvas
from skyscreen_hw.sources.font import glyph_bitmaps
from skyscreen_hw.sources.instructions import InstructionError, SessionState, decode
from skyscreen_hw.sources.websocket import InstructionServer


def words(*ws: int) -> bytes:
    return ins.pack(list(ws))


def cells_of(transaction: ins.Transaction) -> list[tuple[int, int, int, int]]:
    """Every cell write as (x, y, glyph, colour), in order."""
    out = []
    for op in transaction.ops:
        assert isinstance(op, ins.Cells)
        out += list(zip(op.x.tolist(), op.y.tolist(), op.glyph.tolist(), op.colour.tolist(), strict=True))
    return out


def test_colour_pixel_bits_and_4_bit_scaling() -> None:
    # 001xxxxx 001yyyyy 0000RRRR GGGGBBBB, from the seed's table
    word = 0b001_00011_001_00101_0000_1111_1000_0001
    assert word == ins.pixel(3, 5, 15, 8, 1)
    t = decode(words(word))
    assert cells_of(t) == [(3, 5, ins.SOLID, (255 << 16) | (8 * 17 << 8) | 17)]
    assert not t.quit and t.state == SessionState()


def test_write_character_bits_and_2_bit_scaling() -> None:
    # 010xxxxx 010yyyyy 00RRGGBB <ASCII>
    word = 0b010_11111_010_00000_00_11_01_00_01000001
    assert word == ins.char(31, 0, 3, 1, 0, "A")
    assert cells_of(decode(words(word))) == [(31, 0, ord("A"), (255 << 16) | (85 << 8))]


def test_a_run_mixing_pixels_and_characters_keeps_order() -> None:
    ws = [ins.pixel(0, 0, 1, 2, 3), ins.char(1, 0, 3, 3, 3, "x"), ins.pixel(0, 0, 0, 0, 15)]
    got = cells_of(decode(words(*ws)))
    assert [(x, y, g) for x, y, g, _ in got] == [(0, 0, ins.SOLID), (1, 0, ord("x")), (0, 0, ins.SOLID)]
    assert got[2][3] == 255  # blue only


def test_colour_block_fills_rectangle_edges_included() -> None:
    head, rect = ins.colour_block(2, 3, 5, 4, 0, 15, 0)
    assert head == 0xFF01_00F0 and rect == (0b001_00010 << 24) | (0b001_00011 << 16) | (0b001_00101 << 8) | 0b001_00100
    (op,) = decode(words(head, rect)).ops
    assert op == ins.Rect(2, 3, 5, 4, 0x00FF00)
    canvas = Canvas()
    canvas.apply(1, decode(words(head, rect)))
    lines = canvas.text()
    assert [line for line in lines if line] == ["  ####", "  ####"]
    assert lines[3] == "  ####" and lines[4] == "  ####"


def test_colour_block_with_swapped_corners_is_the_same_rectangle() -> None:
    (op,) = decode(words(*ins.colour_block(5, 4, 2, 3, 1, 1, 1))).ops
    assert (op.left, op.top, op.right, op.bottom) == (2, 3, 5, 4)


def test_write_block_text_lines_newline_nul_and_wrap() -> None:
    text = "ab\ncd"
    msg = words(ins.block_start(), *ins.block_text(text, 3, 0, 0))
    t = decode(msg)
    assert t.state.block
    assert [(x, y, chr(g)) for x, y, g, _ in cells_of(t)] == [(0, 0, "a"), (1, 0, "b"), (0, 1, "c"), (1, 1, "d")]
    assert {c for *_, c in cells_of(t)} == {0xFF0000}
    # NUL is padding: "abc" is padded to two words, and only three cells are written
    t = decode(words(ins.block_start(), *ins.block_text("abc", 0, 3, 0)))
    assert len(cells_of(t)) == 3


def test_block_mode_lasts_across_messages_and_quit_leaves_it() -> None:
    t1 = decode(words(ins.block_start(), *ins.block_text("hi", 3, 3, 3)))
    t2 = decode(words(*ins.block_text("yo", 3, 3, 3)), t1.state)
    assert [(x, chr(g)) for x, _, g, _ in cells_of(t2)] == [(2, "y"), (3, "o")]
    t3 = decode(words(ins.QUIT, ins.pixel(9, 9, 1, 1, 1)), t2.state)
    assert not t3.quit and not t3.state.block  # quit in block mode only leaves block mode
    assert [(x, y) for x, y, *_ in cells_of(t3)] == [(9, 9)]  # and the message goes on in normal mode


def test_block_text_wraps_at_32_columns_and_back_to_the_top_after_32_rows() -> None:
    t = decode(words(ins.block_start(), *ins.block_text("x" * 33, 3, 3, 3)))
    assert [(x, y) for x, y, *_ in cells_of(t)][-2:] == [(31, 0), (0, 1)]
    t = decode(words(ins.block_start(), *ins.block_text("\n" * 31 + "x" * 33, 3, 3, 3)))
    assert [(x, y) for x, y, *_ in cells_of(t)][-2:] == [(31, 31), (0, 0)]


def test_entering_block_mode_again_starts_from_the_top_left() -> None:
    t1 = decode(words(ins.block_start(), *ins.block_text("abcd", 3, 3, 3), ins.QUIT))
    t2 = decode(words(ins.block_start(), *ins.block_text("z", 3, 3, 3)), t1.state)
    assert [(x, y, chr(g)) for x, y, g, _ in cells_of(t2)] == [(0, 0, "z")]


def test_quit_outside_block_mode_ends_the_session_and_ignores_the_rest() -> None:
    t = decode(words(ins.pixel(1, 1, 1, 1, 1), ins.QUIT, 0x12345678))
    assert t.quit and len(cells_of(t)) == 1


@pytest.mark.parametrize(
    ("message", "index", "text"),
    [
        (b"\x20\x20\x00", 0, "length 3 is not a multiple of 4"),
        (words(ins.pixel(0, 0, 1, 1, 1)) + b"\x01\x02", 1, "0x0102: message length 6"),
        (words(ins.pixel(0, 0, 1, 1, 1), 0x60200000), 1, "0x60200000: unknown command tag 011"),
        (words(0x20400000), 0, "y byte's tag 010 differs"),
        (words(0x2020F000), 0, "colour byte 0xF0 has its top bits set"),
        (words(0x4040C041), 0, "colour byte 0xC0 has its top bits set"),
        (words(0x40400080), 0, "character 0x80 is not ASCII"),
        (words(ins.pixel(1, 1, 1, 1, 1), 0xFF01_0FFF), 1, "colour block without its rectangle word"),
        (words(0xFF01_0FFF, 0x20204020), 1, "rectangle word must be"),
        (words(0xFF01_1000, 0x20202020), 0, "colour byte 0x10 has its top bits set"),
        (words(0xFF02_0000), 0, "unknown 0xFF command"),
        (words(ins.block_start(), 0x0141FF00), 1, "0x0141FF00: colour byte 0xFF has its top bits set"),
        (words(ins.block_start(), 0x01410190), 1, "character 0x90 is not ASCII"),
    ],
)
def test_malformed_words_name_their_index_and_value(message: bytes, index: int, text: str) -> None:
    with pytest.raises(InstructionError) as caught:
        decode(message)
    assert caught.value.index == index
    assert text in str(caught.value) and str(caught.value).startswith(f"word {index} = 0x")


def test_random_bytes_either_decode_or_raise_instruction_error() -> None:
    rng = np.random.default_rng(7)
    failures = 0
    for n in range(400):
        message = rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8).tobytes()
        try:
            decode(message, SessionState(block=bool(n % 2)))
        except InstructionError as exc:
            failures += 1
            assert 0 <= exc.index <= len(message) // 4
    assert failures > 300  # random bytes are almost always malformed


def test_canvas_applies_whole_messages_last_write_wins_and_quit_clears_only_the_session() -> None:
    canvas = Canvas()
    assert canvas.texture()[1].sum() == 0  # nothing drawn: transparent
    v0 = canvas.version
    canvas.apply(1, decode(words(ins.pixel(0, 0, 15, 0, 0), ins.pixel(0, 0, 0, 15, 0), ins.pixel(1, 0, 0, 0, 15))))
    assert canvas.version == v0 + 1  # one message, one change
    rgb, alpha = canvas.texture()
    c = Canvas.CELL
    assert alpha[:c, : 2 * c].all() and alpha.sum() == 2 * c * c
    assert (rgb[:c, :c] == (0, 255, 0)).all() and (rgb[:c, c : 2 * c] == (0, 0, 255)).all()
    canvas.apply(2, decode(words(ins.pixel(1, 0, 15, 15, 15), ins.pixel(5, 5, 15, 15, 15))))
    canvas.clear(1)  # session 1 quits: its (0,0) goes, its (1,0) was drawn over by session 2 and stays
    assert canvas.text()[0] == " #" and canvas.text()[5] == "     #"


def test_characters_draw_their_glyph_in_colour_on_black() -> None:
    canvas = Canvas()
    canvas.apply(1, decode(words(ins.char(2, 1, 0, 3, 0, "A"))))
    rgb, alpha = canvas.texture()
    c = Canvas.CELL
    cell_rgb, cell_alpha = rgb[c : 2 * c, 2 * c : 3 * c], alpha[c : 2 * c, 2 * c : 3 * c]
    glyph = glyph_bitmaps(c)[ord("A")]
    assert cell_alpha.all()  # the black background is drawn too
    assert (cell_rgb[glyph] == (0, 255, 0)).all() and (cell_rgb[~glyph] == 0).all()
    assert canvas.text()[1] == "  A"


def test_every_printable_glyph_is_distinct_and_visible() -> None:
    bitmaps = glyph_bitmaps(8)
    printable = [bitmaps[c].tobytes() for c in range(0x21, 0x7F)]
    assert len(set(printable)) == len(printable)
    assert all(bitmaps[c].any() for c in range(0x21, 0x7F)) and not bitmaps[0x20].any()
    assert bitmaps[ins.SOLID].all()


def test_encoders_reject_values_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"x must be 0\.\.31"):
        ins.pixel(32, 0, 0, 0, 0)
    with pytest.raises(ValueError, match=r"r must be 0\.\.3"):
        ins.char(0, 0, 4, 0, 0, "a")
    with pytest.raises(ValueError, match=r"character must be 0\.\.127"):
        ins.block_text("é", 1, 1, 1)


def test_every_glyph_pixel_shows_on_the_default_dome_from_a_quarter_to_nine_tenths_of_the_radius() -> None:
    """Legibility on the dome: near the rim the vanes are farther apart than a canvas pixel, so each LED
    samples its whole footprint between vanes; every pixel of every glyph is shown by some lit LED."""
    from skyscreen_hw import config, layouts
    from skyscreen_hw.compositor import CanvasOverlay, canvas_samples

    layout = layouts.build(config.parse({}))
    samples = canvas_samples(layout, Canvas.SIZE)
    bitmaps = glyph_bitmaps(Canvas.CELL)
    c = Canvas.CELL
    ring = [
        (x, y)
        for y in range(ins.CELLS)
        for x in range(ins.CELLS)
        if 0.25 <= np.hypot((x + 0.5) / 16 - 1, (y + 0.5) / 16 - 1) < 0.9
    ]
    for ch in "EIil|.:!'W@#":
        canvas = Canvas()
        canvas.apply(1, decode(words(*[ins.char(x, y, 3, 3, 3, ch) for x, y in ring])))
        lit = CanvasOverlay(layout, canvas).draw(np.zeros((layout.count, 3), np.uint8)).any(axis=1)
        shown = np.zeros(Canvas.SIZE * Canvas.SIZE, bool)
        for index in samples:
            shown[index[lit]] = True
        shown = shown.reshape(Canvas.SIZE, Canvas.SIZE)
        glyph = bitmaps[ord(ch)]
        missing = [(x, y) for x, y in ring if not shown[y * c : (y + 1) * c, x * c : (x + 1) * c][glyph].all()]
        assert not missing, f"{ch!r}: glyph pixels not shown in cells {missing[:5]}"


# -- the fast path for a stream of colour pixels: bit-exact with decoding message by message ------------------


def random_messages(rng: np.random.Generator, count: int, spoil: float) -> list[bytes | str]:
    """Mostly colour-pixel messages; with probability ``spoil`` a message also holds another kind of word
    (a character, a command, a malformed word, random bytes), is text, or has a ragged length."""
    out: list[bytes | str] = []
    for _ in range(count):
        n = int(rng.integers(0, 40))
        x, y, c = rng.integers(0, 32, n), rng.integers(0, 32, n), rng.integers(0, 4096, n)
        ws = ((1 << 29) | (x << 24) | (1 << 21) | (y << 16) | c).astype(np.uint32)
        kind = int(rng.integers(0, 8)) if rng.random() < spoil else -1
        if kind in (0, 1, 2, 3) and n:
            at = int(rng.integers(0, n))
            ws[at] = [
                ins.char(int(x[at]), int(y[at]), 1, 2, 3, "Q"),
                ins.QUIT,
                int(rng.integers(0, 1 << 32)),
                ws[at] | 0x4000,  # a colour byte with its top bits set
            ][kind]
        message = ws.astype(">u4").tobytes()
        if kind == 4:
            message += ins.pack(ins.colour_block(1, 2, 3, 4, 5, 6, 7))
        elif kind == 5:
            message += b"\x20\x20"
        elif kind == 6:
            message = rng.integers(0, 256, 4 * n, dtype=np.uint8).tobytes()
        out.append("text" if kind == 7 else message)
    return out


def only_pixels(message: bytes | str) -> bool:
    """The straightforward definition: the message decodes, leaves the state alone and draws solid cells only."""
    if isinstance(message, str):
        return False
    try:
        t = decode(message)
    except InstructionError:
        return False
    return (
        not t.quit
        and t.state == SessionState()
        and all(isinstance(op, ins.Cells) and (op.glyph == ins.SOLID).all() for op in t.ops)
    )


def test_pixel_runs_marks_exactly_the_messages_made_of_colour_pixels_only() -> None:
    rng = np.random.default_rng(11)
    for _ in range(300):
        batch = random_messages(rng, int(rng.integers(1, 12)), spoil=float(rng.choice([0.05, 0.15, 0.5])))
        words, offsets, only = ins.pixel_runs(batch)
        assert words.dtype == np.uint32 and only == [only_pixels(m) for m in batch]
        for k, m in enumerate(batch):
            if only[k]:
                assert (
                    words[offsets[k] : offsets[k + 1]].tobytes() == np.frombuffer(m, ">u4").astype(np.uint32).tobytes()
                )  # type: ignore[arg-type]


def canvas_state(canvas: Canvas) -> tuple[bytes, ...]:
    rgb, alpha = canvas.texture()
    return canvas.glyph.tobytes(), canvas.colour.tobytes(), canvas.owner.tobytes(), rgb.tobytes(), alpha.tobytes()


def test_painting_pixel_words_at_once_equals_applying_their_messages_in_turn() -> None:
    rng = np.random.default_rng(12)
    for _ in range(50):
        batch = [m for m in random_messages(rng, int(rng.integers(1, 20)), spoil=0.0)]
        fast, slow = Canvas(), Canvas()
        for c in (fast, slow):  # another session's drawing underneath, partly painted over
            c.apply(7, decode(words(ins.block_start(), *ins.block_text("under" * 40, 1, 2, 3), ins.QUIT)))
        pixels, _, only = ins.pixel_runs(batch)
        assert all(only)
        fast.paint(1, pixels)
        for m in batch:
            slow.apply(1, decode(m))  # type: ignore[arg-type]
        assert canvas_state(fast) == canvas_state(slow)
        fast.clear(1)
        slow.clear(1)
        assert canvas_state(fast) == canvas_state(slow)


def test_painting_no_words_changes_nothing() -> None:
    canvas = Canvas()
    canvas.paint(1, np.zeros(0, np.uint32))
    assert canvas.version == 0


def test_taking_messages_together_equals_taking_them_one_by_one() -> None:
    """The server's batches (pixel-only fast path, else message by message) against one message at a time,
    on random streams with malformed words, text, commands and quits: same canvas, state, count and close."""
    rng = np.random.default_rng(5)
    log = logging.getLogger("test-batches")
    for _ in range(60):
        stream = random_messages(rng, int(rng.integers(1, 30)), spoil=float(rng.choice([0.0, 0.05, 0.3])))
        if rng.random() < 0.3:  # enter block mode on the way
            stream.insert(int(rng.integers(0, len(stream))), ins.pack([ins.block_start(), 0x01410142]))
        servers = [InstructionServer(WebsocketConfig(), Canvas(), log) for _ in range(2)]
        outcomes = []
        for server, batch_size in zip(servers, (int(rng.integers(2, 12)), 1), strict=True):
            state, closing, i = ins.SessionState(), None, 0
            while closing is None and i < len(stream):
                state, closing = server._take(1, "peer", stream[i : i + batch_size], state)
                i += batch_size
            outcomes.append((state, closing, server.messages, canvas_state(server.canvas)))
        assert outcomes[0] == outcomes[1]
