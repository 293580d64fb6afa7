#!/usr/bin/env bash
# Set-up and entry points on a fresh Debian/Ubuntu machine (Python 3.11+):
#   ./dev.sh demo [ARGS...]   the simulator with a demo pattern moving on the dome
#   ./dev.sh test [ARGS...]   install what the tests need, then ruff and the whole test suite
# Installs missing apt packages (with sudo unless root) and a virtualenv in .venv.
set -euo pipefail
cd "$(dirname "$0")"

APT_DEMO=(python3-venv python3-dev gcc)  # gcc, python3-dev: the colour step's C lookups (skyscreen_hw/_tables.c)
APT_TEST=(python3-venv python3-dev gcc pkg-config libsystemd-dev systemd shellcheck chromium chromium-driver ola ola-python iproute2 util-linux)  # systemd: systemd-analyze; chromium: tests/test_browser.py; ola: tests/test_ola.py, tests/test_inputs_ola.py; iproute2, util-linux: its network namespace (ip, unshare)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "dev.sh: installing ${missing[*]}"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

venv() {
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { echo "dev.sh: Python 3.11 or newer is needed (python3 is $(python3 -V))" >&2; exit 1; }
    # a venv without pip (Debian's python3-venv missing) is redone
    [ -x .venv/bin/pip ] || { rm -rf .venv; python3 -m venv .venv; }
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$1]"
}

case "${1:-}" in
    demo)
        shift
        command -v dpkg-query >/dev/null && apt_install "${APT_DEMO[@]}"
        venv sim
        if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}${SDL_VIDEODRIVER:-}" ]; then
            echo "dev.sh: no display here: the simulator runs headless; add --snapshot dome.png --duration 5 to see it"
        fi
        exec .venv/bin/skyscreen-hw --simulate --demo spiral "$@"
        ;;
    test)
        shift
        command -v dpkg-query >/dev/null && apt_install "${APT_TEST[@]}"
        venv test
        .venv/bin/ruff check skyscreen_hw tests bench
        # two workers; modules that hold fixed ports or flip machine-wide settings stay on one worker each;
        # then the few marked `alone` (OLA's olad) with nothing beside them (exit 5: none selected, fine)
        .venv/bin/python -m pytest -n 2 --dist loadgroup -m "not alone" "$@"
        status=0
        .venv/bin/python -m pytest -m alone "$@" || status=$?
        [ "$status" -eq 5 ] && status=0
        exit "$status"
        ;;
    *)
        echo "usage: ./dev.sh demo [skyscreen-hw options] | ./dev.sh test [pytest options]" >&2
        exit 2
        ;;
esac
