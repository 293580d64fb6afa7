"""The DDP receiver rules as a pure state machine (the input's shell does the sockets).

As WLED's and FPP's DDP receivers do them: data lands at its byte offset (10- and 14-byte headers, the
timecode one too); the data type bytes senders use are all taken: 0 (undefined), 0x01 (the legacy RGB of
older senders), 0x0B (RGB, 8 bits) as RGB, and 0x1B (RGBW, 8 bits) with the white folded into red, green
and blue (saturating). Once any sender has set the push flag, data waits for a push and lands whole
(WLED's rule); after 2.5 s without a push, data lands at once again. A status query (query flag, ID 251)
is answered with a JSON reply, so discovery tools (xLights, FPP) see the display. Data past the display's
end is cut; a packet starting past it is dropped and counted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

from skyscreen_hw.protocols import ProtocolError, ddp
from skyscreen_hw.protocols.universe_receiver import IGNORED, MALFORMED, PAST_THE_END, SILENCE, Receiver

DESTINATION_CONFIG, DESTINATION_STATUS = 250, 251
RGB_TYPES = frozenset({0x00, 0x01, ddp.TYPE_RGB8})
REPLY_FLAGS = ddp.VERSION_1 | ddp.FLAG_REPLY | ddp.FLAG_PUSH
_FRAME_FIELDS = slice(2, ddp.HEADER_BYTES)  # data type, ID, offset, length: what a frame's packets say apart
_PLAIN_FLAGS = bytes([ddp.VERSION_1])  # every packet of a frame but the last: version 1, no flag


def status_reply(sequence: int, status: Mapping[str, object]) -> bytes:
    """The reply to a status query: a DDP packet from ID 251 carrying ``{"status": {...}}``."""
    body = json.dumps({"status": dict(status)}, separators=(",", ":")).encode()
    return bytes([REPLY_FLAGS, sequence & ddp.SEQUENCE_MASK, 0, DESTINATION_STATUS]) + (
        (0).to_bytes(4, "big") + len(body).to_bytes(2, "big") + body
    )


class DdpReceiver(Receiver):
    """DDP datagrams into the display's ``size`` bytes (RGB, 3 a pixel).

    Its image may be the source's back buffer itself (``lends_image``): after each delivery the shell
    hands it the next back buffer with ``rebase``; that buffer holds an older picture, so it is refreshed
    from the one delivered before any part of it is read or written, unless a frame writes it whole (the
    usual case: no copy at all between the packets and the mixer).
    """

    lends_image = True

    def __init__(self, size: int, status: Mapping[str, object] | None = None) -> None:
        super().__init__(size)
        self.status = dict(status or {})
        self.pending = np.zeros_like(self.image)  # what the senders wrote since the last push
        self.synced = True  # pending equals the image outside lo..hi (else it is refreshed before use)
        self.lo, self.hi = size, 0  # the range of ``pending`` written since the last push
        self.last_push = -1.0  # when the last push arrived; -1 = never: data lands at once
        self.pushes = 0
        self.replies: list[bytes] = []  # replies ``batch`` made (status queries), for the shell to send
        self._fields_key: tuple[bytes, int, int] | None = None
        self._fields = b""
        self._picture: np.ndarray | None = None  # what ``image`` must be refreshed from before use; None: fresh

    def rebase(self, image: np.ndarray, picture: np.ndarray) -> None:
        """``image`` (``size`` bytes, holding an older picture) is the image from now on; ``picture`` is
        what the image was (the delivered buffer: only read, and only before the next delivery)."""
        if image.size != self.size or picture.size != self.size:
            raise ValueError(f"DDP receiver: an image of {image.size} bytes for a display of {self.size}")
        self.image, self._picture = image, picture

    def _fresh(self) -> np.ndarray:
        """The image, refreshed from the delivered picture first if it was rebased since."""
        if self._picture is not None:
            np.copyto(self.image, self._picture)
            self._picture = None
        return self.image

    def _target(self, first: int, end: int) -> np.ndarray:
        """The image, for bytes ``first`` .. ``end`` to be written next: refreshed unless they are all of it."""
        if first == 0 and end >= self.size:
            self._picture = None  # written whole: the older picture goes anyway
            return self.image
        return self._fresh()

    @property
    def push_mode(self) -> bool:
        return self.last_push >= 0

    def datagram(self, data: bytes | bytearray | memoryview, sender: object, now: float) -> bytes | None:
        """One UDP datagram; the reply to send back to ``sender``, if any."""
        try:
            packet = ddp.parse(data)
        except ProtocolError as exc:
            self.drop(MALFORMED, str(exc))
            return None
        if packet.reply:
            self.drop(IGNORED, "a reply (another display's)")
            return None
        if packet.query:
            if packet.destination == DESTINATION_STATUS:
                self.packets += 1
                self.heard(sender, now)
                return status_reply(packet.sequence, self.status)
            self.drop(IGNORED, f"query for ID {packet.destination}")
            return None
        if packet.destination not in (ddp.DESTINATION_DISPLAY, ddp.DESTINATION_ALL):
            self.drop(IGNORED, f"data for ID {packet.destination}")
            return None
        self.heard(sender, now)
        self.write(packet.data_type, packet.offset, packet.data, packet.push, now)
        return None

    def write(self, kind: int, offset: int, data: bytes | memoryview, push: bool, now: float) -> None:
        """One data packet's fields: ``data`` for byte ``offset``, in data type ``kind``."""
        if kind in RGB_TYPES:
            start, pixels = offset, np.frombuffer(data, dtype=np.uint8)
        elif kind == ddp.TYPE_RGBW8:
            skip = -offset % 4  # a cut RGBW pixel at the start is skipped
            rgbw = np.frombuffer(data, dtype=np.uint8)[skip:]
            rgbw = rgbw[: rgbw.size - rgbw.size % 4].reshape(-1, 4)
            folded = rgbw[:, :3] + rgbw[:, 3:].astype(np.uint16)
            start, pixels = (offset + skip) // 4 * 3, np.minimum(folded, 255).astype(np.uint8).reshape(-1)
        else:
            self.drop(IGNORED, f"data type 0x{kind:02x} (not RGB or RGBW, 8 bits)")
            return
        if pixels.size and start >= self.size:
            self.drop(PAST_THE_END, f"offset {offset} past the display's {self.size} bytes")
            return
        self.packets += 1
        end = min(start + pixels.size, self.size)
        if push:
            if not self.push_mode:  # from now on data waits for a push: pending starts as the image
                self.synced = False
                self.lo, self.hi = self.size, 0
            self.last_push = now
            self.pushes += 1
        if not self.push_mode:
            self._target(start, end)[start:end] = pixels[: end - start]
            self.changed = True
            return
        if end > start:
            self._sync_pending()
            self.pending[start:end] = pixels[: end - start]
            self.lo, self.hi = min(self.lo, start), max(self.hi, end)
        if push:
            self._land()

    # -- many packets at once ---------------------------------------------------------------------------

    def batch(self, packets: np.ndarray, sender: object, now: float) -> None:
        """A run of equal-length datagrams, ``packets[i]`` each, in arrival order.

        The fast path takes RGB data packets with 10-byte headers (what a sender's frame is): offsets read
        at once, the data copied as one slice when the packets follow each other (else one slice each),
        pushes honoured where they fall. Anything else goes through ``datagram`` one by one, in order.
        """
        count, length = packets.shape
        if count >= 2 and length > ddp.HEADER_BYTES and self._frame(packets, sender, now):
            return
        if count < 2 or length <= ddp.HEADER_BYTES or int(packets[0, 2]) not in RGB_TYPES or not self._vouch(packets):
            for row in packets:
                reply = self.datagram(row.tobytes(), sender, now)
                if reply is not None:
                    self.replies.append(reply)
            return
        self.heard(sender, now)
        offsets = packets[:, 4:8].copy().view(">u4")[:, 0].astype(np.int64)
        data = packets[:, ddp.HEADER_BYTES :]
        pushes = np.flatnonzero(packets[:, 0] & ddp.FLAG_PUSH).tolist()
        start = 0
        for end in [*pushes, count - 1] if not pushes or pushes[-1] != count - 1 else pushes:
            if end >= start:
                push = end in pushes and offsets[end] < self.size  # a packet past the end is dropped whole
                self._run(offsets[start : end + 1], data[start : end + 1], push, now)
            start = end + 1

    def _frame(self, packets: np.ndarray, sender: object, now: float) -> bool:
        """The usual run in a few steps: RGB packets one after the other from the first one's offset,
        wholly inside the display, no flags but a push on the last one. False (nothing done) otherwise.
        The headers are compared as bytes with the ones such a run has (made once): a wake-up runs cold,
        where every numpy step costs several microseconds."""
        count, length = packets.shape
        width = length - ddp.HEADER_BYTES
        head = packets[0, : ddp.HEADER_BYTES].tobytes()
        last = int(packets[-1, 0])
        first = int.from_bytes(head[4:8], "big")
        if (
            head[0] != ddp.VERSION_1
            or last & ~ddp.FLAG_PUSH != ddp.VERSION_1
            or head[2] not in RGB_TYPES
            or head[3] not in (ddp.DESTINATION_DISPLAY, ddp.DESTINATION_ALL)
            or int.from_bytes(head[8:10], "big") != width
            or first + count * width > self.size
        ):
            return False
        if packets[:, _FRAME_FIELDS].tobytes() != self._expected(head, count, width):
            return False
        if packets[:-1, 0].tobytes() != _PLAIN_FLAGS * (count - 1):
            return False
        self.heard(sender, now)
        self._rows(first, packets[:, ddp.HEADER_BYTES :], bool(last & ddp.FLAG_PUSH), now)
        return True

    def _rows(self, first: int, data: np.ndarray, push: bool, now: float) -> None:
        """``_run`` for rows that follow each other from byte ``first``, all inside the display."""
        self.packets += data.shape[0]
        end = first + data.size
        if push:
            if self.push_mode:
                self._land()
            target = self._target(first, end)
            self.changed = True
            self.synced = False
            self.lo, self.hi = self.size, 0
            self.last_push = now
            self.pushes += 1
        elif self.push_mode:
            self._sync_pending()
            target = self.pending
            self.lo, self.hi = min(self.lo, first), max(self.hi, end)
        else:
            target = self._target(first, end)
            self.changed = True
        target[first:end].reshape(data.shape)[...] = data

    def _expected(self, head: bytes, count: int, width: int) -> bytes:
        """Header bytes 2-9 (data type, ID, offset, length) of ``count`` packets of ``width`` bytes one
        after the other from the offset in ``head``, the first packet's header (cached)."""
        key = (head[_FRAME_FIELDS], count, width)
        if self._fields_key != key:
            fields = np.tile(np.frombuffer(head[_FRAME_FIELDS], dtype=np.uint8), (count, 1))
            offsets = int.from_bytes(head[4:8], "big") + np.arange(count, dtype=np.int64) * width
            fields[:, 2:6] = offsets.astype(">u4").view(np.uint8).reshape(count, 4)
            self._fields, self._fields_key = fields.tobytes(), key
        return self._fields

    def _vouch(self, packets: np.ndarray) -> bool:
        """Every packet: version 1, no timecode, storage, reply or query flag, the first's data type, the
        display's ID, and a length field saying exactly what the datagram carries."""
        flags, kinds, ids = packets[:, 0], packets[:, 2], packets[:, 3]
        lengths = (packets[:, 8].astype(np.int64) << 8) | packets[:, 9]
        return bool(
            ((flags & ~np.uint8(ddp.FLAG_PUSH)) == ddp.VERSION_1).all()
            and (kinds == kinds[0]).all()
            and ((ids == ddp.DESTINATION_DISPLAY) | (ids == ddp.DESTINATION_ALL)).all()
            and (lengths == packets.shape[1] - ddp.HEADER_BYTES).all()
        )

    def _run(self, offsets: np.ndarray, data: np.ndarray, push: bool, now: float) -> None:
        """RGB data rows at ``offsets``, the last one pushing when ``push``."""
        past = offsets >= self.size
        if past.any():
            where = f"offset {int(offsets[past][0])} past the display's {self.size} bytes"
            self.drop(PAST_THE_END, where, int(past.sum()))
            offsets, data = offsets[~past], data[~past]
        self.packets += offsets.size
        if push:
            if self.push_mode:
                self._land()  # what waited lands first; this run comes after it
            self._scatter(self._fresh(), offsets, data)
            self.changed = True
            self.synced = False  # pending is refreshed from the image when data next waits in it
            self.lo, self.hi = self.size, 0
            self.last_push = now
            self.pushes += 1
        elif self.push_mode:
            self._sync_pending()
            lo, hi = self._scatter(self.pending, offsets, data)
            self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)
        else:
            self._scatter(self._fresh(), offsets, data)
            self.changed = True

    def _scatter(self, target: np.ndarray, offsets: np.ndarray, data: np.ndarray) -> tuple[int, int]:
        """Rows of ``data`` at ``offsets`` in ``target`` (cut at its end); the range written."""
        if not offsets.size:
            return self.size, 0
        width = data.shape[1]
        first = int(offsets[0])
        if offsets.size == 1 or bool((np.diff(offsets) == width).all()):
            end = min(first + offsets.size * width, self.size)
            whole = (end - first) // width  # rows that fit whole: one strided copy, no flattening first
            target[first : first + whole * width].reshape(whole, width)[...] = data[:whole]
            if first + whole * width < end:
                target[first + whole * width : end] = data[whole, : end - first - whole * width]
            return first, end
        lo, hi = self.size, 0
        for offset, row in zip(offsets.tolist(), data, strict=True):
            end = min(offset + width, self.size)
            target[offset:end] = row[: end - offset]
            lo, hi = min(lo, offset), max(hi, end)
        return lo, hi

    def _sync_pending(self) -> None:
        """``pending`` is the image plus what waits: made so before data first waits there after a push."""
        if not self.synced:
            self.pending[:] = self._fresh()
            self.synced = True

    def _land(self) -> None:
        if self.hi > self.lo:
            self._fresh()[self.lo : self.hi] = self.pending[self.lo : self.hi]
            self.changed = True
        self.lo, self.hi = self.size, 0

    def tick(self, now: float) -> None:
        """No push for 2.5 s: what waits lands, and data lands at once again (a sender without pushes)."""
        if self.push_mode and now - self.last_push > SILENCE:
            self._land()
            self.last_push = -1.0
