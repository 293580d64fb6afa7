"""Network inputs ([[inputs]]): DDP, E1.31 (sACN), Art-Net and OpenPixelControl as sources of the mixer.

Each input is a thin shell around a pure receiver (skyscreen_hw.protocols.*_receiver, opc): the shell
owns the sockets, the allow-list and the counters; the receiver owns the protocol's rules and the image
(the display's bytes as the senders define them now; only whole, synchronized states land there). After
each drained burst of datagrams (not per packet) a changed image is copied into the source's back buffer
and delivered to the mixer: one copy. DDP's receiver builds its image in the back buffer itself (it is
lent the next one at each delivery): no copy between the packets and the mixer.

Threads: the daemon's network runtime (its one asyncio loop) opens and closes every input's sockets and
runs OPC's TCP connections and timer. Each UDP input (DDP, E1.31, Art-Net) reads its sockets on a receive
thread of its own (skyscreen_hw.sources.receive_thread, named after the input): poll, recvmmsg, parse,
deliver, and its timer, with no event-loop round trip a frame. Only that thread changes the receiver;
STATUS reads the counters from other threads.

``address = "frame"``: the channels are the frame's bytes (row-major RGB, mapped through the layout like
the shared frame); ``address = "leds"``: the channels are LEDs in wiring order (what xLights, FPP and WLED
senders expect). Who may send: ``bind`` (127.0.0.1 unless configured) and ``allow`` (networks, loopback
unless configured); datagrams and connections from elsewhere are counted and dropped.

Every bad packet is counted by kind (STATUS) and the first of each kind is logged once per input.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import ipaddress
import itertools
import logging
import os
import socket
import struct
import time
from typing import Any

import numpy as np

from skyscreen_hw.config import (
    ArtnetInputConfig,
    Config,
    DdpInputConfig,
    E131InputConfig,
    InputConfig,
    OpcInputConfig,
)
from skyscreen_hw.errors import SkyscreenError
from skyscreen_hw.mixer import FRAME, Mixer, Source
from skyscreen_hw.net.runtime import NetworkRuntime, describe_address
from skyscreen_hw.protocols import artnet, e131, opc
from skyscreen_hw.protocols.artnet_receiver import ArtnetReceiver
from skyscreen_hw.protocols.ddp_receiver import DdpReceiver
from skyscreen_hw.protocols.e131_receiver import E131Receiver
from skyscreen_hw.protocols.universe_receiver import MALFORMED, NOT_ALLOWED, OVERRUN, Receiver, UniversePlan
from skyscreen_hw.sources.receive_thread import ReceiveThread
from skyscreen_hw.sources.udp_input import SLOT_BYTES, BatchReader, enable_gro

TICK = 0.25  # seconds between timer runs: sync loss, rates, slow OPC clients, receive-buffer overruns
RATE_WINDOW = 4  # timer runs the packets/s and frames/s figures span (1 s)
RECEIVE_BUFFER = 8 << 20  # bytes asked for SO_RCVBUF: a few frames of the dome (the kernel caps it)
MAX_DATAGRAM = 65535
BURST = 4096  # datagrams read in one go before the receive thread runs its timer and polls again
DRAIN_DELAY = 0.001  # seconds from a burst's first datagram to draining it whole (senders take ~1 ms a frame)
OVERRUN_TICKS, OVERRUN_WINDOW = 3, 2.0  # overflows in 3 timer runs within 2 s: stop waiting for bursts' ends
DEFER_BUFFER = 2 << 20  # receive buffer (as the kernel counts it) that holds a frame of the dome while waiting
ALLOW_CACHE = 1024  # sender addresses whose verdict is remembered
START_TIMEOUT = 10.0
IGMP_MEMBERSHIPS = "/proc/sys/net/ipv4/igmp_max_memberships"
MAX_MEMBERSHIP_SOCKETS = 64  # extra sockets holding multicast groups beyond the per-socket limit

OPC_MAX_CLIENTS = 16
OPC_MESSAGE_TIMEOUT = 10.0  # seconds a client may take over one message before it is disconnected
OPC_READ_LIMIT = 1 << 16  # bytes asyncio reads at once from a client
SLOW = "too slow"
TOO_MANY_CLIENTS = "too many clients"

SO_MEMINFO, MEMINFO_FIELDS, MEMINFO_DROPS = 55, 9, 8  # <linux/sock_diag.h>: SK_MEMINFO_DROPS is the 9th
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux <linux/in.h>; Python 3.12 names it


class InputError(SkyscreenError):
    """An [[inputs]] entry cannot start (its address is taken, its universes do not fit)."""


# -- who may send ------------------------------------------------------------------------------------


class AllowList:
    """``allow`` networks; verdicts cached per sender address (bounded)."""

    def __init__(self, networks: tuple[str, ...]) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]
        self._cache: dict[str, bool] = {}

    def __call__(self, host: str) -> bool:
        verdict = self._cache.get(host)
        if verdict is None:
            verdict = self._check(host)
            if len(self._cache) >= ALLOW_CACHE:
                self._cache.clear()
            self._cache[host] = verdict
        return verdict

    def _check(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == n.version and ip in n for n in self.networks)


# -- the source every input is ------------------------------------------------------------------------


class InputSource(Source):
    """One [[inputs]] entry in the mixer: counters, rates, the log-once rule and delivery."""

    def __init__(
        self,
        config: InputConfig,
        number: int,
        shape: tuple[int, ...],
        receiver: Receiver,
        mixer: Mixer,
        runtime: NetworkRuntime,
        log: logging.Logger,
    ) -> None:
        super().__init__(f"{config.type} input #{number}", shape, config.priority, config.timeout, config.address)
        self.kind = f"{config.type} input"
        self.config = config
        self.key = f"[[inputs]] #{number} ({config.type})"
        self.receiver = receiver
        if receiver.lends_image:  # it builds each picture in the back buffer itself
            receiver.rebase(self.back.reshape(-1), self.front.reshape(-1))
        self.mixer = mixer
        self.runtime = runtime
        self.log = log
        self.allowed = AllowList(config.allow)
        self.where = f"{config.bind}:{config.port}"
        self.not_allowed = 0
        self.overruns = 0
        self._history: collections.deque[tuple[float, int, int]] = collections.deque(maxlen=RATE_WINDOW + 1)
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def size(self) -> int:
        return self.receiver.size

    # -- counters -------------------------------------------------------------------------------------

    def refuse(self, host: str) -> None:
        """A datagram or connection from a sender ``allow`` does not name."""
        self.not_allowed += 1
        if self.not_allowed == 1:
            self.log.warning(
                "%s: dropping packets from %s, which %s allow does not name (add its network to take them;"
                " counted in STATUS)",
                self.name,
                host,
                self.key,
            )

    def dropped(self) -> dict[str, int]:
        """Dropped packets by kind (malformed, out of sequence, not allowed, receive buffer overrun, ...)."""
        counts = dict(self.receiver.dropped)
        if self.not_allowed:
            counts[NOT_ALLOWED] = self.not_allowed
        if self.overruns:
            counts[OVERRUN] = self.overruns
        return counts

    def rates(self) -> tuple[float, float]:
        """(packets/s, frames/s) over the last second."""
        h = self._history
        if len(h) < 2 or h[-1][0] <= h[0][0]:
            return 0.0, 0.0
        dt = h[-1][0] - h[0][0]
        return (h[-1][1] - h[0][1]) / dt, (h[-1][2] - h[0][2]) / dt

    def figures(self, now: float) -> dict[str, Any]:
        """Plain values for the daemon's report (STATUS, /status)."""
        packets, frames = self.rates()
        return {
            "listen": self.where,
            "address": self.address,
            "packets": self.receiver.packets,
            "packets_per_second": round(packets, 1),
            "frames_per_second": round(frames, 1),
            "senders": self.receiver.senders_live(now),
            "senders_seen": len(self.receiver.senders),
            "dropped": self.dropped(),
        }

    def describe(self, now: float) -> str:
        packets, frames = self.rates()
        state = "live" if self.live(now) else "idle"
        text = f"{self.name} {self.where} ({state}, {self.receiver.senders_live(now)} senders"
        if packets:
            text += f", {packets:.0f} packets/s, {frames:.0f} frames/s"
        dropped = self.dropped()
        if dropped:
            text += f", dropped {sum(dropped.values())}: " + ", ".join(f"{n} {k}" for k, n in dropped.items())
        return text + ")"

    # -- delivery -------------------------------------------------------------------------------------

    def after_burst(self, now: float) -> None:
        """Log each new kind of drop once, run the receiver's timers, deliver a changed image."""
        receiver = self.receiver
        if receiver.notices:
            for kind, detail in receiver.notices:
                self.log.warning("%s: dropping %s packets: %s (counted in STATUS)", self.name, kind, detail)
            receiver.notices.clear()
        receiver.tick(now)
        if not receiver.take():
            return
        if receiver.lends_image:  # the picture is in the back buffer already: deliver, lend the next one
            self.mixer.deliver(self)
            receiver.rebase(self.back.reshape(-1), self.front.reshape(-1))
            return
        back = self.back.reshape(-1)  # a view: the buffers swap at each delivery
        np.copyto(back, receiver.image[: back.size])
        self.mixer.deliver(self)

    # -- the timer (OPC: on the loop; UDP: on the receive thread) ------------------------------------------

    def tick(self, now: float) -> None:
        """Every TICK seconds: the kind's checks, the rates' history, the receiver's timers and a delivery."""
        self.timer(now)
        self._history.append((now, self.receiver.packets, self.stats.frames))
        self.after_burst(now)

    def _start_timer(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(TICK, self._on_timer)

    def _on_timer(self) -> None:
        if self._closed:
            return
        self.tick(time.monotonic())
        self._start_timer()

    def timer(self, now: float) -> None:
        """What a kind of input checks a few times a second (overruns, slow clients)."""

    def start(self) -> None:
        try:
            self.runtime.call(self._open(), timeout=START_TIMEOUT)
        except SkyscreenError:
            raise
        except OSError as exc:
            hints = {
                errno.EADDRINUSE: f"another program uses port {self.config.port}: choose another port",
                errno.EADDRNOTAVAIL: "bind: this machine has no such address (127.0.0.1, 0.0.0.0 or one of its own)",
                errno.EACCES: "ports below 1024 need privileges: choose another port",
            }
            hint = hints.get(exc.errno or 0, "check bind and port")
            raise InputError(f"{self.key}: cannot listen on {self.where}: {exc.strerror or exc} ({hint})") from None
        self.runtime.register(self.name, self._close)
        self.log.info("%s: listening on %s, %s", self.name, self.where, self.coverage())

    def coverage(self) -> str:
        return f"{self.size} bytes ({self.address})"

    def close(self) -> None:
        self.runtime.unregister(self._close)
        if self.runtime.running:
            with contextlib.suppress(SkyscreenError):
                self.runtime.call(self._close(), timeout=START_TIMEOUT)
        self._closed = True

    async def _open(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


# -- UDP inputs -----------------------------------------------------------------------------------------


def _udp_socket(host: str, port: int, reuse: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
            if option is None:
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, RECEIVE_BUFFER)
                break
            except OSError:  # SO_RCVBUFFORCE needs CAP_NET_ADMIN; SO_RCVBUF is capped by net.core.rmem_max
                continue
        sock.setblocking(False)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def socket_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped on ``sock`` (receive buffer full): SO_MEMINFO's drops (one system
    call, Linux 4.12+), else /proc/net/udp's drops column."""
    try:
        info = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, MEMINFO_FIELDS * 4)
        if len(info) >= MEMINFO_FIELDS * 4:
            return int(struct.unpack_from(f"{MEMINFO_FIELDS}I", info)[MEMINFO_DROPS])
    except OSError:
        pass
    try:
        inode = os.fstat(sock.fileno()).st_ino
        table = "/proc/net/udp6" if sock.family == socket.AF_INET6 else "/proc/net/udp"
        with open(table, encoding="ascii") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 12 and fields[9] == str(inode):
                    return int(fields[-1])
    except (OSError, ValueError):
        return None
    return None


