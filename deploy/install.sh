#!/usr/bin/env bash
# Install skyscreen-hw as a systemd service on Raspberry Pi OS or Debian. Safe to run again.
#
#   sudo deploy/install.sh              install or update, then systemctl enable --now skyscreen
#   sudo deploy/install.sh --pwm        also install the drop-in for ws281x on PWM/PCM (runs as root)
#   sudo deploy/install.sh --uninstall  remove everything but /etc/skyscreen/skyscreen.toml (your configuration)
#   deploy/install.sh --root DIR        lay the files down under DIR and only print the system
#                                       commands (apt, groupadd, useradd, pip, udevadm, systemctl): for tests
#
# What it lays down: /opt/skyscreen/venv (the package with its Pi extras), /etc/skyscreen/skyscreen.toml
# (from deploy/skyscreen.toml, never overwriting yours; the current example is kept beside it), the units in
# /etc/systemd/system, the udev rules in /etc/udev/rules.d, the user and group `skyscreen`, and the
# command /usr/local/bin/skyscreen-hw.
# A second run changes nothing unless the source changed; the service restarts only when something did.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT=""
ACTION=install
PWM=no

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

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
SYSCTL="$ROOT/etc/sysctl.d/60-skyscreen.conf"  # receive buffers big enough for a frame of network input
STATE="$ROOT/var/lib/skyscreen"
LINK="$ROOT/usr/local/bin/skyscreen-hw"  # the command on everybody's PATH: demos, send, check-config
DEVICE_GROUPS=(dialout spi gpio)  # serial controllers, SPI, GPIO: the unit's SupplementaryGroups=
UNITS_CHANGED=no                   # set by put() for the units, so systemd reloads only when needed
RULES_CHANGED=no
PACKAGE_CHANGED=no

say() { echo "skyscreen install: $*"; }

# System commands run for real only on the real root; under --root they are printed.
system() {
    if [ -n "$ROOT" ]; then
        echo "+ $*"
    else
        "$@"
    fi
}

# Copy a file only when its content or mode differs, so a second run changes nothing. Returns 0 when it
# wrote the file, 1 when the file was already there as it should be.
put() {
    local src="$1" dst="$2" mode="$3"
    mkdir -p "$(dirname "$dst")"
    if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
        if [ "$(stat -c %a "$dst")" != "${mode#0}" ]; then
            chmod "$mode" "$dst"
            return 0
        fi
        return 1
    fi
    install -m "$mode" "$src" "$dst"
    say "installed $dst"
    return 0
}

