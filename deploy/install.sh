#!/usr/bin/env bash
# Install skyscreen-hw as a systemd service on Raspberry Pi OS or Debian. Safe to run again.
#
#   sudo deploy/install.sh              install or update, then systemctl enable --now skyscreen
#   sudo deploy/install.sh --pwm        also install the drop-in for ws281x on PWM/PCM (runs as root)
#   sudo deploy/install.sh --uninstall  remove everything but /etc/skyscreen (your configuration)
#   deploy/install.sh --root DIR        lay the files down under DIR and only print the system
#                                       commands (apt, useradd, pip, systemctl): for tests and packaging
#
# What it lays down: /opt/skyscreen/venv (the package with its Pi extras), /etc/skyscreen/skyscreen.toml
# (from deploy/skyscreen.toml, never overwriting yours; the example is kept beside it), the units in
# /etc/systemd/system, the udev rules in /etc/udev/rules.d, and the user and group `skyscreen`.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT=""
ACTION=install
PWM=no

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
        --root=*) ROOT="${1#--root=}"; shift ;;
        --uninstall) ACTION=uninstall; shift ;;
        --pwm) PWM=yes; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [ -n "$ROOT" ]; then
    mkdir -p "$ROOT"
    ROOT="$(cd "$ROOT" && pwd)"
elif [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo $0), or with --root DIR to lay the files down elsewhere" >&2
    exit 1
fi

OPT="$ROOT/opt/skyscreen"
ETC="$ROOT/etc/skyscreen"
UNITS="$ROOT/etc/systemd/system"
DROPIN="$UNITS/skyscreen.service.d"
RULES="$ROOT/etc/udev/rules.d"
GROUPS_NEEDED=(skyscreen dialout spi gpio)

say() { echo "skyscreen install: $*"; }

# System commands run for real only on the real root; under --root they are printed.
system() {
    if [ -n "$ROOT" ]; then
        echo "+ $*"
    else
        "$@"
    fi
}

# Copy a file only when its content or mode differs, so a second run changes nothing.
put() {
    local src="$1" dst="$2" mode="$3"
    mkdir -p "$(dirname "$dst")"
    if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
        [ "$(stat -c %a "$dst")" = "${mode#0}" ] || chmod "$mode" "$dst"
        return 0
    fi
    install -m "$mode" "$src" "$dst"
    say "installed $dst"
}

install_packages() {
    local wanted=(python3 python3-venv python3-dev gcc pkg-config libsystemd-dev)
    local missing=()
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ -n "$ROOT" ] || [ ${#missing[@]} -gt 0 ]; then
        system apt-get update
        system apt-get install -y --no-install-recommends "${wanted[@]}"
    fi
}

make_user() {
    for g in "${GROUPS_NEEDED[@]}"; do
        if [ -n "$ROOT" ] || ! getent group "$g" >/dev/null; then
            system groupadd --system "$g"
        fi
    done
    if [ -n "$ROOT" ] || ! id skyscreen >/dev/null 2>&1; then
        system useradd --system --gid skyscreen --groups dialout,spi,gpio --home-dir /var/lib/skyscreen \
            --no-create-home --shell /usr/sbin/nologin skyscreen
    else
        system usermod --append --groups dialout,spi,gpio skyscreen
    fi
}

make_venv() {
    if [ -n "$ROOT" ]; then
        mkdir -p "$OPT"
        echo "+ python3 -m venv $OPT/venv && $OPT/venv/bin/pip install $SRC[pi]"
    else
        [ -x "$OPT/venv/bin/python" ] || python3 -m venv "$OPT/venv"
        "$OPT/venv/bin/pip" install --quiet --upgrade pip
        "$OPT/venv/bin/pip" install --quiet --upgrade "$SRC[pi]"
        say "installed skyscreen-hw into $OPT/venv"
    fi
    put "$SRC/README.md" "$OPT/README.md" 0644
}

install_config() {
    put "$SRC/deploy/skyscreen.toml" "$ETC/skyscreen.toml.example" 0644
    if [ ! -e "$ETC/skyscreen.toml" ]; then
        install -m 0640 "$SRC/deploy/skyscreen.toml" "$ETC/skyscreen.toml"
        say "installed $ETC/skyscreen.toml: edit it, then systemctl reload skyscreen"
    else
        say "kept your $ETC/skyscreen.toml (the current example is skyscreen.toml.example)"
    fi
    if [ -z "$ROOT" ]; then
        chgrp skyscreen "$ETC/skyscreen.toml"
    fi
}

install_units() {
    put "$SRC/deploy/skyscreen.service" "$UNITS/skyscreen.service" 0644
    put "$SRC/deploy/skyscreen.socket" "$UNITS/skyscreen.socket" 0644
    if [ "$PWM" = yes ]; then
        put "$SRC/deploy/ws281x-pwm.conf" "$DROPIN/ws281x-pwm.conf" 0644
    fi
    put "$SRC/udev/99-skyscreen.rules" "$RULES/99-skyscreen.rules" 0644
    system udevadm control --reload
    system udevadm trigger --subsystem-match=tty --subsystem-match=spidev
    local was_running=no
    if [ -z "$ROOT" ] && systemctl is-active --quiet skyscreen.service; then
        was_running=yes
    fi
    system systemctl daemon-reload
    system systemctl enable --now skyscreen.service
    if [ "$was_running" = yes ]; then
        system systemctl restart skyscreen.service  # a re-run: pick up the new version
    fi
}

uninstall() {
    system systemctl disable --now skyscreen.service skyscreen.socket || true
    rm -f "$UNITS/skyscreen.service" "$UNITS/skyscreen.socket" "$DROPIN/ws281x-pwm.conf"
    rmdir "$DROPIN" 2>/dev/null || true
    rm -f "$RULES/99-skyscreen.rules"
    rm -rf "$OPT"
    system systemctl daemon-reload
    system udevadm control --reload
    if [ -n "$ROOT" ] || id skyscreen >/dev/null 2>&1; then
        system userdel skyscreen
    fi
    say "removed skyscreen-hw; kept $ETC and the group skyscreen"
}

if [ "$ACTION" = uninstall ]; then
    uninstall
    exit 0
fi
install_packages
make_user
make_venv
install_config
install_units
say "done: systemctl status skyscreen; journalctl -u skyscreen -f"