class UdpInput(InputSource):
    """A UDP input: its receive thread drains its socket(s) when readable and hands each allowed datagram
    to the receiver; the loop only opens and closes the sockets."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sockets: list[socket.socket] = []  # sockets read (the first is the configured one)
        self.memberships: list[socket.socket] = []  # sockets that only hold multicast groups
        self._buffer = bytearray(MAX_DATAGRAM)
        self._view = memoryview(self._buffer)
        self._drops_base = 0
        self.port = 0
        self.reader: BatchReader | None = None
        self._defer = False  # wait DRAIN_DELAY after the first datagram, then drain the burst at once
        self.thread: ReceiveThread | None = None
        self._overrun_ticks: collections.deque[float] = collections.deque(maxlen=OVERRUN_TICKS)

    batched = False  # the receiver has batch(): read with recvmmsg, parse runs of packets at once

    async def _open(self) -> None:
        try:
            first = _udp_socket(self.config.bind, self.config.port, reuse=self.reuse_address)
            self.sockets.append(first)
            self.port = first.getsockname()[1]
            self.where = describe_address(first.family, first.getsockname())
            self.open_more()
            if self.batched:
                enable_gro(first)
                self.reader = BatchReader.make(first)
            self._defer = first.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= DEFER_BUFFER
            self._drops_base = socket_drops(first) or 0
            self.thread = ReceiveThread(self.name, self.sockets, self._on_readable, self.tick, TICK, self.log)
            self.thread.start()
        except BaseException:
            await self._close()
            raise

    reuse_address = False

    def open_more(self) -> None:
        """More sockets for a kind of input (E1.31 multicast)."""

    async def _close(self) -> None:
        await super()._close()
        thread, self.thread = self.thread, None
        if thread is not None and not thread.stop():
            self.log.warning("%s: the receive thread did not end; its sockets stay open", self.name)
            return
        self.reader = None
        for sock in self.sockets:
            sock.close()
        for sock in self.memberships:
            sock.close()
        self.sockets, self.memberships = [], []

    def _on_readable(self, sock: socket.socket) -> None:
        """On the receive thread: ``sock`` has datagrams waiting."""
        reader, thread = self.reader, self.thread
        if sock is not self.sockets[0]:
            self._read_each(sock)
            return
        # the burst goes on arriving: take it whole in a moment (one delivery a frame, not a torn one)
        if self._defer and thread is not None and not thread.pause(DRAIN_DELAY):
            return  # closing
        if reader is not None:
            self._drain(reader, sock)
        else:
            self._read_each(sock)

    def _drain(self, reader: BatchReader, sock: socket.socket) -> None:
        """Every datagram waiting, many a system call, parsed run by run."""
        now = time.monotonic()
        try:
            for _ in range(BURST // reader.slots + 1):
                n = reader.read()
                if n:
                    self._runs(reader, n, now, sock)
                if n < reader.slots:
                    break
        except OSError as exc:  # an ICMP error for a reply we sent: nothing more to read now
            self.log.debug("%s: %s", self.name, exc)
        self.after_burst(now)

    def _runs(self, reader: BatchReader, n: int, now: float, sock: socket.socket) -> None:
        """Datagrams 0 .. n-1 of ``reader`` to the receiver as runs of equal-length packets, in order."""
        length, last = reader.plain_run(n)
        if length:  # the usual: a sender's frame, packets alike but maybe the last (E1.31's last universe)
            sender = reader.sender(0)
            if not self.allowed(sender[0]):
                for _ in range(n):
                    self.refuse(sender[0])
            elif last == length:
                self._batch(reader.buffer[:n, :length], sender, now, sock)
            else:
                self._batch(reader.buffer[: n - 1, :length], sender, now, sock)
                self._batch(reader.buffer[n - 1 : n, :last], sender, now, sock)
            return
        size = reader.gro_run(n)
        if size:  # a segmentation-offload sender's frame: its packets end to end, in order
            sender = reader.sender(0)
            if self.allowed(sender[0]):
                self._batch(reader.segments(n, size), sender, now, sock)
            else:
                for _ in range(n):
                    self.refuse(sender[0])
            return
        lengths, gso = reader.lengths(n).astype(np.int64), reader.gso(n)
        truncated = reader.truncated(n)
        same = reader.same_sender(n)
        keys = lengths * (SLOT_BYTES + 1) + gso
        if not same:
            keys = keys * 3 + np.arange(n)  # one run a datagram when senders differ
        cuts = [0, *(np.flatnonzero(np.diff(keys)) + 1).tolist(), n]
        for a, b in itertools.pairwise(cuts):
            sender = reader.sender(a)
            if not self.allowed(sender[0]):
                for _ in range(b - a):
                    self.refuse(sender[0])
                continue
            if truncated[a:b].any():
                self.receiver.drop(MALFORMED, "a datagram larger than 64 KiB, cut short", b - a)
                continue
            length, size = int(lengths[a]), int(gso[a])
            if not size or length <= size:
                self._batch(reader.buffer[a:b, :length], sender, now, sock)
                continue
            full, tail = length // size * size, length % size
            if tail:
                for i in range(a, b):  # each super-datagram's short last packet comes after its others
                    self._batch(reader.buffer[i, :full].reshape(-1, size), sender, now, sock)
                    self._batch(reader.buffer[i, full:length].reshape(1, -1), sender, now, sock)
            else:
                rows = [reader.buffer[i, :full].reshape(-1, size) for i in range(a, b)]
                self._batch(rows[0] if len(rows) == 1 else np.concatenate(rows), sender, now, sock)

    def _batch(self, packets: np.ndarray, sender: Any, now: float, sock: socket.socket) -> None:
        receiver: Any = self.receiver
        receiver.batch(packets, sender, now)
        for reply in getattr(receiver, "replies", ()):
            with contextlib.suppress(OSError):
                sock.sendto(reply, sender)
        if getattr(receiver, "replies", None):
            receiver.replies.clear()

    def _read_each(self, sock: socket.socket) -> None:
        """One datagram a call (where recvmmsg is missing, and the sockets other than the first)."""
        recv = sock.recvfrom_into
        view, allowed, handle = self._view, self.allowed, self.handle
        now = time.monotonic()
        for _ in range(BURST):
            try:
                n, sender = recv(self._buffer)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ICMP errors from replies: nothing to read this time
                self.log.debug("%s: %s", self.name, exc)
                break
            if not allowed(sender[0]):
                self.refuse(sender[0])
                continue
            handle(view[:n], sender, now, sock)
        self.after_burst(now)

    def handle(self, data: memoryview, sender: Any, now: float, sock: socket.socket) -> None:
        """One allowed datagram from ``sender`` that arrived on ``sock``."""
        raise NotImplementedError

    def timer(self, now: float) -> None:
        if self.sockets:
            drops = socket_drops(self.sockets[0])
            if drops is not None and drops - self._drops_base > self.overruns:
                if not self.overruns:
                    self.log.warning(
                        "%s: the receive buffer overflowed: datagrams lost (raise net.core.rmem_max; counted"
                        " in STATUS)",
                        self.name,
                    )
                self.overruns = drops - self._drops_base
                self._overrun_ticks.append(now)
                if self._defer and sum(1 for t in self._overrun_ticks if now - t < OVERRUN_WINDOW) >= OVERRUN_TICKS:
                    self._defer = False  # bursts keep overflowing the buffer: no more waiting for their end


class DdpInput(UdpInput):
    batched = True

    def __init__(self, *args: Any, status: dict[str, object], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.status = status

    def handle(self, data: memoryview, sender: Any, now: float, sock: socket.socket) -> None:
        reply = self.receiver.datagram(data, sender, now)  # type: ignore[attr-defined]
        if reply is not None:
            with contextlib.suppress(OSError):
                sock.sendto(reply, sender)


class E131Input(UdpInput):
    """E1.31: unicast on ``bind``; multicast groups 239.255.hi.lo of every universe taken."""

    batched = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.joined: set[int] = set()  # universes and sync addresses whose groups are joined
        self._holder: socket.socket | None = None  # the socket taking the next memberships
        self._wildcard = False

    def coverage(self) -> str:
        plan = self.receiver.plan  # type: ignore[attr-defined]
        return f"universes {plan.first}-{plan.last}, {plan.per} channels each ({self.address})"

    def handle(self, data: memoryview, sender: Any, now: float, sock: socket.socket) -> None:
        self.receiver.datagram(data, sender, now)  # type: ignore[attr-defined]

    @property
    def reuse_address(self) -> bool:  # type: ignore[override]
        return True

    def open_more(self) -> None:
        """Join the universes' groups: on the wildcard socket itself, else on a second socket bound to
        the wildcard (multicast reaches only sockets bound to it) joined on ``bind``'s interface."""
        first = self.sockets[0]
        if first.family != socket.AF_INET:
            return  # IPv6 multicast (ff18::83:00:hi:lo) is not joined: unicast only
        bind = self.config.bind
        self._wildcard = bind in ("0.0.0.0", "")
        if self._wildcard:
            self._holder = first
        else:
            self._holder = _udp_socket("0.0.0.0", self.port, reuse=True)
            self.sockets.append(self._holder)
            # only multicast on this one: unicast to other addresses of this machine is not ours
            self._holder.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        plan = self.receiver.plan  # type: ignore[attr-defined]
        for universe in range(plan.first, plan.last + 1):
            self.join(universe)

    def join(self, universe: int) -> None:
        """Join the multicast group of ``universe`` (or of a synchronization address); InputError if not."""
        if self._holder is None or universe in self.joined:
            return
        interface = socket.inet_aton("0.0.0.0" if self._wildcard else self.config.bind)
        group = struct.pack("4s4s", socket.inet_aton(e131.multicast_group(universe)), interface)
        try:
            self._holder.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group)
        except OSError as exc:
            if exc.errno != errno.ENOBUFS or len(self.memberships) >= MAX_MEMBERSHIP_SOCKETS:
                raise InputError(
                    f"{self.key}: cannot join multicast group {e131.multicast_group(universe)} on"
                    f" {self.config.bind}: {exc.strerror} (raise {IGMP_MEMBERSHIPS}, or send unicast)"
                ) from None
            # the per-socket limit (igmp_max_memberships, 20 by default): another socket holds the next
            # groups; the receiving socket gets their datagrams too (IP_MULTICAST_ALL, on by default)
            self._holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.memberships.append(self._holder)
            self._holder.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group)
        self.joined.add(universe)

    def after_burst(self, now: float) -> None:
        named = self.receiver.sync_addresses  # type: ignore[attr-defined]
        if self._holder is not None and not named <= self.joined:
            for address in named - self.joined:
                try:
                    self.join(address)
                except InputError as exc:
                    self.log.warning("%s: %s", self.name, exc)
                    self.joined.add(address)  # said once
        super().after_burst(now)

    def _on_readable(self, sock: socket.socket) -> None:
        if sock is self.sockets[0]:
            super()._on_readable(sock)
            return
        now = time.monotonic()
        for _ in range(BURST):  # the multicast socket: recvmsg, to see where each datagram went
            try:
                data, ancillary, _flags, sender = sock.recvmsg(MAX_DATAGRAM, 64)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if not _to_multicast(ancillary):
                continue
            if not self.allowed(sender[0]):
                self.refuse(sender[0])
                continue
            self.receiver.datagram(data, sender, now)  # type: ignore[attr-defined]
        self.after_burst(now)