install_packages() {
    local wanted=(python3 python3-venv python3-dev gcc pkg-config libsystemd-dev)
    local missing=()
    for p in "${wanted[@]}"; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || missing+=("$p")
    done
    if [ -n "$ROOT" ] || [ ${#missing[@]} -gt 0 ]; then
        system apt-get update
        system env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${wanted[@]}"
    fi
    if [ -z "$ROOT" ] && ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "install.sh: skyscreen-hw needs Python 3.11 or newer; this system has $(python3 -V)" \
            "(Raspberry Pi OS / Debian Bookworm or later)" >&2
        exit 1
    fi
}

make_user() {
    local g
    for g in skyscreen "${DEVICE_GROUPS[@]}"; do
        if [ -n "$ROOT" ] || ! getent group "$g" >/dev/null; then
            system groupadd --system "$g"  # spi and gpio exist on a Pi, not on plain Debian
        fi
    done
    local groups_csv
    groups_csv="$(IFS=,; echo "${DEVICE_GROUPS[*]}")"
    if [ -n "$ROOT" ] || ! id skyscreen >/dev/null 2>&1; then
        system useradd --system --gid skyscreen --groups "$groups_csv" --home-dir /var/lib/skyscreen \
            --no-create-home --shell /usr/sbin/nologin skyscreen
        return
    fi
    for g in "${DEVICE_GROUPS[@]}"; do
        if ! id -nG skyscreen | tr ' ' '\n' | grep -qx "$g"; then
            system usermod --append --groups "$groups_csv" skyscreen
            return
        fi
    done
}

# A hash of the source that goes into the venv: pip runs again only when it changed.
source_hash() {
    (cd "$SRC" && find pyproject.toml skyscreen_hw -type f \( -name '*.py' -o -name '*.toml' -o -name '*.c' \) -print0 \
        | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

make_venv() {
    if [ -n "$ROOT" ]; then
        mkdir -p "$OPT"
        echo "+ python3 -m venv $OPT/venv && $OPT/venv/bin/pip install ${SRC}[pi]"
    else
        local stamp="$OPT/venv/.skyscreen-source" hash
        hash="$(source_hash)"
        if [ ! -x "$OPT/venv/bin/skyscreen-hw" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$hash" ]; then
            [ -x "$OPT/venv/bin/python" ] || python3 -m venv "$OPT/venv"
            "$OPT/venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
            # built from a copy, so no root-owned build/ and *.egg-info are left in your checkout
            local build
            build="$(mktemp -d)"
            cp -r "$SRC/pyproject.toml" "$SRC/README.md" "$SRC/skyscreen_hw" "$build/"
            "$OPT/venv/bin/pip" install --quiet --disable-pip-version-check --upgrade "${build}[pi]"
            rm -rf "$build"
            echo "$hash" >"$stamp"
            PACKAGE_CHANGED=yes
            say "installed skyscreen-hw into $OPT/venv"
        fi
    fi
    put "$SRC/README.md" "$OPT/README.md" 0644 || true
    if [ -e "$LINK" ] && [ ! -L "$LINK" ]; then
        say "left $LINK alone: it is not a link of ours (another skyscreen-hw installed there?)"
    elif [ "$(readlink "$LINK" 2>/dev/null || true)" != /opt/skyscreen/venv/bin/skyscreen-hw ]; then
        mkdir -p "$(dirname "$LINK")"
        ln -sfn /opt/skyscreen/venv/bin/skyscreen-hw "$LINK"
        say "linked $LINK"
    fi
}

install_config() {
    put "$SRC/deploy/skyscreen.toml" "$ETC/skyscreen.toml.example" 0644 || true
    if [ ! -e "$ETC/skyscreen.toml" ]; then
        install -m 0640 "$SRC/deploy/skyscreen.toml" "$ETC/skyscreen.toml"
        say "installed $ETC/skyscreen.toml: edit it, then systemctl reload skyscreen"
    else
        say "kept your $ETC/skyscreen.toml (the current example is skyscreen.toml.example)"
    fi
    # readable by the service (group skyscreen), not by everybody: it may hold the websocket token
    if [ -z "$ROOT" ] && [ "$(stat -c %G "$ETC/skyscreen.toml")" != skyscreen ]; then
        chgrp skyscreen "$ETC/skyscreen.toml"
    fi
}

install_units() {
    if put "$SRC/deploy/skyscreen.service" "$UNITS/skyscreen.service" 0644; then UNITS_CHANGED=yes; fi
    if put "$SRC/deploy/skyscreen.socket" "$UNITS/skyscreen.socket" 0644; then UNITS_CHANGED=yes; fi
    if [ "$PWM" = yes ]; then
        if put "$SRC/deploy/ws281x-pwm.conf" "$DROPIN/ws281x-pwm.conf" 0644; then UNITS_CHANGED=yes; fi
        say "PWM/PCM: the service runs as root; set dtparam=audio=off in /boot/firmware/config.txt"
    elif [ -e "$DROPIN/ws281x-pwm.conf" ]; then
        say "kept $DROPIN/ws281x-pwm.conf from an earlier --pwm (remove it to run as skyscreen again)"
    fi
    if [ -f "$SRC/udev/99-skyscreen.rules" ]; then
        if put "$SRC/udev/99-skyscreen.rules" "$RULES/99-skyscreen.rules" 0644; then RULES_CHANGED=yes; fi
    fi
    if put "$SRC/deploy/60-skyscreen.conf" "$SYSCTL" 0644; then
        system sysctl -p "$SYSCTL"
    fi
    if [ "$RULES_CHANGED" = yes ]; then
        system udevadm control --reload
        system udevadm trigger --subsystem-match=tty --subsystem-match=spidev \
            --subsystem-match=bcm2835-gpiomem --subsystem-match=rpi-gpiomem
    fi
    local was_running=no
    if [ -z "$ROOT" ] && systemctl is-active --quiet skyscreen.service; then
        was_running=yes
    fi
    if [ "$UNITS_CHANGED" = yes ]; then
        system systemctl daemon-reload
    fi
    system systemctl enable --now skyscreen.service  # starts it the first time, a no-op afterwards
    if [ "$was_running" = yes ] && [ "$UNITS_CHANGED$PACKAGE_CHANGED" != nono ]; then
        system systemctl restart skyscreen.service  # an update: run the new version
    fi
}

uninstall() {
    system systemctl disable --now skyscreen.service skyscreen.socket || true
    rm -f "$UNITS/skyscreen.service" "$UNITS/skyscreen.socket" "$DROPIN/ws281x-pwm.conf"
    rmdir "$DROPIN" 2>/dev/null || true
    rm -f "$RULES/99-skyscreen.rules" "$SYSCTL"
    rm -rf "$OPT" "$STATE"
    if [ "$(readlink "$LINK" 2>/dev/null || true)" = /opt/skyscreen/venv/bin/skyscreen-hw ]; then
        rm -f "$LINK"
    fi
    rm -f "$ETC/skyscreen.toml.example"
    system systemctl daemon-reload
    system udevadm control --reload
    if [ -e "$ETC/skyscreen.toml" ]; then
        # the configuration stays, readable by root only, not by whoever gets the group's number next
        system chgrp root "$ETC/skyscreen.toml"
    fi
    if [ -n "$ROOT" ] || id skyscreen >/dev/null 2>&1; then
        system userdel skyscreen  # Debian's userdel also removes the user's own group
    fi
    if [ -n "$ROOT" ] || getent group skyscreen >/dev/null; then
        system groupdel skyscreen
    fi
    say "removed skyscreen-hw; kept $ETC/skyscreen.toml (and the groups ${DEVICE_GROUPS[*]})"
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
