"""E1.31 (sACN) output: a range of LEDs as consecutive universes to one controller, or multicast.

Universe ``universe + i`` carries LEDs ``i * per`` onwards, ``per = channels_per_universe // channels``
LEDs each (no LED split between universes), unicast to ``host`` or, with ``host = "multicast"``, each
to its group 239.255.hi.lo. Every packet names this installation's CID (a UUID made once and kept in
the state directory), its source name and ``priority``; sequence numbers run per universe. With
``sync_universe`` set, data packets carry that synchronization address and one synchronization packet
follows each frame, after every controller's data (see outputs/network.py). Closing sends three
stream-terminated packets for each universe, so receivers let go at once instead of after 2.5 s.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from pathlib import Path

import numpy as np

from skyscreen_hw.config import E131OutputConfig
from skyscreen_hw.outputs.network import (
    Final,
    Link,
    NetworkOutput,
    NetworkSender,
    Send,
    output_factory,
    resolve,
    write_headers,
)
from skyscreen_hw.protocols import PacketRows, e131

MULTICAST = "multicast"  # the host that means "each universe to its multicast group"
CID_FILE = "e131-cid"
SYSTEM_STATE = Path("/var/lib/skyscreen")


def state_directory() -> Path:
    """Where the daemon keeps state: $STATE_DIRECTORY (systemd's StateDirectory=), else /var/lib/skyscreen
    when it can be written, else $XDG_STATE_HOME/skyscreen or ~/.local/state/skyscreen."""
    given = os.environ.get("STATE_DIRECTORY", "")
    if given:
        return Path(given.split(":", 1)[0])
    if os.access(SYSTEM_STATE, os.W_OK) or (not SYSTEM_STATE.exists() and os.access(SYSTEM_STATE.parent, os.W_OK)):
        return SYSTEM_STATE
    xdg = os.environ.get("XDG_STATE_HOME", "")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "skyscreen"


def installation_cid(log: logging.Logger, directory: Path | None = None) -> uuid.UUID:
    """This installation's E1.31 CID: read from the state directory, made there once when missing.

    A CID that cannot be kept (nothing writable) is made afresh for this run, with one warning: receivers
    then see a new source after each restart.
    """
    path = (directory or state_directory()) / CID_FILE
    for _ in range(2):  # a second pass reads what a concurrent start wrote first
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("e131: cannot read %s (%s); using a new CID for this run", path, exc.strerror)
            return uuid.uuid4()
        else:
            try:
                return uuid.UUID(text)
            except ValueError:
                log.warning("e131: %s is not a UUID (delete it to make a new one); using a new CID for this run", path)
                return uuid.uuid4()
        cid = uuid.uuid4()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="ascii") as f:
                f.write(f"{cid}\n")
            log.info("e131: this installation's CID is %s (kept in %s)", cid, path)
            return cid
        except FileExistsError:
            continue
        except OSError as exc:
            log.warning("e131: cannot keep a CID in %s (%s); using a new one for this run", path, exc.strerror)
            return cid
    return uuid.uuid4()


def source_name() -> str:
    return f"skyscreen-hw {socket.gethostname()}"


def plan_universes(cfg: E131OutputConfig, count: int, cid: uuid.UUID | None = None) -> PacketRows:
    """The packets of a frame of ``count`` LEDs, headers written (cid None: a zero CID, for check-config)."""
    per = cfg.channels_per_universe // cfg.channels
    rows = PacketRows(count, per, cfg.wire_order, e131.HEADER_BYTES)
    name = source_name()
    return write_headers(
        rows,
        lambda r, length: e131.data_header(
            cid or uuid.UUID(int=0),
            name,
            cfg.universe + r,
            length,
            priority=cfg.priority,
            sync_universe=cfg.sync_universe,
        ),
    )


class E131Output(NetworkOutput):
    """One E1.31 controller (or multicast) taking ``count`` LEDs in consecutive universes, sent with ``cid``
    (default: this installation's, see `installation_cid`)."""

    kind = "e131"

    def __init__(
        self,
        cfg: E131OutputConfig,
        count: int,
        sender: NetworkSender,
        log: logging.Logger,
        cid: uuid.UUID | None = None,
    ) -> None:
        cid = installation_cid(log) if cid is None else cid
        self.cid = cid
        self.rows = plan_universes(cfg, count, cid)
        self._sequence = 0
        n = self.rows.rows
        multicast = cfg.host == MULTICAST
        if multicast:
            link = sender.link((MULTICAST, cfg.port), 2 * self.rows.total_bytes)
            data = [
                (
                    link,
                    Send(self.rows.packet(r), self.rows.stride, 1, (e131.multicast_group(cfg.universe + r), cfg.port)),
                )
                for r in range(n)
            ]
            sync_to = (e131.multicast_group(cfg.sync_universe), cfg.port) if cfg.sync_universe else None
        else:
            address = (resolve(cfg.host, cfg.port), cfg.port)
            link, data = sender.unicast(address, self.rows, n)
            sync_to = address
        self.link = link
        keys: tuple[object, ...] = ()
        finals: list[Final] = []
        if cfg.sync_universe and sync_to is not None:
            key = ("e131 sync", sync_to, cfg.sync_universe, cid)
            finals = [sender.shared_final(key, lambda: _sync_final(link, cid, cfg.sync_universe, sync_to))]
            keys = (key,)
        last = cfg.universe + n - 1
        sync = f", sync universe {cfg.sync_universe}" if cfg.sync_universe else ""
        name = (
            f"e131 {cfg.host}{'' if multicast else f':{cfg.port}'} ({count} LEDs, {cfg.wire_order},"
            f" universes {cfg.universe}-{last}, priority {cfg.priority}{sync})"
        )
        super().__init__(name, sender, [link], data, finals, keys)

    def prepare(self, leds: np.ndarray) -> None:
        self.rows.fill(leds)
        self.rows.buffer[:, e131.OFFSET_SEQUENCE] = self._sequence
        self._sequence = (self._sequence + 1) & 0xFF

    def _closing(self) -> None:
        """Three stream-terminated packets for each universe (E1.31 6.2.6), with the last frame's data."""
        self.rows.buffer[:, e131.OFFSET_OPTIONS] |= e131.OPTION_TERMINATED
        for _ in range(e131.TERMINATION_PACKETS):
            self.rows.buffer[:, e131.OFFSET_SEQUENCE] = self._sequence
            self._sequence = (self._sequence + 1) & 0xFF
            for link, s in self._data:
                link.send(s)


def _sync_final(link: Link, cid: uuid.UUID, sync_universe: int, to: tuple[str, int]) -> Final:
    packet = bytearray(e131.sync_packet(cid, sync_universe))

    def advance() -> None:
        packet[e131.OFFSET_SYNC_SEQUENCE] = (packet[e131.OFFSET_SYNC_SEQUENCE] + 1) & 0xFF

    return Final(link, Send(memoryview(packet), len(packet), 1, to), advance)


create = output_factory(E131OutputConfig, E131Output, E131Output.kind)