def _to_multicast(ancillary: list[tuple[int, int, bytes]]) -> bool:
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
            return ipaddress.IPv4Address(data[8:12]).is_multicast
    return False


class ArtnetInput(UdpInput):
    """Art-Net: ArtDmx and ArtSync in, ArtPollReplies out to whoever polls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._local: dict[str, str] = {}

    def coverage(self) -> str:
        plan = self.receiver.plan  # type: ignore[attr-defined]
        return f"port-addresses {plan.first}-{plan.last}, {plan.per} channels each ({self.address})"

    def handle(self, data: memoryview, sender: Any, now: float, sock: socket.socket) -> None:
        receiver: ArtnetReceiver = self.receiver  # type: ignore[assignment]
        replies = receiver.datagram(data, sender, now, self._local_ip(sender[0]))
        # ArtPollReply goes to the poller's address on the Art-Net port (Art-Net 4), and to the port it
        # polled from when that is another one (discovery tools on a port of their own)
        destinations = {(sender[0], artnet.PORT), (sender[0], sender[1])} if replies else set()
        for reply in replies:
            for to in destinations:
                with contextlib.suppress(OSError):
                    sock.sendto(reply, to)

    def _local_ip(self, host: str) -> str:
        """This machine's address as ``host`` sees it (ArtPollReply carries it)."""
        bind = self.config.bind
        if bind not in ("0.0.0.0", "", "::"):
            return bind if ":" not in bind else "0.0.0.0"
        ip = self._local.get(host)
        if ip is None:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.connect((host, self.config.port))  # UDP connect sends nothing
                    ip = probe.getsockname()[0]
            except OSError:
                ip = "0.0.0.0"
            if len(self._local) >= ALLOW_CACHE:
                self._local.clear()
            self._local[host] = ip
        return ip


