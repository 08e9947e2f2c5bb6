#!/usr/bin/env bash
# Sets up a fresh Debian machine for stackless_compat: the system packages
# the build and the tests need (a C compiler, libev, c-ares, dnsmasq for the
# DNS tests, PostgreSQL and Redis servers for the driver and plug-in tests,
# which start private instances themselves), then the package itself in
# editable mode with the extras its tests use (test, serve, drivers).
#
#     bash tools/setup.sh            # then: python3 -m pytest
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential libev-dev libc-ares-dev dnsmasq-base postgresql redis-server)
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        echo "please install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
python3 -m pip install -q -e '.[test,serve,drivers]'
