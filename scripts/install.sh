#!/usr/bin/env bash
# Create .venv with the pinned host dependencies (tests, lint, benchmark), and install hey,
# the independent load tool the benchmark is cross-checked against.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  run "$PYTHON" -m venv .venv
fi
run .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
ensure_debian_package hey || log "warning: could not install hey; the load cross-check test will skip"
