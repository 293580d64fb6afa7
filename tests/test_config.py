"""Configuration: defaults, the resolved print-out, and every kind of bad input as one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from skyscreen_hw import config
from skyscreen_hw.errors import ConfigError


def test_no_file_gives_the_skyscreen_dome() -> None:
    c = config.Config()
    assert (c.frame.name, c.frame.height, c.frame.width) == ("skyscreen", 360, 288)
    assert c.layout.type == "dome" and c.layout.serpentine is False
    assert (c.color.gamma, c.color.brightness, c.display.fps) == (2.2, 1.0, 60.0)
    assert (c.websocket.host, c.websocket.port) == ("127.0.0.1", 8765)
    assert [o.type for o in c.outputs] == ["simulator"]


def test_full_example_parses_and_is_immutable() -> None:
    c = config.parse(
        {
            "outputs": [
                {"type": "serial", "port": "loop://", "baud": 115200, "protocol": "tpm2", "order": "GRB"},
                {"type": "ws281x", "gpio": 10, "first": 100, "count": 50},
            ],
            "frame": {"name": "wall", "width": 32, "height": 16},
            "layout": {"type": "matrix", "serpentine": True, "origin": "bottom-right"},
            "color": {"gamma": 2, "brightness": 0.5},
            "display": {"fps": 30},
            "websocket": {"host": "0.0.0.0", "port": 9000, "token": "s3cret"},
        }
    )
    assert c.color.gamma == 2.0 and isinstance(c.color.gamma, float)
    assert c.outputs[0].wire_order == "GRB" and c.outputs[1].wire_order == "GRB"
    assert c.outputs[1].first == 100
    with pytest.raises(AttributeError):
        c.frame.name = "x"  # type: ignore[misc]


def test_explicit_empty_outputs_means_none() -> None:
    assert config.parse({"outputs": []}).outputs == ()


def test_ws281x_defaults_to_grb_serial_to_rgb() -> None:
    c = config.parse({"outputs": [{"type": "ws281x"}, {"type": "serial"}]})
    assert [o.wire_order for o in c.outputs] == ["GRB", "RGB"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[color]\ngama = 2.0\n", "[color] gama: unknown key"),
        ("[colour]\ngamma = 2.0\n", "colour: unknown key"),
        ('[color]\ngamma = "high"\n', "[color] gamma: must be float, got str"),
        ("[frame]\nwidth = 2.5\n", "[frame] width: must be int, got float"),
        ("[layout]\nserpentine = 1\n", "[layout] serpentine: must be bool, got int"),
        ("[color]\nbrightness = 1.5\n", "[color] brightness: must be <= 1.0"),
        ("[display]\nfps = 0\n", "[display] fps: must be > 0.0"),
        ('[layout]\ntype = "cube"\n', "[layout] type: must be one of 'dome', 'matrix', 'points'"),
        ('[[outputs]]\ntype = "serial"\norder = "RGX"\n', "[[outputs]] #1 order: must be a permutation"),
        ('[[outputs]]\ntype = "ws281x"\ngpio = 4\n', "[[outputs]] #1 gpio: must be one of 10, 12, 13, 18, 19, 21"),
        ('[websocket]\nhost = "0.0.0.0"\n', "[websocket] token: required when host = '0.0.0.0'"),
        ('[layout]\ntype = "points"\n', "[layout] file: required"),
        ("[display]\nfps = nan\n", "[display] fps: must be a finite number, got nan"),
        ("[color]\nbrightness = nan\n", "[color] brightness: must be a finite number"),
        ("[color]\ngamma = inf\n", "[color] gamma: must be a finite number"),
        ("[websocket]\nidle_timeout = -inf\n", "[websocket] idle_timeout: must be a finite number"),
        ('[[outputs]]\ntype = "serial"\ngpio = 10\n', "[[outputs]] #1 gpio: unknown key for a serial output"),
        ('[[outputs]]\ntype = "ws281x"\nbaud = 9600\n', "[[outputs]] #1 baud: unknown key for a ws281x output"),
        ('[[outputs]]\ntype = "laser"\n', "[[outputs]] #1 type: must be one of 'serial', 'ws281x', 'simulator'"),
        ('[websocket]\norigins = "http://x"\n', "[websocket] origins: must be a list of strings"),
        ("outputs = 3\n", "outputs: must be a list"),
        ("[frame\nname = 1\n", "not valid TOML"),
    ],
)
def test_bad_configuration_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skyscreen_hw", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[color]\ngamma = -1.0\n", "[color] gamma: must be >= 0.1"),
        ('[frame]\nnmae = "x"\n', "[frame] nmae: unknown key"),
        ("not toml at all =\n", "not valid TOML"),
    ],
)
def test_daemon_exits_with_one_line_for_bad_configuration(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    for args in (["--config", str(path), "--duration", "1"], ["check-config", str(path)]):
        result = _cli(*args)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"skyscreen-hw: error: {path}: ") and expected in lines[0]
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "points", "expected"),
    [
        (
            '[[outputs]]\ntype = "serial"\n',
            None,
            "[[outputs]] #1 count (0 = all remaining LEDs): 103680 LEDs, but an"
            " Adalight header counts at most 65,536 LEDs",
        ),
        ('[[outputs]]\ntype = "serial"\nprotocol = "tpm2"\ncount = 30000\n', None, "[[outputs]] #1 count: 30000 LEDs"),
        ("[[outputs]]\nfirst = 200000\n", None, "[[outputs]] #1 first: LED 200000 is beyond the layout's 103680 LEDs"),
        ("[[outputs]]\nfirst = 100\ncount = 103600\n", None, "[[outputs]] #1 count: LEDs 100-103699 run past"),
        ('[layout]\ntype = "points"\nfile = "missing.json"\n', None, "[layout] file: "),
        ('[layout]\ntype = "points"\nfile = "p.json"\n', "not json", "cannot read OpenPixelControl JSON"),
        ('[layout]\ntype = "points"\nfile = "p.json"\n', "{}", "must be a non-empty JSON list"),
        ('[layout]\ntype = "points"\nfile = "p.json"\n', "[]", "must be a non-empty JSON list"),
        ('[layout]\ntype = "points"\nfile = "p.json"\n', '[{"point": [NaN, 0, 0]}]', "2 or 3 finite numbers"),
    ],
)
def test_check_config_fails_exactly_where_the_daemon_does(
    tmp_path: Path, text: str, points: str | None, expected: str, display_name: str
) -> None:
    """check-config builds the layout and plans the outputs: it refuses what the daemon refuses, same line."""
    path = tmp_path / "bad.toml"
    # a display name of its own: a daemon of another test holding the default one would fail first
    path.write_text(f'[frame]\nname = "{display_name}"\n[websocket]\nenabled = false\n' + text)
    if points is not None:
        (tmp_path / "p.json").write_text(points)
    lines = []
    for args in (["check-config", str(path)], ["--config", str(path), "--duration", "1", "--record", "/dev/null"]):
        result = _cli(*args)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        lines.append(result.stderr.strip())
    assert lines[0] == lines[1]
    assert lines[0].startswith(f"skyscreen-hw: error: {path}: ") and expected in lines[0], lines[0]


def test_check_config_prints_resolved_sizes(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text('[[outputs]]\ntype = "serial"\nport = "loop://"\ncount = 60000\n[[outputs]]\nfirst = 60000\n')
    result = _cli("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert "vanes = 360\nleds_per_vane = 288\n" in result.stdout and "vanes = 0" not in result.stdout
    assert "origin =" not in result.stdout  # a matrix key, not the dome's
    assert "count = 60000" in result.stdout and "count = 43680" in result.stdout


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    result = _cli("--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 1 and "nope.toml: no such configuration file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    result = _cli("check-config", str(binary))
    assert result.returncode == 1 and f"{binary}: cannot read" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_check_config_prints_the_resolved_configuration(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    # (an Adalight port carries at most 65,536 LEDs: the whole dome on one is refused, so 300 of them here)
    path.write_text('[color]\nbrightness = 0.25\n[[outputs]]\ntype = "serial"\nport = "loop://"\ncount = 300\n')
    result = _cli("check-config", str(path))
    assert result.returncode == 0, result.stderr
    printed = result.stdout.split("\n", 1)[1]
    again = config.parse(__import__("tomllib").loads(printed))  # the print-out is valid TOML itself
    assert again.color.brightness == 0.25 and again.color.gamma == 2.2
    assert again.outputs[0].port == "loop://" and again.layout.type == "dome"
