#!/usr/bin/env bash
# The benchmark CLI from the project's .venv: scripts/bench.sh compare --preset quick
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
[ -x .venv/bin/python ] || "$ROOT/scripts/install.sh"
run .venv/bin/python -m bench "$@"
