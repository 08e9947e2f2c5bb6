#!/usr/bin/env bash
# Set up stackless_compat (editable install, builds the C extension) and run
# a legacy Stackless program through the runner.  From a fresh clone:
#
#     bash examples/run_main.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q -e .
python3 -m stackless_compat examples/legacy_pingpong.py "$@"
