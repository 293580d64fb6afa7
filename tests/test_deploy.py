"""The deployment: systemd units checked by systemd-analyze, and install.sh run against a scratch root."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from skyscreen_hw import config
from skyscreen_hw.outputs.record import read_recording
from skyscreen_hw.sources import instructions as ins
from skyscreen_hw.sources.shared_frame import FrameWriter

REPO = Path(__file__).parent.parent
DEPLOY = REPO / "deploy"
SYSTEM_UNITS = next((p for p in (Path("/lib/systemd/system"), Path("/usr/lib/systemd/system")) if p.is_dir()), None)

analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(analyze is None, reason="systemd-analyze is missing: ./dev.sh test installs it")


def install(root: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["bash", str(DEPLOY / "install.sh"), "--root", str(root), *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result


def tree(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every file under root: (sha256, mode, mtime_ns)."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def verify_root(root: Path) -> Path:
    """A root systemd-analyze can verify in: our installed units, the system's units, the ExecStart binary."""
    if SYSTEM_UNITS is None:
        pytest.skip("no systemd unit directory on this machine")
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True, dirs_exist_ok=True)
    exe = root / "opt/skyscreen/venv/bin/skyscreen-hw"
    exe.parent.mkdir(parents=True, exist_ok=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    kill = root / "bin/kill"  # ExecReload's binary; verify only checks that it exists and runs
    kill.parent.mkdir(exist_ok=True)
    kill.write_text("#!/bin/sh\n")
    kill.chmod(0o755)
    return root


# -- install.sh ------------------------------------------------------------------------------------------


def test_install_lays_down_the_files_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = install(root)
    files = tree(root)
    assert set(files) == {
        "etc/skyscreen/skyscreen.toml",
        "etc/skyscreen/skyscreen.toml.example",
        "etc/systemd/system/skyscreen.service",
        "etc/systemd/system/skyscreen.socket",
        "etc/udev/rules.d/99-skyscreen.rules",
        "etc/sysctl.d/60-skyscreen.conf",
        "opt/skyscreen/README.md",
    }
    # receive buffers for a whole frame of network input (a Pi's default drops E1.31 packets of the dome)
    assert "net.core.rmem_max = 8388608" in (root / "etc/sysctl.d/60-skyscreen.conf").read_text()
    assert (root / "etc/systemd/system/skyscreen.service").read_bytes() == (DEPLOY / "skyscreen.service").read_bytes()
    assert (root / "etc/udev/rules.d/99-skyscreen.rules").read_bytes() == (
        REPO / "udev/99-skyscreen.rules"
    ).read_bytes()
    assert files["etc/skyscreen/skyscreen.toml"][1] & 0o777 == 0o640
    assert (root / "usr/local/bin/skyscreen-hw").readlink() == Path("/opt/skyscreen/venv/bin/skyscreen-hw")
    assert files["etc/systemd/system/skyscreen.service"][1] & 0o777 == 0o644
    commands = [line for line in first.stdout.splitlines() if line.startswith("+ ")]
    for expected in (
        "apt-get install",
        "groupadd --system skyscreen",
        "useradd --system --gid skyscreen",
        "pip install",
        "udevadm control --reload",
        "systemctl enable --now skyscreen.service",
        f"sysctl -p {root}/etc/sysctl.d/60-skyscreen.conf",
    ):
        assert any(expected in c for c in commands), expected
    second = install(root)
    assert tree(root) == files  # same content, modes and modification times
    again = [line for line in second.stdout.splitlines() if line.startswith("+ ")]
    assert not any("daemon-reload" in c or "udevadm" in c or "restart" in c or "sysctl" in c for c in again), again
    assert "installed" not in second.stdout.replace("installed skyscreen-hw", "")


def test_a_second_run_repairs_a_changed_unit_and_reloads_systemd(tmp_path: Path) -> None:
    root = tmp_path / "root"
    install(root)
    unit = root / "etc/systemd/system/skyscreen.service"
    unit.write_text(unit.read_text().replace("User=skyscreen", "User=root"))
    (root / "etc/udev/rules.d/99-skyscreen.rules").chmod(0o600)
    result = install(root)
    assert unit.read_bytes() == (DEPLOY / "skyscreen.service").read_bytes()
    assert (root / "etc/udev/rules.d/99-skyscreen.rules").stat().st_mode & 0o777 == 0o644
    assert "+ systemctl daemon-reload" in result.stdout and "+ udevadm control --reload" in result.stdout


def test_install_works_without_the_udev_rules(tmp_path: Path) -> None:
    """The rules come from another part of the tree: a checkout without them still installs the rest."""
    src = tmp_path / "src"
    shutil.copytree(DEPLOY, src / "deploy")
    shutil.copy(REPO / "README.md", src / "README.md")
    root = tmp_path / "root"
    result = subprocess.run(
        ["bash", str(src / "deploy/install.sh"), "--root", str(root)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert (root / "etc/systemd/system/skyscreen.service").is_file()
    assert not (root / "etc/udev").exists() and "udevadm" not in result.stdout


def test_an_edited_configuration_is_never_overwritten(tmp_path: Path) -> None:
    root = tmp_path / "root"
    install(root)
    mine = root / "etc/skyscreen/skyscreen.toml"
    mine.write_text("[display]\nfps = 30\n")
    result = install(root)
    assert mine.read_text() == "[display]\nfps = 30\n"
    assert "kept your" in result.stdout


def test_the_pwm_drop_in_is_installed_on_request(tmp_path: Path) -> None:
    root = tmp_path / "root"
    install(root, "--pwm")
    dropin = root / "etc/systemd/system/skyscreen.service.d/ws281x-pwm.conf"
    assert dropin.read_bytes() == (DEPLOY / "ws281x-pwm.conf").read_bytes()


def test_uninstall_removes_everything_but_the_configuration(tmp_path: Path) -> None:
    root = tmp_path / "root"
    install(root, "--pwm")
    (root / "etc/skyscreen/skyscreen.toml").write_text("[display]\nfps = 30\n")  # edited, as it would be
    (root / "var/lib/skyscreen").mkdir(parents=True)  # the StateDirectory= systemd made
    result = install(root, "--uninstall")
    assert set(tree(root)) == {"etc/skyscreen/skyscreen.toml"}
    assert (root / "etc/skyscreen/skyscreen.toml").read_text() == "[display]\nfps = 30\n"
    assert not (root / "opt/skyscreen").exists() and not (root / "var/lib/skyscreen").exists()
    assert not (root / "etc/systemd/system/skyscreen.service.d").exists()
    assert not (root / "usr/local/bin/skyscreen-hw").is_symlink()
    commands = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert commands[0] == "+ systemctl disable --now skyscreen.service skyscreen.socket"
    for expected in ("+ userdel skyscreen", "+ groupdel skyscreen", "+ systemctl daemon-reload"):
        assert expected in commands
    # the kept configuration goes to root's group before the group's number is freed
    assert commands.index(f"+ chgrp root {root}/etc/skyscreen/skyscreen.toml") < commands.index("+ userdel skyscreen")
    install(root, "--uninstall")  # a second uninstall is harmless too


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is missing: ./dev.sh test installs it")
def test_the_scripts_are_shellcheck_clean() -> None:
    result = subprocess.run(
        ["shellcheck", str(DEPLOY / "install.sh"), str(REPO / "dev.sh")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout


def test_install_refuses_to_run_as_a_normal_user_without_root(tmp_path: Path) -> None:
    script = (DEPLOY / "install.sh").read_text()
    assert 'if [ "$(id -u)" -ne 0 ]' in script  # the real install needs root; --root is for scratch roots
    result = subprocess.run(["bash", str(DEPLOY / "install.sh"), "--bogus"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown option --bogus" in result.stderr


def test_the_example_configuration_is_valid_and_limits_power() -> None:
    cfg = config.load(DEPLOY / "skyscreen.toml")
    assert cfg.layout.type == "dome" and cfg.layout.serpentine
    assert (cfg.frame.height, cfg.frame.width) == (360, 288)
    assert cfg.color.max_milliamps > 0  # the dome at full white would draw kiloamps
    assert cfg.outputs[0].type == "serial" and cfg.outputs[0].port == "/dev/skyscreen"


SHIPPED_CONFIGS = sorted(p for d in ("deploy", "examples", "docs") for p in (REPO / d).rglob("*.toml"))


def test_every_shipped_configuration_is_found() -> None:
    assert DEPLOY / "skyscreen.toml" in SHIPPED_CONFIGS


def loopback_controllers(text: str) -> str:
    """Every network output's controller moved to its own 127.0.0.x (and "multicast" too): test traffic
    never leaves this machine, whatever LAN addresses an example names. Nothing listens there."""
    lines, section, n = [], "", 0
    for line in text.splitlines():
        if re.match(r"^\s*\[", line):
            section = line.split("#", 1)[0].strip()
        if section == "[[outputs]]" and re.match(r"^host\s*=", line):
            n += 1
            line = f'host = "127.0.0.{20 + n}"  # moved to loopback by the test'
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_loopback_controllers_moves_every_output_host_and_nothing_else() -> None:
    text = loopback_controllers(
        '[websocket]\nhost = "0.0.0.0"\n[[outputs]]\ntype = "ddp"\nhost = "10.0.0.21"\n'
        '[[outputs]]   # a comment\ntype = "e131"\nhost = "multicast"\n[[inputs]]\nbind = "0.0.0.0"\n'
    )
    hosts = re.findall(r'^host = "([^"]*)"', text, flags=re.MULTILINE)
    assert hosts == ["0.0.0.0", "127.0.0.21", "127.0.0.22"]
    for path in SHIPPED_CONFIGS:  # and in every shipped file, no network output keeps a LAN address
        cfg = config.parse(tomllib.loads(loopback_controllers(path.read_text())), str(path))
        for out in cfg.outputs:
            if isinstance(out, config.NetworkOutputConfig):
                assert ipaddress.ip_address(out.host).is_loopback, (path, out.host)


@pytest.mark.xdist_group("network-ports")  # the examples send E1.31 and DDP to the standard ports on loopback
@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_configuration_starts_the_daemon(path: Path, tmp_path: Path, display_name: str) -> None:
    """The daemon runs on each configuration file in the repo, as shipped (only the display name and the
    websocket port changed, so it runs beside other tests), and check-config agrees with it."""
    text = path.read_text()
    text = re.sub(r'^name = "[^"]*"', f'name = "{display_name}"', text, count=1, flags=re.MULTILINE)
    text = re.sub(r"^port = 8765\b", "port = 0", text, count=1, flags=re.MULTILINE)
    text = loopback_controllers(text)
    assert display_name in text
    cfg = tmp_path / path.name
    cfg.write_text(text)
    check = subprocess.run(
        [sys.executable, "-m", "skyscreen_hw", "check-config", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0 and ": OK" in check.stdout, check.stderr
    rec = tmp_path / "rec.rgb"
    run = subprocess.run(
        [sys.executable, "-m", "skyscreen_hw", "--config", str(cfg), "--record", str(rec), "--duration", "1.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "running:" in run.stderr and "error" not in run.stderr.lower(), run.stderr
    leds = int(re.search(r"OK, (\d+) LEDs", check.stdout).group(1))
    assert rec.stat().st_size % (leds * 3) == 0 and rec.stat().st_size >= 2 * leds * 3


def test_the_example_configuration_explains_every_key() -> None:
    """Each key set in the example has its comment, and every key the daemon knows appears in it."""
    text = (DEPLOY / "skyscreen.toml").read_text()
    keys = re.compile(r"^\s*#?\s*([a-z_]+) = ", re.MULTILINE)
    for line in text.splitlines():
        if re.match(r"^[a-z_]+ = ", line):
            assert " # " in line, f"no comment on: {line}"
    mentioned = set(keys.findall(text))
    for section in (
        config.FrameConfig,
        config.LayoutConfig,
        config.ColorConfig,
        config.DisplayConfig,
        config.WebsocketConfig,
        *config.OUTPUT_TYPES.values(),
        *config.INPUT_TYPES.values(),
        config.TransformConfig,
    ):
        missing = {f.name for f in dataclasses.fields(section)} - mentioned
        assert not missing, f"{section.__name__}: {sorted(missing)} not in deploy/skyscreen.toml"


# -- systemd-analyze ---------------------------------------------------------------------------------------


@needs_analyze
def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path) -> None:
    root = tmp_path / "root"
    install(root, "--pwm")  # the service, the socket and the ws281x drop-in
    verify_root(root)
    result = subprocess.run(
        [analyze, "verify", f"--root={root}", "skyscreen.service", "skyscreen.socket"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    # and the check can fail: a misspelt directive is reported
    unit = root / "etc/systemd/system/skyscreen.service"
    unit.write_text(unit.read_text().replace("Restart=on-failure", "Restart=sometimes"))
    broken = subprocess.run(
        [analyze, "verify", f"--root={root}", "skyscreen.service"], capture_output=True, text=True, timeout=60
    )
    assert "restart specifier, ignoring: sometimes" in broken.stderr


@needs_analyze
def test_the_service_exposure_is_at_most_2_5() -> None:
    unit = str(DEPLOY / "skyscreen.service")
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=25", "--no-pager", unit],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for skyscreen\.service: (\d+\.\d)", result.stdout + result.stderr)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.5
    assert result.returncode == 0  # --threshold=25 fails above 2.5


def test_the_service_runs_as_skyscreen_with_the_device_groups_and_restarts() -> None:
    unit = (DEPLOY / "skyscreen.service").read_text()
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.lstrip().startswith("#")
    )
    assert settings["Type"] == "notify" and settings["User"] == "skyscreen"
    assert set(settings["SupplementaryGroups"].split()) == {"dialout", "spi", "gpio"}
    assert settings["Restart"] == "on-failure" and int(settings["WatchdogSec"]) > 0
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "PrivateIPC" not in settings  # /dev/shm and the semaphores are shared with pattern programs


# -- the sandbox the unit sets up ----------------------------------------------------------------------------

MDWE_WRAPPER = """
import ctypes, mmap, runpy, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN (Linux 6.3+)
    sys.exit(77)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("writable+executable memory was allowed: MDWE is not in force")
except PermissionError:
    pass
sys.argv = ["skyscreen-hw", *sys.argv[1:]]
runpy.run_module("skyscreen_hw", run_name="__main__")
"""


def test_the_daemon_runs_under_memory_deny_write_execute(display_name: str, tmp_path: Path) -> None:
    """MemoryDenyWriteExecute=yes in the unit: numpy, posix_ipc, websockets and the frame path never need W+X.

    The kernel's own MDWE (prctl PR_SET_MDWE) refuses the same mappings as systemd's seccomp filter does.
    """
    cfg = tmp_path / "mdwe.toml"
    cfg.write_text(
        f'outputs = []\n[frame]\nname = "{display_name}"\nheight = 4\nwidth = 6\n[layout]\ntype = "matrix"\n'
        "[color]\ngamma = 1.0\n[websocket]\nport = 0\n"
    )
    rec, log = tmp_path / "rec.rgb", tmp_path / "log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", MDWE_WRAPPER, "--config", str(cfg), "--record", str(rec)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NOTIFY_SOCKET": ""},
        )
    try:
        deadline = time.monotonic() + 15
        while "running:" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() == 77:
            pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+)")
        found = re.search(r"ws://127\.0\.0\.1:(\d+)", log.read_text())
        assert found, log.read_text()
        with FrameWriter(display_name, 4, 6, timeout=1.0) as w:
            for _ in range(5):
                w.frame[:] = 77
                w.flush()

        async def draw() -> None:
            async with connect(f"ws://127.0.0.1:{found.group(1)}") as ws:
                await ws.send(ins.pack([ins.pixel(0, 0, 15, 15, 15)]))
                await asyncio.sleep(0.3)

        asyncio.run(draw())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    frames = read_recording(rec, 24)
    assert (frames == 77).all(axis=(1, 2)).any() and (frames == 255).any() and frames[-1].sum() == 0
