#!/usr/bin/env bash
# Set up stackless_compat (editable install, builds the C extension), run a
# legacy Stackless program through the runner, then serve a real workload:
# the game-lobby server under patch_all(), driven by its built-in load of
# 200 client connections, which checks every chat line and reports.
# From a fresh clone:
#
#     bash examples/run_main.sh [rounds]
#
# SLP_SKIP_INSTALL=1 skips the pip step (the tests use it);
# LOBBY_ARGS="--clients 1000 --messages 50" sizes the lobby load.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ -z "${SLP_SKIP_INSTALL:-}" ]; then
    bash tools/setup.sh         # system packages, then pip install -e .
fi
python3 -m stackless_compat examples/legacy_pingpong.py "$@"
echo
# shellcheck disable=SC2086  # LOBBY_ARGS is a list of options
python3 -m stackless_compat --patch examples/lobby_server.py ${LOBBY_ARGS:-}
