"""The sender every network output (DDP, E1.31, Art-Net) shares: one per daemon, on the network runtime.

Frames stay whole across controllers. ``show()`` of each network output only writes the frame into the
output's preallocated packets (`protocols.PacketRows`) and stages it; the first ``end_frame()`` after
the frame's ``show()`` calls sends everything staged, in two phases: first the data of every controller,
then what tells them to show it (DDP's last packet, which carries the push flag; E1.31 synchronization
packets; ArtSync). So no controller is told to show a frame before every controller has its data.

Where the sends run: in the frame clock's thread, straight after the last ``show()``, on non-blocking
sockets the network runtime created and watches. Handing the packets to the runtime's thread instead
costs a wake-up of that thread and a GIL hand-over every frame, and tears the preallocated buffers
unless they are doubled; `skyscreen-hw bench network` measures both ways. A socket buffer that is full
(EAGAIN) drops that controller's frame: the clock never blocks.

Each controller address has its own socket (`Link`), so one controller's trouble costs the others
nothing: ICMP port or host unreachable comes back on that socket (IP_RECVERR), is noted by the runtime's
reader (or by the next send), logged once, counted as failed frames and shown in ``health``; the frame
is tried again every RETRY_SECONDS, and a try with no error back means the controller is reachable again
(logged once). Packets of a frame to one controller go out in one ``sendmsg`` with Linux UDP segmentation
offload (UDP_SEGMENT: up to 64 equal packets a call, the last may be shorter), or one send per packet
where the kernel or the network card cannot.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from skyscreen_hw.errors import OutputError
from skyscreen_hw.net.runtime import NetworkRuntime
from skyscreen_hw.outputs.base import HEALTH_OK, Output
from skyscreen_hw.protocols import PacketRows, ProtocolError, artnet

if TYPE_CHECKING:
    from skyscreen_hw.config import NetworkOutputConfig, OutputConfig
    from skyscreen_hw.layouts import Layout

UDP_SEGMENT = 103  # <linux/udp.h>: setsockopt / cmsg (SOL_UDP) giving the segment size of one sendmsg
IP_RECVERR = 11  # <linux/in.h>: queue ICMP errors on the socket, for unconnected sockets too
SO_EE_OFFENDER_BYTES = 16  # struct sock_extended_err is 16 bytes: ee_errno first
GSO_MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS on Linux up to 6.x; newer kernels take 128
GSO_MAX_BYTES = 65507 - 8  # an IPv4 UDP payload, less some room: what one segmented send may carry
SEND_BUFFER_MAX = 4 << 20  # bytes asked for SO_SNDBUF at most (the kernel caps it at wmem_max)
RETRY_SECONDS = 2.0  # an unreachable controller gets a frame this often, to see whether it is back
DROP = {errno.EAGAIN, errno.ENOBUFS}  # the local socket or queue is full: this frame is dropped
NO_GSO = {errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP}  # segmentation offload not here

SENT, DROPPED, FAILED = "sent", "dropped", "failed"

_SEGMENT = struct.Struct("=H")


def explain(code: int) -> str:
    """What an errno means for a controller, with the likely fix."""
    if code == errno.ECONNREFUSED:
        return "connection refused (ICMP port unreachable: nothing listens on that port; check its port and protocol)"
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"{errno.errorcode.get(code, code)}: no route to it (is it powered, on this network, its address right?)"
    if code in (errno.EPERM, errno.EACCES):
        return (
            "sending is not permitted (a firewall, or the service's IPAddressAllow=: allow the controllers' network"
            " with `systemctl edit skyscreen`, see docs/hardware.md)"
        )
    return f"{errno.errorcode.get(code, code)}: {os.strerror(code)}"


@dataclass(frozen=True)
class Send:
    """``packets`` packets of ``segment`` bytes each (the last may be shorter), back to back in ``data``."""

    data: memoryview
    segment: int
    packets: int
    address: tuple[str, int]
    cmsg: list[tuple[int, int, bytes]] = field(default_factory=list)

    def parts(self) -> Iterator[memoryview]:
        for i in range(self.packets):
            yield self.data[i * self.segment : (i + 1) * self.segment]


def write_headers(rows: PacketRows, header: Callable[[int, int], bytes]) -> PacketRows:
    """``rows`` with the header of every packet written: ``header(r, length)`` for packet ``r`` carrying
    ``length`` data bytes (the last packet's may be fewer)."""
    for r in range(rows.rows):
        length = rows.last_data_bytes if r == rows.rows - 1 else rows.data_bytes
        rows.buffer[r, : rows.header_bytes] = np.frombuffer(header(r, length), dtype=np.uint8)
    return rows


def batches(rows: PacketRows, first: int, end: int, address: tuple[str, int]) -> list[Send]:
    """Rows ``first`` .. ``end - 1`` of ``rows`` as sends of at most GSO_MAX_SEGMENTS / GSO_MAX_BYTES each."""
    per = max(1, min(GSO_MAX_SEGMENTS, GSO_MAX_BYTES // rows.stride))
    sends = []
    for a in range(first, end, per):
        b = min(end, a + per)
        cmsg = [(socket.SOL_UDP, UDP_SEGMENT, _SEGMENT.pack(rows.stride))] if b - a > 1 else []
        sends.append(Send(rows.view(a, b), rows.stride, b - a, address, cmsg))
    return sends


def resolve(host: str, port: int) -> str:
    """The IPv4 address of ``host``; OutputError naming it when it does not resolve."""
    try:
        return str(socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0][4][0])
    except (OSError, UnicodeError) as exc:
        raise OutputError(f"controller {host!r}: cannot resolve it ({exc})") from None


class Link:
    """One controller address (or, for multicast, one socket for many groups): its socket and its health."""

    def __init__(self, sender: NetworkSender, key: tuple[str, int], sock: socket.socket, log: logging.Logger) -> None:
        self.sender = sender
        self.key = key
        self.label = f"{key[0]}:{key[1]}"
        self.sock = sock
        self.log = log
        self.gso = True
        self.users = 0
        self.problem: str | None = None  # why the controller is failing, while it is
        self._lock = threading.Lock()
        self._errors = 0  # errors noted so far (from sends, and from the runtime's reader)
        self._last_errno = 0
        self._probe: int | None = None  # _errors when the last try was sent
        self._next_try = 0.0
        self.failed_frames = 0  # frames failed since the problem started

    # -- errors, from either thread ------------------------------------------------------------------

    def note_error(self, code: int) -> None:
        with self._lock:
            self._errors += 1
            self._last_errno = code

    def on_readable(self) -> None:
        """The runtime's reader: drain ICMP errors (and any stray datagram) so the socket never stays ready."""
        for _ in range(64):  # bounded: what is left wakes us again
            try:
                _, ancdata, _, _ = self.sock.recvmsg(512, 256, socket.MSG_ERRQUEUE)
            except BlockingIOError:
                break
            except OSError as exc:
                self.note_error(exc.errno or errno.EIO)
                continue
            for level, kind, data in ancdata:
                if level == socket.IPPROTO_IP and kind == IP_RECVERR and len(data) >= SO_EE_OFFENDER_BYTES:
                    self.note_error(int.from_bytes(data[:4], "little"))
        for _ in range(64):
            try:
                self.sock.recv(2048)
            except BlockingIOError:
                break
            except OSError as exc:  # the pending error of an unreachable controller
                self.note_error(exc.errno or errno.EIO)

    # -- the frame clock's side ------------------------------------------------------------------------

    def begin_frame(self, now: float) -> str:
        """SENT when this frame may go to the controller as usual; FAILED when it is skipped (the controller
        is failing and no try is due); "probe" when it goes out as a try while failing."""
        with self._lock:
            errors, code = self._errors, self._last_errno
        if self.problem is None:
            if errors == 0:
                return SENT
            self.problem = explain(code)
            self.failed_frames = 0
            self._next_try = now + RETRY_SECONDS
            self._probe = None
            self.log.warning(
                "controller %s: %s; its frames fail, trying again every %g s", self.label, self.problem, RETRY_SECONDS
            )
            return FAILED
        if now < self._next_try:
            return FAILED
        if self._probe is not None and self._probe == errors:  # the last try came back clean
            self.log.info("controller %s: reachable again (%d frames failed meanwhile)", self.label, self.failed_frames)
            with self._lock:
                self._errors = 0
            self.problem = None
            return SENT
        if errors:
            self.problem = explain(code)
        self._probe = errors
        self._next_try = now + RETRY_SECONDS
        return "probe"

    def send(self, s: Send) -> str:
        """Send one run of packets now: SENT, DROPPED (socket buffer full) or FAILED (noted)."""
        try:
            if s.packets == 1:
                self.sock.sendto(s.data, s.address)
            elif self.gso:
                self.sock.sendmsg([s.data], s.cmsg, 0, s.address)
            else:
                for part in s.parts():
                    self.sock.sendto(part, s.address)
        except OSError as exc:
            code = exc.errno or errno.EIO
            if code in DROP:
                return DROPPED
            if s.packets > 1 and self.gso and code in NO_GSO:
                self.gso = False
                self.log.info(
                    "controller %s: no UDP segmentation offload here (%s); one send a packet", self.label, exc
                )
                return self.send(s)
            self.note_error(code)
            return FAILED
        return SENT


@dataclass(eq=False)
class Final:
    """What tells controllers to show a frame, sent once a frame however many outputs share it."""

    link: Link
    send: Send
    before: Any = None  # called just before sending (e.g. to advance the sequence number)


class NetworkOutput(Output):
    """Base of the DDP, E1.31 and Art-Net outputs: stage in ``show``, sent by the shared sender.

    Subclasses write the frame into their packets in `prepare`, and pass their data sends and finals, the
    links they took from the sender and the keys of the shared finals they took, which `close` gives back.
    """

    def __init__(
        self,
        name: str,
        sender: NetworkSender,
        links: list[Link],
        data: list[tuple[Link, Send]],
        finals: list[Final],
        final_keys: tuple[Any, ...] = (),
    ) -> None:
        super().__init__(name)
        self.sender = sender
        self.links = links
        self._data = data
        self._finals = finals
        self.final_keys = final_keys
        self.outcome = SENT
        self._closed = False
        sender.register(self)

    def prepare(self, leds: np.ndarray) -> None:
        """Write the frame into the packets (sequence numbers too)."""
        raise NotImplementedError

    def data_sends(self) -> list[tuple[Link, Send]]:
        """Each frame's data: packet runs and the link each goes out on."""
        return self._data

    def finals(self) -> list[Final]:
        """What tells the controllers to show the frame, sent after every output's data."""
        return self._finals

    def _closing(self) -> None:
        """Last words to the controller before the sockets go (E1.31: stream terminated)."""

    # the Output interface
    def show(self, leds: np.ndarray) -> None:
        self.prepare(leds)
        self.sender.stage(self)

    def end_frame(self) -> None:
        self.sender.flush()

    @property
    def health(self) -> str:
        problems = [f"controller {link.label}: {link.problem}" for link in self.links if link.problem]
        return "; ".join(problems) if problems else HEALTH_OK

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._closing()
        finally:
            for key in self.final_keys:
                self.sender.release_final(key)
            for link in self.links:
                self.sender.release(link)
            self.sender.unregister(self)


class NetworkSender:
    """The per-daemon sender: controller links, staged outputs, the two-phase flush, the Art-Net node."""

    def __init__(self, runtime: NetworkRuntime, log: logging.Logger, *, owns_runtime: bool) -> None:
        self.runtime = runtime
        self.log = log
        self.owns_runtime = owns_runtime
        self.outputs: list[NetworkOutput] = []
        self._links: dict[tuple[str, int], Link] = {}
        self._staged: list[NetworkOutput] = []
        self._finals: dict[Any, tuple[Final, int]] = {}  # shared finals (sync packets), with their users
        self.artnet: ArtnetNode | None = None
        self._artnet_users = 0

    # -- links ------------------------------------------------------------------------------------------

    def link(self, address: tuple[str, int], send_buffer: int = 0) -> Link:
        """The link to ``address`` (made on the runtime when new); release it with `release`."""
        found = self._links.get(address)
        if found is None:
            sock = self.runtime.call(self._open_socket(send_buffer))
            found = Link(self, address, sock, self.log)
            self.runtime.call(self._watch(found))
            self._links[address] = found
        found.users += 1
        return found

    def unicast(self, address: tuple[str, int], rows: PacketRows, end: int) -> tuple[Link, list[tuple[Link, Send]]]:
        """The link to one controller at ``address`` (a send buffer of two frames) and the data sends of
        ``rows`` 0 .. ``end - 1`` to it."""
        link = self.link(address, 2 * rows.total_bytes)
        return link, [(link, s) for s in batches(rows, 0, end, address)]

    async def _open_socket(self, send_buffer: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        if send_buffer:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, min(send_buffer, SEND_BUFFER_MAX))
        return sock

    async def _watch(self, link: Link) -> None:
        self.runtime.loop.add_reader(link.sock.fileno(), link.on_readable)

    async def _unwatch(self, link: Link) -> None:
        with contextlib.suppress(ValueError, OSError):
            self.runtime.loop.remove_reader(link.sock.fileno())
        link.sock.close()

    def release(self, link: Link) -> None:
        link.users -= 1
        if link.users <= 0 and self._links.get(link.key) is link:
            del self._links[link.key]
            try:
                self.runtime.call(self._unwatch(link))
            except Exception as exc:  # the runtime may be stopping: the socket goes with the process
                self.log.debug("network: closing %s: %s", link.label, exc)

    def shared_final(self, key: Any, make: Any) -> Final:
        """One Final for every output naming the same ``key`` (made by ``make()`` for the first)."""
        final, users = self._finals.get(key, (None, 0))
        if final is None:
            final = make()
        self._finals[key] = (final, users + 1)
        return final

    def release_final(self, key: Any) -> None:
        final, users = self._finals.get(key, (None, 0))
        if final is not None:
            if users <= 1:
                del self._finals[key]
            else:
                self._finals[key] = (final, users - 1)

    # -- outputs and frames ----------------------------------------------------------------------------

    def register(self, out: NetworkOutput) -> None:
        self.outputs.append(out)

    def unregister(self, out: NetworkOutput) -> None:
        if out in self.outputs:
            self.outputs.remove(out)
        if out in self._staged:
            self._staged.remove(out)
        if not self.outputs:
            _forget(self)

    def stage(self, out: NetworkOutput) -> None:
        if out not in self._staged:
            self._staged.append(out)

    def flush(self) -> None:
        """Send every staged output's frame: all data first, then the pushes and syncs."""
        staged, self._staged = self._staged, []
        if not staged:
            return
        now = time.monotonic()
        state: dict[Link, str] = {}
        for out in staged:
            out.outcome = SENT
            for link in out.links:
                if link not in state:
                    state[link] = link.begin_frame(now)
                if state[link] == FAILED or state[link] == "probe":
                    out.outcome = FAILED
        for out in staged:
            for link, s in out.data_sends():
                if state[link] == FAILED:
                    continue
                result = link.send(s)
                if result != SENT:
                    state[link] = FAILED if result == FAILED else state[link]
                    out.outcome = result
                    break
        finals: dict[int, tuple[Final, list[NetworkOutput]]] = {}
        for out in staged:
            if out.outcome == FAILED and any(state[link] == FAILED for link in out.links):
                continue
            if out.outcome == DROPPED:
                continue
            for final in out.finals():
                finals.setdefault(id(final), (final, []))[1].append(out)
        for final, outs in finals.values():
            if final.before is not None:
                final.before()
            result = final.link.send(final.send)
            if result != SENT:
                for out in outs:
                    out.outcome = result
        for out in staged:
            if out.outcome == SENT:
                out.stats.frames_sent += 1
            elif out.outcome == DROPPED:
                out.stats.frames_dropped += 1
            else:
                out.stats.frames_failed += 1
                for link in out.links:
                    if link.problem:
                        link.failed_frames += 1

    # -- Art-Net: one node on the Art-Net port answering ArtPoll -------------------------------------

    def artnet_node(self) -> ArtnetNode:
        if self.artnet is None:
            self.artnet = ArtnetNode(self, self.log)
            self.artnet.start()
        self._artnet_users += 1
        return self.artnet

    def release_artnet(self) -> None:
        self._artnet_users -= 1
        if self._artnet_users <= 0 and self.artnet is not None:
            self.artnet.stop()
            self.artnet = None

    def close(self) -> None:
        for link in list(self._links.values()):
            link.users = 1
            self.release(link)
        if self.artnet is not None:
            self.artnet.stop()
            self.artnet = None
        if self.owns_runtime:
            self.runtime.stop()


class UdpEndpoint:
    """One UDP socket bound to (bind, port) on the runtime, handing each datagram to its handlers.

    The Art-Net outputs answer ArtPoll through the one on the Art-Net port. (The network inputs have sockets
    of their own, read on their receive threads: sources/receive_thread.py.)
    """

    def __init__(self, runtime: NetworkRuntime, sock: socket.socket, log: logging.Logger) -> None:
        self.runtime = runtime
        self.sock = sock
        self.log = log
        self.handlers: list[Any] = []
        self.address = sock.getsockname()

    @classmethod
    def open(
        cls, runtime: NetworkRuntime, bind: str, port: int, log: logging.Logger, *, reuse_address: bool = False
    ) -> UdpEndpoint:
        """Bind (on the runtime) and start reading; OSError when the address is taken."""

        async def make() -> UdpEndpoint:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                if reuse_address:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setblocking(False)
                sock.bind((bind, port))
            except OSError:
                sock.close()
                raise
            endpoint = cls(runtime, sock, log)
            runtime.loop.add_reader(sock.fileno(), endpoint._readable)
            return endpoint

        return runtime.call(make())

    def _readable(self) -> None:
        for _ in range(64):
            try:
                data, source = self.sock.recvfrom(2048)
            except BlockingIOError:
                return
            except OSError as exc:  # an ICMP error for something we sent: nothing to do here
                self.log.debug("network: endpoint %s: %s", self.address, exc)
                continue
            for handler in list(self.handlers):
                try:
                    handler(data, source)
                except Exception:  # one handler's bug must not stop the others or the loop
                    self.log.exception("network: handling a datagram from %s", source)

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        """Send from the endpoint's socket (runtime thread); a full buffer drops it."""
        with contextlib.suppress(BlockingIOError, OSError):
            self.sock.sendto(data, address)

    def close(self) -> None:
        async def shut() -> None:
            with contextlib.suppress(ValueError, OSError):
                self.runtime.loop.remove_reader(self.sock.fileno())
            self.sock.close()

        try:
            self.runtime.call(shut())
        except Exception as exc:  # the runtime may be stopping
            self.log.debug("network: closing the endpoint: %s", exc)


class ArtnetNode:
    """This daemon as an Art-Net node: answers ArtPoll with ArtPollReplies listing its ports.

    Listens on the Art-Net port of every interface. When another program already has that port (OLA,
    a lighting console on the same machine), the node says so once and stays silent: the outputs still
    send ArtDmx and ArtSync from their own sockets.
    """

    def __init__(self, sender: NetworkSender, log: logging.Logger) -> None:
        self.sender = sender
        self.log = log
        self.endpoint: UdpEndpoint | None = None
        self.ports: list[artnet.Port] = []
        self.polls = 0
        self._local_ip: dict[str, str] = {}

    def start(self, bind: str = "0.0.0.0", port: int = artnet.PORT, *, reuse_address: bool = False) -> None:
        try:
            self.endpoint = UdpEndpoint.open(self.sender.runtime, bind, port, self.log, reuse_address=reuse_address)
        except OSError as exc:
            self.log.warning(
                "Art-Net: cannot listen on %s:%d (%s: this daemon's Art-Net input, or another Art-Net program on"
                " this machine?); the outputs' port-addresses go unlisted in ArtPollReplies (an Art-Net input"
                " answers ArtPoll for its own), ArtDmx and ArtSync are sent all the same",
                bind,
                port,
                exc.strerror or exc,
            )
            return
        self.endpoint.handlers.append(self.on_datagram)

    def on_datagram(self, data: bytes, source: tuple[str, int]) -> None:
        if artnet.opcode(data) != artnet.OP_POLL:
            return
        try:
            artnet.parse(data)
        except ProtocolError as exc:
            self.log.debug("Art-Net: from %s: %s", source[0], exc)
            return
        self.polls += 1
        if self.endpoint is None:
            return
        ip = self._address_towards(source[0])
        report = f"#0001 [{self.polls % 10000:04d}] skyscreen-hw ok"
        # to the Art-Net port of the poller, as nodes answer; and to the port it polled from, if another
        destinations = {(source[0], artnet.PORT), (source[0], source[1])}
        for reply in artnet.poll_replies(ip, self.ports, report=report):
            for destination in destinations:
                self.endpoint.send(reply, destination)

    def _address_towards(self, peer: str) -> str:
        """Our IPv4 address as ``peer`` sees it (what goes in the reply)."""
        bound = self.endpoint.address[0] if self.endpoint is not None else "0.0.0.0"
        if bound != "0.0.0.0":
            return str(bound)
        if peer not in self._local_ip:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.connect((peer, artnet.PORT))  # no packet: it only picks the route
                    self._local_ip[peer] = probe.getsockname()[0]
                except OSError:
                    self._local_ip[peer] = "0.0.0.0"
        return self._local_ip[peer]

    def stop(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = None


# -- the one sender of this process ------------------------------------------------------------------------

_lock = threading.Lock()
_sender: NetworkSender | None = None
_runtime: NetworkRuntime | None = None


def use_runtime(runtime: NetworkRuntime | None) -> None:
    """Make network outputs opened from now on use ``runtime`` (the daemon's) instead of one of their own."""
    global _runtime
    with _lock:
        _runtime = runtime


def shared_sender(log: logging.Logger) -> NetworkSender:
    """The process's sender, made (with its runtime, unless `use_runtime` gave one) on first use."""
    global _sender
    with _lock:
        if _sender is None:
            runtime, owns = _runtime, False
            if runtime is None or not runtime.running:
                runtime, owns = NetworkRuntime(log), True
                runtime.start()
            _sender = NetworkSender(runtime, log, owns_runtime=owns)
        return _sender


ConfigT = TypeVar("ConfigT", bound="NetworkOutputConfig")
OutputT = TypeVar("OutputT", bound=NetworkOutput)


def output_factory(
    config_type: type[ConfigT], output: Callable[[ConfigT, int, NetworkSender, logging.Logger], OutputT], kind: str
) -> Callable[[OutputConfig, Layout, int, int, logging.Logger], OutputT]:
    """The ``create`` of the network output module of protocol ``kind``: checks the configuration's type and
    opens ``output`` for the LEDs on the process's sender."""

    def create(cfg: OutputConfig, layout: Layout, first: int, count: int, log: logging.Logger) -> OutputT:
        if not isinstance(cfg, config_type):
            raise OutputError(f"{kind} output: wrong configuration type {type(cfg).__name__}")
        return output(cfg, count, shared_sender(log), log)

    return create


def _forget(sender: NetworkSender) -> None:
    """The last output closed: close the sender's sockets (and its own runtime)."""
    global _sender
    with _lock:
        if _sender is sender:
            _sender = None
    sender.close()


# -- what check-config and the layout picture say about network outputs ----------------------------------

WIRE_OVERHEAD = 8 + 20 + 38  # bytes a packet on Ethernet besides the payload: UDP, IPv4, Ethernet framing and gap
DEFAULT_LINK_MBITS = 100.0  # what a controller's port carries (most are 100 Mbit/s Ethernet)
MANY_UNIVERSES = 64  # more universes than common controllers take on one port (a soft warning)


@dataclass(frozen=True)
class Summary:
    """One network output as check-config shows it."""

    text: str
    wire_bytes: int  # bytes a frame on the wire
    warnings: tuple[str, ...]
    universes: tuple[int, int] | None  # first, last (E1.31, Art-Net)
    per: int  # LEDs a packet or universe


def summarize(cfg: Any, first: int, count: int, fps: float) -> Summary | None:
    """The controller, LEDs, universes or packets of a network output, and its wire rate; None for others."""
    from skyscreen_hw.config import ArtnetOutputConfig, DdpOutputConfig, E131OutputConfig, NetworkOutputConfig

    if not isinstance(cfg, NetworkOutputConfig):
        return None
    last = first + count - 1
    where = f"{cfg.host}:{cfg.port}" if cfg.host != "multicast" else f"multicast (239.255.x.y):{cfg.port}"
    warnings: list[str] = []
    universes = None
    if isinstance(cfg, DdpOutputConfig):
        from skyscreen_hw.outputs.ddp import plan_packets

        rows = plan_packets(cfg, count)
        per = rows.per
        text = (
            f"ddp {where}: LEDs {first}-{last} -> {rows.rows} packets of {rows.data_bytes} bytes"
            f" (offsets 0-{(rows.rows - 1) * rows.data_bytes}; LED i at byte {cfg.channels} x (i - {first}))"
            f"{', push on the last' if cfg.sync else ''}"
        )
        extra = 0
    elif isinstance(cfg, E131OutputConfig | ArtnetOutputConfig):
        if isinstance(cfg, E131OutputConfig):
            from skyscreen_hw.outputs.e131 import plan_universes

            rows = plan_universes(cfg, count)
            extra = 49 + WIRE_OVERHEAD if cfg.sync_universe else 0
            sync = f", sync universe {cfg.sync_universe}" if cfg.sync_universe else ""
        else:
            from skyscreen_hw.outputs.artnet import plan_universes as plan_artnet

            rows = plan_artnet(cfg, count)
            extra = 14 + WIRE_OVERHEAD if cfg.sync else 0
            sync = ", ArtSync" if cfg.sync else ""
        per = rows.per
        universes = (cfg.universe, cfg.universe + rows.rows - 1)
        text = (
            f"{cfg.type} {where}: LEDs {first}-{last} -> universes {universes[0]}-{universes[1]}, {per} LEDs each"
            f" (LED i: universe {cfg.universe} + (i - {first}) // {per}, channel"
            f" {cfg.channels} x ((i - {first}) % {per}) + 1){sync}"
        )
        if rows.rows > MANY_UNIVERSES and cfg.host != "multicast":
            warnings.append(
                f"{rows.rows} universes to one controller: common controllers take up to {MANY_UNIVERSES} a port"
                " (split the LEDs over several [[outputs]] if yours takes fewer)"
            )
    else:
        return None
    wire = rows.total_bytes + rows.rows * WIRE_OVERHEAD + extra
    mbits = wire * fps * 8 / 1e6
    text += f"; {wire:,} bytes a frame on the wire, {mbits:.1f} Mbit/s at {fps:g} fps"
    if mbits > DEFAULT_LINK_MBITS:
        frames = DEFAULT_LINK_MBITS * 1e6 / 8 / wire
        warnings.append(
            f"{mbits:.0f} Mbit/s is more than a {DEFAULT_LINK_MBITS:g} Mbit/s Ethernet port carries: at most"
            f" {frames:.0f} fps to this controller (split its LEDs over more controllers, or lower [display] fps)"
        )
    return Summary(text, wire, tuple(warnings), universes, per)