# -- OpenPixelControl (TCP) -------------------------------------------------------------------------------


class OpcReceiver(Receiver):
    """OPC set-pixels messages into the display's bytes (from pixel 0, cut at the display's end)."""

    def message(self, msg: opc.Message) -> None:
        kind = opc.classify(msg)
        if kind is not None:
            self.drop(kind, f"channel {msg.channel}, command {msg.command}, {len(msg.data)} bytes")
            return
        self.packets += 1
        n = min(len(msg.data), self.size)
        n -= n % 3
        if n:
            self.image[:n] = np.frombuffer(msg.data, dtype=np.uint8, count=n)
            self.changed = True


class _OpcConnection(asyncio.Protocol):
    def __init__(self, server: OpcInput) -> None:
        self.server = server
        self.decoder = opc.OpcDecoder()
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.started = 0.0  # when the message under way began (0 = none under way)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.Transport):
            transport.close()
            return
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else ""
        self.server.admit(self)

    def data_received(self, data: bytes) -> None:
        self.server.received(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.clients.discard(self)


class OpcInput(InputSource):
    """OPC on TCP: several clients at once (the latest message wins), TCP_NODELAY, bounded messages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clients: set[_OpcConnection] = set()
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: _OpcConnection(self), self.config.bind, self.config.port, reuse_address=True
        )
        sock = self.server.sockets[0]
        self.port = sock.getsockname()[1]
        self.where = describe_address(sock.family, sock.getsockname())
        self._start_timer()

    async def _close(self) -> None:
        await super()._close()
        server, self.server = self.server, None
        for client in list(self.clients):
            if client.transport is not None:
                client.transport.abort()
        self.clients.clear()
        if server is not None:
            server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), START_TIMEOUT)

    def admit(self, client: _OpcConnection) -> None:
        transport = client.transport
        if transport is None:
            return
        if not self.allowed(client.peer):
            self.refuse(client.peer)
            transport.abort()
            return
        if len(self.clients) >= OPC_MAX_CLIENTS:
            self.receiver.drop(TOO_MANY_CLIENTS, f"more than {OPC_MAX_CLIENTS} clients at once")
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(0)
        self.clients.add(client)
        self.receiver.heard(client.peer + f":{id(client)}", time.monotonic())

    def received(self, client: _OpcConnection, data: bytes) -> None:
        now = time.monotonic()
        receiver: OpcReceiver = self.receiver  # type: ignore[assignment]
        for msg in client.decoder.feed(data):
            receiver.message(msg)
        client.started = (client.started or now) if client.decoder.partial else 0.0
        receiver.heard(client.peer + f":{id(client)}", now)
        self.after_burst(now)

    def timer(self, now: float) -> None:
        for client in list(self.clients):
            if client.started and now - client.started > OPC_MESSAGE_TIMEOUT and client.transport is not None:
                self.receiver.drop(SLOW, f"{client.peer} took over {OPC_MESSAGE_TIMEOUT:g} s for one message")
                client.transport.abort()
                self.clients.discard(client)


# -- making the inputs from the configuration ---------------------------------------------------------------


def _shape(config: InputConfig, frame: tuple[int, int], leds: int) -> tuple[int, ...]:
    return (frame[0], frame[1], 3) if config.address == FRAME else (leds, 3)


def _plan(config: E131InputConfig | ArtnetInputConfig, size: int, key: str, last: int) -> UniversePlan:
    plan = UniversePlan(config.universe, config.channels_per_universe, size)
    if plan.last > last:
        raise InputError(
            f"{key} universe: {size} bytes need universes {plan.first}..{plan.last}, past the last one, {last}:"
            " lower universe or raise channels_per_universe"
        )
    return plan


def create_input(
    config: InputConfig,
    number: int,
    frame: tuple[int, int],
    leds: int,
    mixer: Mixer,
    runtime: NetworkRuntime,
    log: logging.Logger,
) -> InputSource:
    """One input source, not started."""
    shape = _shape(config, frame, leds)
    size = int(np.prod(shape))
    key = f"[[inputs]] #{number}"
    args: tuple[Any, ...]
    if isinstance(config, DdpInputConfig):
        status = {"man": "skyscreen-hw", "mod": "LED display", "ver": "1.0", "push": True, "ntp": False}
        args = (config, number, shape, DdpReceiver(size, status), mixer, runtime, log)
        return DdpInput(*args, status=status)
    if isinstance(config, E131InputConfig):
        plan = _plan(config, size, key, e131.MAX_UNIVERSE)
        return E131Input(config, number, shape, E131Receiver(plan), mixer, runtime, log)
    if isinstance(config, ArtnetInputConfig):
        plan = _plan(config, size, key, artnet.MAX_PORT_ADDRESS)
        return ArtnetInput(config, number, shape, ArtnetReceiver(plan), mixer, runtime, log)
    if isinstance(config, OpcInputConfig):
        return OpcInput(config, number, shape, OpcReceiver(size), mixer, runtime, log)
    raise InputError(f"{key} type: {config.type!r} has no input here")


def open_inputs(
    config: Config, leds: int, mixer: Mixer, runtime: NetworkRuntime, log: logging.Logger
) -> list[InputSource]:
    """Every [[inputs]] entry started (listening); on a failure the ones started are closed again."""
    started: list[InputSource] = []
    frame = (config.frame.height, config.frame.width)
    try:
        for number, entry in enumerate(config.inputs, 1):
            source = create_input(entry, number, frame, leds, mixer, runtime, log)
            source.start()
            started.append(source)
    except BaseException:
        for source in started:
            source.close()
        raise
    return started
