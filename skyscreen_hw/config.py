"""Configuration: a TOML file -> frozen dataclasses, every key defaulted and checked.

No file at all gives the Skyscreen dome. Unknown keys, wrong types and out-of-range values
raise ConfigError naming the file and the key, e.g. ``skyscreen.toml: [color] gamma: must be > 0``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import socket
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, get_type_hints

from skyscreen_hw.errors import ConfigError

DEFAULT_PATH = Path("/etc/skyscreen/skyscreen.toml")

DDP_PORT, E131_PORT, ARTNET_PORT, OPC_PORT = 4048, 5568, 6454, 7890
DDP_MAX_DATA = 1462  # pixel bytes in one DDP packet that still fits a 1,500-byte Ethernet frame (IPv4)
DMX_CHANNELS = 512  # channels in one DMX universe (E1.31, Art-Net)
E131_LAST_UNIVERSE = 63999  # E1.31 carries data in universes 1-63999
ARTNET_LAST_PORT_ADDRESS = 32767  # Art-Net's 15-bit port-addresses (net, sub-net, universe): 0-32767

Check = Callable[[Any], "str | None"]


def _range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if lo is not None and (value <= lo if lo_open else value < lo):
            return f"must be {'>' if lo_open else '>='} {lo}, got {value!r}"
        if hi is not None and value > hi:
            return f"must be <= {hi}, got {value!r}"
        return None

    return check


def _one_of(*choices: Any) -> Check:
    def check(value: Any) -> str | None:
        if value not in choices:
            return f"must be one of {', '.join(repr(c) for c in choices)}, got {value!r}"
        return None

    return check


def _colour_order(value: Any) -> str | None:
    if value and sorted(value) not in (sorted("RGB"), sorted("RGBW")):
        return f"must be a permutation of RGB or RGBW (e.g. 'GRB', 'GRBW'), got {value!r}"
    return None


def _origins(value: Any) -> str | None:
    from skyscreen_hw.origins import check_origins

    try:
        check_origins(value)
    except ConfigError as exc:
        return str(exc).removeprefix("[websocket] origins: ")
    return None


def _networks(value: Any) -> str | None:
    for entry in value:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return f'{entry!r} is not a network: write an address or a network, e.g. "192.168.1.0/24" or "::1"'
    return None


def _window(value: Any) -> str | None:
    if value and (len(value) != 2 or value[0] < 0 or value[1] < 1):
        return f"must be [first, count] with first >= 0 and count >= 1, got {list(value)!r}"
    return None


def _key(default: Any, check: Check | None = None, doc: str = "") -> Any:
    return field(default=default, metadata={"check": check, "doc": doc})


@dataclass(frozen=True)
class FrameConfig:
    """[frame]: the shared frame (docs/frame-standard.md) and its place in the mixer."""

    name: str = _key("skyscreen", lambda v: None if v and "/" not in v else "must be non-empty, no '/'")
    width: int = _key(288, _range(1, 65535))
    height: int = _key(360, _range(1, 65535))
    group: str = _key("skyscreen", doc="group owning the frame file and semaphores, if it exists")
    slots: int = _key(4, _range(1, 64), doc="shared frame v2: frame slots a writer may fill ahead")
    priority: int = _key(100, _range(0, 200), doc="the shared frame's priority in the mixer: the highest live wins")
    timeout: float = _key(0.0, _range(0.0), doc="seconds without a frame before it stops counting; 0 = never")


@dataclass(frozen=True)
class LayoutConfig:
    """[layout]: where the LEDs are and which frame pixel each shows."""

    type: str = _key("dome", _one_of("dome", "matrix", "points"))
    serpentine: bool = _key(False)
    # dome: "original" = frame column 0 at the rim, vane 0 at 3 o'clock, clockwise (the original renderers)
    orientation: str = _key("default", _one_of("default", "original"))
    # points: how 3-D positions become a flat picture
    projection: str = _key("auto", _one_of("auto", "xy", "xz", "yz", "cylinder", "line"))
    # dome: vanes x leds_per_vane (0 = the frame's height x width), inner_radius as a fraction of radius
    vanes: int = _key(0, _range(0))
    leds_per_vane: int = _key(0, _range(0))
    inner_radius: float = _key(0.1, _range(0.0, 0.95))
    radius: float = _key(2.0, _range(0.0, lo_open=True), doc="metres, for the layout drawing")
    # matrix: width x height (0 = the frame's), origin corner of LED 0
    width: int = _key(0, _range(0))
    height: int = _key(0, _range(0))
    origin: str = _key("top-left", _one_of("top-left", "top-right", "bottom-left", "bottom-right"))
    # points: an OpenPixelControl layout JSON
    file: str = _key("")

    # keys that mean something for one layout type only
    only_for: ClassVar[dict[str, str]] = {
        "orientation": "dome",
        "projection": "points",
        "vanes": "dome",
        "leds_per_vane": "dome",
        "inner_radius": "dome",
        "radius": "dome",
        "width": "matrix",
        "height": "matrix",
        "origin": "matrix",
        "file": "points",
    }

    def resolved(self, frame: FrameConfig) -> dict[str, Any]:
        """The keys of this layout type, with 0 (= the frame's size) replaced by what it stands for."""
        values = {k: v for k, v in dataclasses.asdict(self).items() if self.only_for.get(k, self.type) == self.type}
        defaults = {"vanes": frame.height, "leds_per_vane": frame.width, "width": frame.width, "height": frame.height}
        return {k: (v or defaults[k]) if k in defaults else v for k, v in values.items()}


@dataclass(frozen=True)
class ColorConfig:
    """[color]: colour correction applied to every LED value."""

    gamma: float = _key(2.2, _range(0.1, 5.0))
    brightness: float = _key(1.0, _range(0.0, 1.0))
    max_milliamps: int = _key(0, _range(0), doc="power supply limit; 0 disables the power limit")
    led_milliamps: float = _key(55.0, _range(0.0, 200.0), doc="current one LED draws at full white")


MAX_FPS = 1000.0  # [display] fps at most


@dataclass(frozen=True)
class DisplayConfig:
    """[display]: the frame clock."""

    fps: float = _key(60.0, _range(0.0, MAX_FPS, lo_open=True))


@dataclass(frozen=True)
class WebsocketConfig:
    """[websocket]: the instruction stream server (docs/instructions.md)."""

    enabled: bool = _key(True)
    host: str = _key("127.0.0.1")
    port: int = _key(8765, _range(0, 65535))
    token: str = _key("", doc="required from clients; must be set when host is not a loopback address")
    max_connections: int = _key(64, _range(1, 100000))
    max_message_bytes: int = _key(1 << 20, _range(4))
    idle_timeout: float = _key(300.0, _range(0.0, lo_open=True), doc="seconds a silent client may stay")
    origins: tuple[str, ...] = _key(
        (), _origins, doc="browser Origins allowed besides the daemon's own (scripts send none)"
    )

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@dataclass(frozen=True)
class OutputConfig:
    """What every [[outputs]] entry has: a device taking LEDs first .. first+count-1 in wiring order."""

    type: str = _key("simulator")
    first: int = _key(0, _range(0))
    count: int = _key(0, _range(0), doc="0 = all remaining LEDs")
    order: str = _key("", _colour_order, doc="colour order on the wire; default RGB, GRB for ws281x")

    default_order: ClassVar[str] = "RGB"
    required: ClassVar[dict[str, str]] = {}  # keys without a default: key -> what to write

    @property
    def wire_order(self) -> str:
        return self.order or self.default_order

    @property
    def channels(self) -> int:
        """Bytes per LED on the wire: 3, or 4 for an RGBW order."""
        return len(self.wire_order)

    def check(self, count: int) -> tuple[str, str] | None:
        """(key, problem) when this output cannot carry ``count`` LEDs as configured; None when it can.

        Called by the output plan (and so by check-config) before anything is opened.
        """
        return None


@dataclass(frozen=True)
class SerialOutputConfig(OutputConfig):
    """A serial LED controller (Adalight or TPM2) on a device path or any pyserial URL."""

    type: str = _key("serial")
    port: str = _key("/dev/skyscreen")
    baud: int = _key(2000000, _range(300))
    protocol: str = _key("adalight", _one_of("adalight", "tpm2"))
    write_timeout: float = _key(0.5, _range(0.0, lo_open=True))

    def check(self, count: int) -> tuple[str, str] | None:
        limit, why = (
            (TPM2_MAX_LEDS, 'TPM2 frames carry at most 65,535 bytes (or use protocol = "adalight")')
            if self.protocol == "tpm2"
            else (ADALIGHT_MAX_LEDS, "an Adalight header counts at most 65,536 LEDs")
        )
        if count > limit:
            return "count", f"{count} LEDs, but {why}: split the LEDs over several [[outputs]] with first/count"
        return None


@dataclass(frozen=True)
class Ws281xOutputConfig(OutputConfig):
    """A WS281x / SK6812 strip on a Raspberry Pi pin."""

    type: str = _key("ws281x")
    gpio: int = _key(10, _one_of(10, 12, 13, 18, 19, 21), doc="10 SPI, 12/18 PWM0, 13/19 PWM1, 21 PCM")
    frequency: int = _key(800000, _range(400000, 800000))
    dma: int = _key(10, _range(0, 14))
    invert: bool = _key(False)

    default_order: ClassVar[str] = "GRB"


@dataclass(frozen=True)
class SimulatorOutputConfig(OutputConfig):
    """The pygame simulator window."""

    type: str = _key("simulator")
    size: int = _key(720, _range(64, 8192), doc="window size in pixels")


@dataclass(frozen=True)
class NetworkOutputConfig(OutputConfig):
    """What the network pixel controllers' outputs share: where the controller is."""

    host: str = _key("", lambda v: None if v else "must be the controller's address or host name")
    port: int = _key(0, _range(1, 65535))

    required: ClassVar[dict[str, str]] = {"host": 'the controller\'s address or host name, e.g. host = "10.0.0.21"'}

    def check(self, count: int) -> tuple[str, str] | None:
        return self.check_host()

    def check_host(self) -> tuple[str, str] | None:
        """("host", why) when the host name does not resolve to an IPv4 address here; None when it does."""
        if self.host == "multicast" and self.type == "e131":
            return None
        try:
            socket.getaddrinfo(self.host, self.port, socket.AF_INET, socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as exc:
            return (
                "host",
                f"{self.host!r} does not resolve to an IPv4 address here ({exc}): write the controller's address,"
                ' e.g. host = "10.0.0.21", or a name this machine resolves (/etc/hosts, DNS, mDNS)',
            )
        return None


@dataclass(frozen=True)
class DdpOutputConfig(NetworkOutputConfig):
    """A DDP controller (WLED, ESPixelStick, FPP, Falcon): pixels by byte offset, a push per frame."""

    type: str = _key("ddp")
    port: int = _key(DDP_PORT, _range(1, 65535))
    packet_bytes: int = _key(1440, _range(3, DDP_MAX_DATA), doc="data bytes a packet, a multiple of 3 (4 for RGBW)")
    sync: bool = _key(True, doc="push on the last packet of each frame")

    def check(self, count: int) -> tuple[str, str] | None:
        if self.packet_bytes % self.channels:
            return "packet_bytes", f"{self.packet_bytes} is not a multiple of {self.channels} (bytes per LED)"
        return self.check_host()


def _port_address(doc: str) -> Any:
    """Art-Net's ``universe`` key: the first port-address."""
    return _key(0, _range(0, ARTNET_LAST_PORT_ADDRESS), doc=doc)


@dataclass(frozen=True)
class UniverseKeys:
    """The keys of the inputs and outputs that carry LEDs in consecutive DMX universes (E1.31, Art-Net): from
    ``universe`` on, ``channels_per_universe`` channels of each.

    ``universe`` takes any number either protocol has here (the outputs check their own in ``check``); the
    inputs and Art-Net narrow it.
    """

    universe: int = _key(1, _range(0, E131_LAST_UNIVERSE), doc="the first universe")
    channels_per_universe: int = _key(510, _range(3, DMX_CHANNELS))


@dataclass(frozen=True)
class UniverseOutputConfig(UniverseKeys, NetworkOutputConfig):
    """Outputs that carry LEDs in DMX universes of up to 512 channels (E1.31, Art-Net)."""

    first_universe: ClassVar[int] = 1
    last_universe: ClassVar[int] = E131_LAST_UNIVERSE

    def universes(self, count: int) -> int:
        """How many universes ``count`` LEDs take (no LED split between two universes)."""
        per = self.channels_per_universe // self.channels
        return -(-count // per) if per else 0

    def check(self, count: int) -> tuple[str, str] | None:
        if self.channels_per_universe < self.channels:
            return "channels_per_universe", f"{self.channels_per_universe} is less than one LED ({self.channels})"
        if self.universe < self.first_universe:
            return "universe", f"must be >= {self.first_universe}, got {self.universe}"
        last = self.universe + self.universes(count) - 1
        if last > self.last_universe:
            return (
                "universe",
                f"{count} LEDs need universes {self.universe}..{last}, past the last one, {self.last_universe}:"
                " split the LEDs over several [[outputs]] or raise channels_per_universe",
            )
        return self.check_host()


@dataclass(frozen=True)
class E131OutputConfig(UniverseOutputConfig):
    """An E1.31 (sACN) controller, unicast to ``host`` or multicast (``host = "multicast"``)."""

    type: str = _key("e131")
    port: int = _key(E131_PORT, _range(1, 65535))
    priority: int = _key(100, _range(0, 200))
    sync_universe: int = _key(0, _range(0, E131_LAST_UNIVERSE), doc="universe synchronization address; 0 = off")


@dataclass(frozen=True)
class ArtnetOutputConfig(UniverseOutputConfig):
    """An Art-Net 4 node: ArtDmx by 15-bit port-address, ArtSync after each frame."""

    type: str = _key("artnet")
    port: int = _key(ARTNET_PORT, _range(1, 65535))
    universe: int = _port_address("the first port-address (15 bits: net, sub-net, universe)")
    sync: bool = _key(True, doc="ArtSync after each frame")

    first_universe: ClassVar[int] = 0
    last_universe: ClassVar[int] = ARTNET_LAST_PORT_ADDRESS


@dataclass(frozen=True)
class InputConfig:
    """One [[inputs]] entry: a network source of pixels, a source of the mixer."""

    type: str = _key("ddp")
    bind: str = _key("127.0.0.1", doc="the address to listen on; 0.0.0.0 or :: for every interface")
    port: int = _key(DDP_PORT, _range(0, 65535))
    allow: tuple[str, ...] = _key(("127.0.0.0/8", "::1"), _networks, doc="networks allowed to send")
    address: str = _key("frame", _one_of("frame", "leds"), doc='"frame": the frame\'s bytes; "leds": wiring order')
    priority: int = _key(100, _range(0, 200), doc="the highest live source wins")
    timeout: float = _key(2.5, _range(0.0, lo_open=True), doc="seconds without data before the source is dropped")

    required: ClassVar[dict[str, str]] = {}


@dataclass(frozen=True)
class DdpInputConfig(InputConfig):
    """DDP on UDP: pixels by byte offset, shown on push."""

    type: str = _key("ddp")
    port: int = _key(DDP_PORT, _range(0, 65535))


@dataclass(frozen=True)
class E131InputConfig(UniverseKeys, InputConfig):
    """E1.31 (sACN) on UDP, unicast and multicast (239.255.hi.lo joined for each universe taken)."""

    type: str = _key("e131")
    port: int = _key(E131_PORT, _range(0, 65535))
    universe: int = _key(1, _range(1, E131_LAST_UNIVERSE), doc="the first universe")


@dataclass(frozen=True)
class ArtnetInputConfig(UniverseKeys, InputConfig):
    """Art-Net 4 ArtDmx by 15-bit port-address, ArtSync, answering ArtPoll."""

    type: str = _key("artnet")
    port: int = _key(ARTNET_PORT, _range(0, 65535))
    universe: int = _port_address("the first port-address")


@dataclass(frozen=True)
class OpcInputConfig(InputConfig):
    """OpenPixelControl on TCP: channel 0 = all, command 0 = set pixels."""

    type: str = _key("opc")
    port: int = _key(OPC_PORT, _range(0, 65535))


INPUT_TYPES: dict[str, type[InputConfig]] = {
    "ddp": DdpInputConfig,
    "e131": E131InputConfig,
    "artnet": ArtnetInputConfig,
    "opc": OpcInputConfig,
}


@dataclass(frozen=True)
class TransformConfig:
    """One [[transforms]] entry, applied in order to frame coordinates, composed once at start."""

    type: str = _key("rotate", _one_of("rotate", "mirror", "crop", "flat"))
    degrees: float = _key(0.0, doc="rotate: a whole number of vanes (dome), or 90/180/270 (matrix)")
    axis: str = _key("rows", _one_of("rows", "columns"), doc="mirror: flip the order of rows or of columns")
    rows: tuple[int, ...] = _key((), _window, doc="crop: [first, count] of the frame's rows")
    columns: tuple[int, ...] = _key((), _window, doc="crop: [first, count] of the frame's columns")

    keys_for: ClassVar[dict[str, tuple[str, ...]]] = {
        "rotate": ("degrees",),
        "mirror": ("axis",),
        "crop": ("rows", "columns"),
        "flat": (),
    }


ADALIGHT_MAX_LEDS = 0x10000
TPM2_MAX_LEDS = 0xFFFF // 3

# `type` -> its configuration class; the output module is skyscreen_hw.outputs.<type>
OUTPUT_TYPES: dict[str, type[OutputConfig]] = {
    "serial": SerialOutputConfig,
    "ws281x": Ws281xOutputConfig,
    "simulator": SimulatorOutputConfig,
    "ddp": DdpOutputConfig,
    "e131": E131OutputConfig,
    "artnet": ArtnetOutputConfig,
}


@dataclass(frozen=True)
class Config:
    """The whole configuration, as the daemon uses it."""

    frame: FrameConfig = FrameConfig()
    layout: LayoutConfig = LayoutConfig()
    color: ColorConfig = ColorConfig()
    display: DisplayConfig = DisplayConfig()
    websocket: WebsocketConfig = WebsocketConfig()
    outputs: tuple[OutputConfig, ...] = (SimulatorOutputConfig(),)
    inputs: tuple[InputConfig, ...] = ()
    transforms: tuple[TransformConfig, ...] = ()
    source: str = "(defaults)"

    def to_toml(self, counts: Sequence[int] = ()) -> str:
        """The resolved configuration as TOML (for `check-config`): defaults filled in, ``count = 0``
        replaced by ``counts`` (the LEDs each output takes) when given."""
        lines: list[str] = []
        if not self.outputs:
            lines.append("outputs = []")
        for name in ("frame", "layout", "color", "display", "websocket"):
            section = getattr(self, name)
            values = section.resolved(self.frame) if name == "layout" else dataclasses.asdict(section)
            lines.append(f"[{name}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
            lines.append("")
        for name, entries in (("inputs", self.inputs), ("transforms", self.transforms)):
            for entry in entries:
                values = dataclasses.asdict(entry)
                if isinstance(entry, TransformConfig):
                    values = {k: values[k] for k in ("type", *entry.keys_for[entry.type]) if values[k] != ()}
                lines.append(f"[[{name}]]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
                lines.append("")
        for i, out in enumerate(self.outputs):
            lines.append("[[outputs]]")
            resolved = {**dataclasses.asdict(out), "order": out.wire_order}
            if i < len(counts):
                resolved["count"] = counts[i]
            lines += [f"{k} = {_toml_value(v)}" for k, v in resolved.items()]
            lines.append("")
        return "\n".join(lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


_SECTIONS: dict[str, type] = {
    "frame": FrameConfig,
    "layout": LayoutConfig,
    "color": ColorConfig,
    "display": DisplayConfig,
    "websocket": WebsocketConfig,
}


def _build(cls: type, table: Any, where: str, src: str, what: str = "") -> Any:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{src}: {where}: must be a table, got {type(table).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            owner = f" for {what}" if what else ""
            raise ConfigError(f"{src}: {where} {key}: unknown key{owner} (known keys: {known})")
        value = _typed(hints[key], value, f"{src}: {where} {key}")
        check = fields[key].metadata.get("check")
        problem = check(value) if check else None
        if problem:
            raise ConfigError(f"{src}: {where} {key}: {problem}")
        values[key] = value
    return cls(**values)


def _typed(want: Any, value: Any, where: str) -> Any:
    """``value`` as type ``want`` (an int where a float is wanted, a list of strings for a tuple); or ConfigError."""
    for item, name in ((str, "strings"), (int, "whole numbers")):
        if want == tuple[item, ...]:
            if not isinstance(value, list) or not all(type(v) is item for v in value):
                raise ConfigError(f"{where}: must be a list of {name}, got {value!r}")
            return tuple(value)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not want:
        raise ConfigError(f"{where}: must be {want.__name__}, got {type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number, got {value!r}")
    return value


def _kind(table: Any, where: str, src: str, kinds: Mapping[str, type], default: str | None) -> Any:
    """One [[outputs]] / [[inputs]] table, checked against the keys of its own kind."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{src}: {where}: must be a table, got {type(table).__name__}")
    kind = table.get("type", default)
    if kind not in kinds:
        raise ConfigError(f"{src}: {where} type: must be one of {', '.join(map(repr, kinds))}, got {kind!r}")
    what = f"a {kind} {where.split()[0].strip('[]').rstrip('s')}"
    for key, hint in kinds[kind].required.items():
        if key not in table:
            raise ConfigError(f"{src}: {where} {key}: required for {what}: {hint}")
    return _build(kinds[kind], table, where, src, what)


def _transform(table: Any, where: str, src: str) -> TransformConfig:
    t = _build(TransformConfig, table, where, src, "a transform")
    for key in table:
        if key != "type" and key not in TransformConfig.keys_for[t.type]:
            raise ConfigError(f"{src}: {where} {key}: not a key of a {t.type!r} transform")
    if t.type == "crop" and not (t.rows or t.columns):
        raise ConfigError(f"{src}: {where} rows: a crop needs rows = [first, count] or columns = [first, count]")
    return t


_TABLE_LISTS: dict[str, Callable[[Any, str, str], Any]] = {
    "outputs": lambda t, where, src: _kind(t, where, src, OUTPUT_TYPES, "simulator"),
    "inputs": lambda t, where, src: _kind(t, where, src, INPUT_TYPES, None),
    "transforms": _transform,
}


def parse(data: Mapping[str, Any], src: str = "(config)") -> Config:
    """Validate a parsed TOML document into a Config."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SECTIONS:
            values[key] = _build(_SECTIONS[key], value, f"[{key}]", src)
        elif key in _TABLE_LISTS:
            if not isinstance(value, list):
                raise ConfigError(f"{src}: {key}: must be a list of [[{key}]] tables")
            values[key] = tuple(_TABLE_LISTS[key](t, f"[[{key}]] #{i + 1}", src) for i, t in enumerate(value))
        else:
            known = ", ".join([*_SECTIONS, *_TABLE_LISTS])
            raise ConfigError(f"{src}: {key}: unknown key (known: {known})")
    config = Config(**values, source=src)
    _check_whole(config, src)
    return config


def _check_whole(config: Config, src: str) -> None:
    ws = config.websocket
    if ws.enabled and not ws.is_loopback and not ws.token:
        raise ConfigError(
            f"{src}: [websocket] token: required when host = {ws.host!r} is not a loopback address"
            ' (set a token, or host = "127.0.0.1")'
        )
    if config.layout.type == "points" and not config.layout.file:
        raise ConfigError(f'{src}: [layout] file: required when type = "points" (an OpenPixelControl JSON)')


def load(path: str | Path | None = None, *, allow_empty: bool = True) -> Config:
    """Load the configuration: PATH if given, else the default path if it exists, else defaults.

    ``allow_empty=False`` (a reload) rejects a file with no settings at all: that is a file caught
    half-written, not a wish for the defaults.
    """
    if path is None:
        if not DEFAULT_PATH.exists():
            return Config()
        path = DEFAULT_PATH
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file (copy deploy/skyscreen.toml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if not data and not allow_empty:
        raise ConfigError(f"{path}: the file has no settings (empty, or caught while being saved?)")
    config = parse(data, str(path))
    if config.layout.file and not Path(config.layout.file).is_absolute():
        resolved = str((path.parent / config.layout.file).resolve())
        config = dataclasses.replace(config, layout=dataclasses.replace(config.layout, file=resolved))
    return config
