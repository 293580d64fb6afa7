"""udev/99-skyscreen.rules: every line well formed; every controller gets the link, group and systemd tag."""

from __future__ import annotations

import re
from pathlib import Path

RULES = Path(__file__).parent.parent / "udev" / "99-skyscreen.rules"
PAIR = re.compile(r'\s*([A-Z_]+(?:\{[A-Za-z_]+\})?)\s*(==|!=|\+=|:=|=)\s*"([^"]*)"\s*(?:,|$)')


def rules() -> list[dict[str, tuple[str, str]]]:
    parsed = []
    for number, line in enumerate(RULES.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        rest, keys = line, {}
        while rest.strip():
            m = PAIR.match(rest)
            if m is None:
                raise AssertionError(f"{RULES}:{number}: cannot parse {rest!r}")
            keys[m.group(1)] = (m.group(2), m.group(3))
            rest = rest[m.end() :]
        parsed.append(keys)
    return parsed


def test_every_usb_serial_controller_gets_the_link_group_mode_and_systemd_tag() -> None:
    tty = [r for r in rules() if r.get("SUBSYSTEM") == ("==", "tty")]
    for rule in tty:
        assert rule["SYMLINK"] == ("+=", "skyscreen")
        assert rule["GROUP"] == ("=", "skyscreen") and rule["MODE"] == ("=", "0660")
        assert rule["TAG"] == ("+=", "systemd")
    ids = {(r["ATTRS{idVendor}"][1], r.get("ATTRS{idProduct}", ("==", "*"))[1]) for r in tty}
    for wanted in [
        ("16c0", "0483"),
        ("2341", "*"),
        ("1a86", "7523"),
        ("10c4", "ea60"),
        ("0403", "6001"),
        ("303a", "1001"),
    ]:
        assert wanted in ids, f"no rule for {wanted}"  # Teensy, Arduino, CH340, CP210x, FTDI, ESP32 USB CDC


def test_spidev_and_gpiomem_belong_to_the_group() -> None:
    kernels = {r["KERNEL"][1]: r for r in rules() if "KERNEL" in r}
    for name in ("spidev0.0", "gpiomem*"):
        assert kernels[name]["GROUP"] == ("=", "skyscreen") and kernels[name]["MODE"] == ("=", "0660")
