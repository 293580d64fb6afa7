"""The command line: layout drawing, the README's commands and .ci/run, bad arguments."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import remove_display

from skyscreen_hw import config, layouts
from skyscreen_hw.layout_drawing import FIRST_COLOUR, LAST_COLOUR
from skyscreen_hw.outputs.simulator import pixel_positions

ROOT = Path(__file__).parent.parent


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skyscreen_hw", *args], capture_output=True, text=True, timeout=60)


def test_layout_png_marks_first_and_last_led(tmp_path: Path) -> None:
    import pygame

    cfg = tmp_path / "c.toml"
    cfg.write_text('[frame]\nwidth = 16\nheight = 8\n[layout]\ntype = "matrix"\nserpentine = true\n')
    png = tmp_path / "layout.png"
    result = _cli("--config", str(cfg), "layout", "--png", str(png), "--size", "300")
    assert result.returncode == 0, result.stderr
    assert "matrix: 128 LEDs in 8 strand(s)" in result.stdout
    picture = pygame.surfarray.array3d(pygame.image.load(str(png))).transpose(1, 0, 2)
    layout = layouts.build(config.load(cfg))
    px = pixel_positions(layout, 300)
    assert tuple(picture[px[0][1], px[0][0]]) == FIRST_COLOUR
    assert tuple(picture[px[-1][1], px[-1][0]]) == LAST_COLOUR
    # serpentine: the last LED of an 8-row matrix is at the bottom-left
    assert px[-1][0] == px[:, 0].min() and px[-1][1] == px[:, 1].max()
    # the wiring path is drawn between LEDs (not only the dots)
    assert (picture.reshape(-1, 3) != 0).any(axis=1).sum() > 128 * 4


def test_layout_png_of_a_serpentine_dome_shows_both_ends(tmp_path: Path) -> None:
    """The dome wired serpentine ends next to where it starts: LED 0 stays green, the end still shows red."""
    import pygame

    cfg = tmp_path / "c.toml"
    cfg.write_text("[layout]\nserpentine = true\n")
    png = tmp_path / "layout.png"
    assert _cli("--config", str(cfg), "layout", "--png", str(png), "--size", "600").returncode == 0
    picture = pygame.surfarray.array3d(pygame.image.load(str(png))).transpose(1, 0, 2)
    px = pixel_positions(layouts.build(config.load(cfg)), 600)
    assert np.abs(px[0] - px[-1]).max() < 10  # neighbours: this is the case that hid LED 0
    assert tuple(picture[px[0][1], px[0][0]]) == FIRST_COLOUR
    x, y = px[-1]
    around = picture[y - 12 : y + 13, x - 12 : x + 13].reshape(-1, 3)
    assert (around == LAST_COLOUR).all(axis=1).sum() > 20


def _loaded(pid: int, library: str) -> bool:
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.parametrize("delay", [0.0, 0.03, 0.1, 0.2])
def test_ctrl_c_during_start_up_prints_no_traceback(tmp_path: Path, delay: float) -> None:
    """From our code on: the signal goes `delay` seconds after numpy is mapped (the parser imports it, after
    the command line module's first lines); before that it is the interpreter's own start-up."""
    import os
    import signal
    import time

    cfg = tmp_path / "c.toml"
    cfg.write_text(f'outputs = []\n[frame]\nname = "skytest-ctrlc-{os.getpid()}"\n[websocket]\nenabled = false\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "skyscreen_hw", "--config", str(cfg), "--duration", "5"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not _loaded(proc.pid, "numpy") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    remove_display(f"skytest-ctrlc-{os.getpid()}")
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert proc.returncode in (0, -signal.SIGINT), (proc.returncode, err)


def test_simulate_without_a_display_says_it_runs_headless(tmp_path: Path) -> None:
    import os

    cfg = tmp_path / "c.toml"
    name = f"skytest-headless-{os.getpid()}"
    cfg.write_text(f'[frame]\nname = "{name}"\nheight = 4\nwidth = 4\n[websocket]\nenabled = false\n')
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["SDL_VIDEODRIVER"] = "dummy"
    result = subprocess.run(
        [sys.executable, "-m", "skyscreen_hw", "--config", str(cfg), "--simulate", "--duration", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    remove_display(name)
    assert result.returncode == 0, result.stderr
    assert "no display here, the simulator runs headless" in result.stderr


def test_ws281x_defaults_to_the_spi_pin_that_needs_no_root() -> None:
    assert config.parse({"outputs": [{"type": "ws281x"}]}).outputs[0].gpio == 10


def test_unknown_demo_is_one_line() -> None:
    result = _cli("--demo", "fireworks", "--duration", "1")
    assert result.returncode == 1
    from skyscreen_hw.demos import PATTERNS

    assert result.stderr.strip() == (
        f"skyscreen-hw: error: --demo fireworks: no such pattern (choose from {', '.join(sorted(PATTERNS))})"
    )


def test_readme_commands_and_ci_agree() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^(\./dev\.sh \w+)", readme, re.MULTILINE)
    assert commands[:2] == ["./dev.sh demo", "./dev.sh test"]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == "./dev.sh test"


@pytest.mark.parametrize("module", ["skyscreen_hw", "skyscreen_hw.cli"])
def test_python_dash_m_and_version(module: str) -> None:
    result = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and re.fullmatch(r"skyscreen-hw \d+\.\d+\.\d+\n", result.stdout)


def test_gather_is_not_a_python_loop_per_led() -> None:
    """The frame path gathers the 103,680-LED dome through views: no index array in the plan path."""
    layout = layouts.build(config.parse({"layout": {"serpentine": True}}))
    gather = layouts.LedGather(layout)
    assert gather.plan is not None
    frame = np.zeros((360, 288, 3), np.uint8)
    views = gather.plan(frame)
    assert all(np.shares_memory(v, frame) for _, v in views)


def test_check_config_into_a_pipe_closed_early_is_quiet() -> None:
    """`skyscreen-hw check-config | head -1` when head has already left: exit 0, no BrokenPipeError traceback."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        result = subprocess.run(
            [sys.executable, "-m", "skyscreen_hw", "check-config"], stdout=write_end, stderr=subprocess.PIPE, timeout=30
        )
    finally:
        os.close(write_end)
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr
