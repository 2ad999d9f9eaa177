#!/usr/bin/env bash
# Create .venv and install the pinned host dependencies (tests, lint, benchmark).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "+ $PYTHON -m venv .venv"
  "$PYTHON" -m venv .venv
fi
echo "+ .venv/bin/pip install -r requirements-dev.txt"
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
