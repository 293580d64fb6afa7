"""Many UDP datagrams a system call: recvmmsg(2) through ctypes into one preallocated buffer, with UDP GRO.

A frame of the dome is 610 E1.31 packets or 216 DDP packets; one ``recv`` a datagram costs about 2 us of
Python each, more than the kernel's own work. ``BatchReader.read`` takes up to ``slots`` datagrams in one
call into row ``i`` of ``buffer`` (``slot_bytes`` apart) and hands back their lengths, senders and GRO
segment sizes as numpy arrays: the receivers then parse the whole run of equal-length packets at once.

UDP GRO (``UDP_GRO``, Linux 5.0+): a sender using segmentation offload (the daemon's own network outputs,
``UDP_SEGMENT``) hands the kernel one buffer of equal-sized packets; with GRO on, the receiver gets it
whole, one datagram holding up to 64 packets of ``gso`` bytes (the last may be shorter). Slots are
64 KiB so such a datagram fits; the buffer is allocated lazily by the kernel (calloc'd pages are only
made resident when written), so 1,024 slots of small datagrams cost about 4 MiB of memory, not 64 (the
first page of each slot is touched at the start: faulting them in during the first burst took ~90 ms).

Everything here is Linux; ``BatchReader.make`` returns None where recvmmsg or ctypes is missing, and the
input then reads one datagram at a time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import socket
import sys

import numpy as np

SLOTS = 1024  # datagrams a call: a whole frame of the dome (610 E1.31 or 216 DDP packets)
SLOT_BYTES = 1 << 16  # a GRO datagram (64 packets) or the largest UDP datagram
NAME_BYTES = 28  # sizeof(struct sockaddr_in6), which also holds a sockaddr_in
SOL_UDP = 17
UDP_GRO = 104  # <linux/udp.h>
MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20
MAX_SENDERS = 256  # sender addresses whose text form is kept
PAGE = 4096  # bytes of a memory page: the first one of each slot is made resident at the start


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("len", ctypes.c_uint)]


_SIZE_T = np.dtype(f"u{ctypes.sizeof(ctypes.c_size_t)}")
_CMSG_HEADER = ctypes.sizeof(ctypes.c_size_t) + 8  # cmsg_len, cmsg_level, cmsg_type
_CMSG_ALIGN = ctypes.sizeof(ctypes.c_size_t)
CONTROL_BYTES = 2 * (_CMSG_HEADER + _CMSG_ALIGN)  # room for two small control messages
_GRO_CONTROL = _CMSG_HEADER + _CMSG_ALIGN  # CMSG_SPACE(sizeof(int)): the UDP_GRO message alone


_MMSG_DTYPE = np.dtype(
    {
        "names": ["namelen", "controllen", "flags", "len"],
        "formats": [
            np.dtype("u4"),
            _SIZE_T,
            np.dtype("i4"),
            np.dtype("u4"),
        ],
        "offsets": [
            _MMsgHdr.hdr.offset + _MsgHdr.namelen.offset,
            _MMsgHdr.hdr.offset + _MsgHdr.controllen.offset,
            _MMsgHdr.hdr.offset + _MsgHdr.flags.offset,
            _MMsgHdr.len.offset,
        ],
        "itemsize": ctypes.sizeof(_MMsgHdr),
    }
)


def _word(field: ctypes._CField) -> int:  # type: ignore[name-defined]
    """The 32-bit word of ``_MMsgHdr`` where a ``_MsgHdr`` field starts."""
    return (_MMsgHdr.hdr.offset + field.offset) // 4


# What the kernel writes back into each entry is its tail, from msg_controllen to the end: controllen,
# flags, len (and padding, never written, so zero). A plain datagram's tail is all zero before len.
_TAIL = _word(_MsgHdr.controllen)
_TAIL_BYTES = ctypes.sizeof(_MMsgHdr) - _TAIL * 4
_PLAIN_PREFIX = bytes(_MMsgHdr.len.offset - _TAIL * 4)  # controllen and flags zero: no GRO, not cut short
_LEN_WORD = _MMsgHdr.len.offset // 4 - _TAIL


def _libc_recvmmsg() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.recvmmsg
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    fn.restype = ctypes.c_int
    return fn


_RECVMMSG = _libc_recvmmsg()


def enable_gro(sock: socket.socket) -> bool:
    """Ask for UDP GRO on ``sock``; False where the kernel has none."""
    try:
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)
    except OSError:
        return False
    return True


class BatchReader:
    """recvmmsg into ``buffer`` (``slots`` rows of ``slot_bytes``); see the module's docstring."""

    def __init__(self, sock: socket.socket, slots: int = SLOTS, slot_bytes: int = SLOT_BYTES) -> None:
        if _RECVMMSG is None:
            raise OSError(errno.ENOSYS, "recvmmsg is not available")
        self.fd = sock.fileno()
        self.slots, self.slot_bytes = slots, slot_bytes
        self.buffer = np.zeros((slots, slot_bytes), dtype=np.uint8)
        self.names = np.zeros((slots, NAME_BYTES), dtype=np.uint8)
        self.controls = np.zeros((slots, CONTROL_BYTES), dtype=np.uint8)
        self._iov = (_IoVec * slots)()
        self._msgs = (_MMsgHdr * slots)()
        base, names, controls = (a.ctypes.data for a in (self.buffer, self.names, self.controls))
        for i in range(slots):
            self._iov[i].base, self._iov[i].len = base + i * slot_bytes, slot_bytes
            hdr = self._msgs[i].hdr
            hdr.name, hdr.namelen = names + i * NAME_BYTES, NAME_BYTES
            hdr.iov, hdr.iovlen = ctypes.addressof(self._iov[i]), 1
            hdr.control, hdr.controllen = controls + i * CONTROL_BYTES, CONTROL_BYTES
        self.meta = np.frombuffer(self._msgs, dtype=_MMSG_DTYPE)  # namelen, controllen, flags, len of each
        # the same as 32-bit words, for the per-call work in as few numpy steps as possible: the words of
        # namelen, controllen (its low half: it never exceeds CONTROL_BYTES), flags and len
        self._words = np.frombuffer(self._msgs, dtype=np.uint32).reshape(slots, -1)
        low = 0 if sys.byteorder == "little" else _SIZE_T.itemsize // 4 - 1
        self._check_columns = [_word(_MsgHdr.namelen), _word(_MsgHdr.controllen) + low]
        self._check_columns += [_word(_MsgHdr.flags), _MMsgHdr.len.offset // 4]
        self._tails = self._words[:, _TAIL:]  # what the kernel writes back: see _TAIL
        # the kernel writes each used entry's controllen (the bytes it used); namelen it sets to the
        # socket family's address length, which it then keeps: only controllen is set again each call
        self._control_lengths = self.meta["controllen"]
        self._used = slots  # entries the last call may have changed
        self._senders: dict[bytes, tuple[str, int]] = {}
        self._stage = np.zeros(0, dtype=np.uint8)  # GRO packets laid end to end (grows to what a burst needs)
        self.buffer[:, ::PAGE] = 0  # fault every slot's first page in now, not during the first bursts
        self._msgs_address = ctypes.addressof(self._msgs)

    @classmethod
    def make(cls, sock: socket.socket, slots: int = SLOTS, slot_bytes: int = SLOT_BYTES) -> BatchReader | None:
        try:
            return cls(sock, slots, slot_bytes)
        except OSError:
            return None

    def read(self) -> int:
        """Datagrams now in rows 0 .. n-1 (0: none waiting); OSError for a socket error."""
        self._control_lengths[: self._used] = CONTROL_BYTES  # the kernel wrote over them
        n = _RECVMMSG(self.fd, self._msgs_address, self.slots, MSG_DONTWAIT, None)  # type: ignore[misc]
        self._used = max(n, 0)
        if n < 0:
            code = ctypes.get_errno()
            if code in (errno.EAGAIN, errno.EINTR):
                return 0
            raise OSError(code, os.strerror(code))
        return n

    def lengths(self, n: int) -> np.ndarray:
        return self.meta["len"][:n]

    def truncated(self, n: int) -> np.ndarray:
        return (self.meta["flags"][:n] & MSG_TRUNC) != 0

    def gso(self, n: int) -> np.ndarray:
        """Each datagram's GRO segment size (0: a plain datagram), from its control messages."""
        out = np.zeros(n, dtype=np.int64)
        has = self.meta["controllen"][:n] >= _CMSG_HEADER + 4
        if not has.any():
            return out
        controls = self.controls[:n]
        for at in (0, _CMSG_HEADER + _CMSG_ALIGN):  # the first and the second control message
            level = controls[:, at + _CMSG_ALIGN : at + _CMSG_ALIGN + 4].copy().view(np.int32)[:, 0]
            kind = controls[:, at + _CMSG_ALIGN + 4 : at + _CMSG_ALIGN + 8].copy().view(np.int32)[:, 0]
            value = controls[:, at + _CMSG_HEADER : at + _CMSG_HEADER + 4].copy().view(np.int32)[:, 0]
            inside = self.meta["controllen"][:n] >= at + _CMSG_HEADER + 4
            hit = has & inside & (level == SOL_UDP) & (kind == UDP_GRO)
            out[hit] = value[hit]
        return out

    def plain_run(self, n: int) -> tuple[int, int]:
        """A sender's frame: (the length of datagrams 0 .. n-2, the length of datagram n-1) when all are
        plain (no GRO, not cut short) and from one sender, and all but the last equally long (the last
        may be shorter or longer: E1.31's last universe); (0, 0) when they are not. Compared as bytes: a
        wake-up runs cold, where every numpy step costs several microseconds."""
        tails = self._tails[:n]
        written = tails.tobytes()
        first = written[:_TAIL_BYTES]
        body = (n - 1) * _TAIL_BYTES
        if not first.startswith(_PLAIN_PREFIX) or written[:body] != first * (n - 1):
            return 0, 0
        if not written.startswith(_PLAIN_PREFIX, body):
            return 0, 0
        names = self.names[:n].tobytes()
        if names != names[:NAME_BYTES] * n:
            return 0, 0
        return int(tails[0, _LEN_WORD]), int(tails[n - 1, _LEN_WORD])

    def gro_run(self, n: int) -> int:
        """The GRO segment size when datagrams 0 .. n-1 are all GRO datagrams of whole segments of that
        one size (a segmentation-offload sender's frame) from one sender; 0 when they are not."""
        meta = self._words[:n, self._check_columns]  # namelen, controllen, flags, len
        first = meta[0]
        if first[1] != _GRO_CONTROL or first[2] or not (meta[:, :3] == first[:3]).all():
            return 0
        controls = self.controls[:n, :_GRO_CONTROL]
        head = controls[0]
        level = int(head[_CMSG_ALIGN : _CMSG_ALIGN + 4].view(np.int32)[0])
        kind = int(head[_CMSG_ALIGN + 4 : _CMSG_ALIGN + 8].view(np.int32)[0])
        size = int(head[_CMSG_HEADER : _CMSG_HEADER + 4].view(np.int32)[0])
        if level != SOL_UDP or kind != UDP_GRO or size <= 0 or not (controls == head).all():
            return 0
        names = self.names[:n]
        if (meta[:, 3] % size).any() or not (names == names[0]).all():
            return 0
        return size

    def segments(self, n: int, size: int) -> np.ndarray:
        """The packets of GRO datagrams 0 .. n-1 (see gro_run) as one (packets, size) array, in order."""
        lengths = self._words[:n, self._check_columns[3]].tolist()
        total = sum(lengths) // size
        if self._stage.size < total * size:
            self._stage = np.zeros(total * size, dtype=np.uint8)
        out = self._stage[: total * size].reshape(total, size)
        at = 0
        for i, length in enumerate(lengths):
            rows = length // size
            out[at : at + rows] = self.buffer[i, :length].reshape(rows, size)
            at += rows
        return out

    def sender(self, i: int) -> tuple[str, int]:
        """The address datagram ``i`` came from, as socket.recvfrom gives it (host, port)."""
        key = self.names[i].tobytes()
        found = self._senders.get(key)
        if found is None:
            found = self._address(i)
            if len(self._senders) >= MAX_SENDERS:
                self._senders.clear()
            self._senders[key] = found
        return found

    def _address(self, i: int) -> tuple[str, int]:
        raw = self.names[i]
        family = int(raw[:2].view(np.uint16)[0])  # sa_family_t is in host order
        port = int(raw[2]) << 8 | int(raw[3])
        if family == socket.AF_INET6:
            return socket.inet_ntop(socket.AF_INET6, raw[8:24].tobytes()), port
        return socket.inet_ntop(socket.AF_INET, raw[4:8].tobytes()), port

    def same_sender(self, n: int) -> bool:
        """Every datagram of rows 0 .. n-1 came from the same address and port."""
        names = self.names[:n]
        return bool((names == names[0]).all())
