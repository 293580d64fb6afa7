"""`skyscreen-hw send` against a real daemon on the default dome: the URL and token come from the
configuration, the README's examples light LEDs, and drawing where no LED is gets a warning."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from skyscreen_hw import config, layouts
from skyscreen_hw.send import visible_cells

README = Path(__file__).resolve().parent.parent / "README.md"
DOME_LEDS = 360 * 288


def readme_send_examples() -> list[str]:
    """Every `skyscreen-hw send ...` line of the README's shell examples, as written there."""
    return re.findall(r"^\s*(skyscreen-hw send .*)$", README.read_text(), re.MULTILINE)


def dome_config(name: str, port: int = 0, token: str = "t0ken", extra: str = "") -> str:
    """The default dome (no [layout]), recorded only, with a token."""
    return textwrap.dedent(
        f"""
        outputs = []
        [frame]
        name = "{name}"
        [display]
        fps = 10
        [websocket]
        port = {port}
        token = "{token}"
        """
    ) + textwrap.dedent(extra)


class Dome:
    """A daemon showing the default dome into a recording; `config` is a file naming its real port."""

    def __init__(self, daemon_factory, name: str, tmp_path: Path) -> None:
        self.record = tmp_path / "dome.rgb"
        self.daemon = daemon_factory(dome_config(name), "--record", str(self.record))
        self.daemon.wait_for_log("running:")
        self.port = int(re.search(r"ws://127\.0\.0\.1:(\d+)", self.daemon.log).group(1))
        self.config = tmp_path / "send.toml"
        self.config.write_text(dome_config(name, self.port))
        self.name = name

    def frames(self) -> np.ndarray:
        data = np.fromfile(self.record, np.uint8)
        return data[: data.size // (DOME_LEDS * 3) * DOME_LEDS * 3].reshape(-1, DOME_LEDS, 3)

    def lit(self) -> int:
        """LEDs lit in the latest recorded frame."""
        frames = self.frames()
        return int(frames[-1].any(axis=1).sum()) if len(frames) else 0

    def wait_lit(self, timeout: float = 10.0) -> np.ndarray:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frames = self.frames()
            if len(frames) and frames[-1].any():
                return frames[-1]
            time.sleep(0.05)
        raise AssertionError(f"no LED lit within {timeout} s; daemon log:\n{self.daemon.log}")


@pytest.fixture
def dome(daemon_factory, display_name: str, tmp_path: Path) -> Dome:
    return Dome(daemon_factory, display_name, tmp_path)


def skyscreen_hw(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skyscreen_hw", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("example", readme_send_examples())
def test_the_readme_send_examples_light_leds_on_the_default_dome(dome: Dome, example: str) -> None:
    """The exact command of the README; the URL and the token come from --config alone."""
    argv = shlex.split(example, comments=True)
    assert argv[:2] == ["skyscreen-hw", "send"]
    assert dome.lit() == 0  # nothing drawn yet: the recording is black
    result = skyscreen_hw("--config", str(dome.config), *argv[1:])
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    leds = dome.wait_lit()
    lit = leds[leds.any(axis=1)]
    assert len(lit) > 100  # a word, not a stray LED
    colour = "yellow" if "yellow" in argv else "white"
    assert (lit[:, 2] == 0).all() if colour == "yellow" else (lit.min(axis=1) == lit.max(axis=1)).all()


def test_the_readme_shows_send_examples() -> None:
    assert len(readme_send_examples()) >= 2


def test_a_corner_cell_draws_but_warns_that_no_led_shows_it(dome: Dome) -> None:
    result = skyscreen_hw("--config", str(dome.config), "send", "text", "0", "0", "HELLO")
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        f"skyscreen-hw send: warning: nothing drawn, in cells (0..4, 0), falls on an LED of the dome layout of"
        f" {dome.config} (the 32 x 32 canvas is stretched over its bounding box); row 0 shows columns 10..21"
    ]
    result = skyscreen_hw("--config", str(dome.config), "send", "pixel", "15", "15")  # the dome's inner hole
    assert "row 15 shows columns 0..14, 17..31" in result.stderr and result.returncode == 0
    result = skyscreen_hw("--config", str(dome.config), "send", "pixel", "12", "12")  # a visible cell
    assert (result.returncode, result.stderr) == (0, "")
    dome.wait_lit()  # the daemon carries on


def test_explicit_url_and_token_win_over_the_configuration(dome: Dome, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(dome_config(dome.name, port=9, token="not-it"))
    result = skyscreen_hw("--config", str(wrong), "send", "pixel", "12", "12")
    assert result.returncode == 1 and "cannot reach ws://127.0.0.1:9" in result.stderr
    url = f"ws://127.0.0.1:{dome.port}"
    result = skyscreen_hw("--config", str(wrong), "send", "--url", url, "pixel", "12", "12")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"skyscreen-hw: error: {url} refused the connection: HTTP 401 a valid token is required: ?token=... or Bearer"
    )
    result = skyscreen_hw("--config", str(wrong), "send", "--url", url, "--token", "t0ken", "pixel", "12", "12")
    assert (result.returncode, result.stderr) == (0, "")
    dome.wait_lit()


@pytest.mark.parametrize(
    ("websocket", "message"),
    [
        (
            "enabled = false\nport = 8765\n",
            "[websocket] enabled = false: the daemon has no websocket to draw on"
            " (set enabled = true, or give --url ws://HOST:PORT)",
        ),
        (
            "port = 0\n",
            "[websocket] port = 0: the daemon picks a free port at each start"
            " (its log's 'running:' line names it): give --url ws://HOST:PORT",
        ),
    ],
)
def test_a_configuration_that_names_no_websocket_is_a_clear_error(tmp_path: Path, websocket: str, message: str) -> None:
    path = tmp_path / "no-websocket.toml"
    path.write_text("[websocket]\n" + websocket)
    result = skyscreen_hw("--config", str(path), "send", "pixel", "12", "12")
    assert result.returncode == 1
    assert result.stderr.strip() == f"skyscreen-hw: error: {path}: {message}"


def test_the_visible_cells_of_the_default_dome() -> None:
    visible = visible_cells(layouts.build(config.Config()))
    assert visible.shape == (32, 32)
    assert not visible[0, :10].any() and visible[0, 10:22].all() and not visible[0, 22:].any()  # corners: off
    assert not visible[15:17, 15:17].any()  # the inner hole (0.1 of the radius)
    assert visible[13, 13:18].all() and visible[18, 13:18].all()  # where the README writes HELLO
    matrix = config.parse({"frame": {"width": 64, "height": 64}, "layout": {"type": "matrix"}})
    assert visible_cells(layouts.build(matrix)).all()  # a full grid shows every cell
