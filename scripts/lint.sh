#!/usr/bin/env bash
# Lint, format check and strict type check.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$ROOT/scripts/install.sh"
cd "$ROOT"
run .venv/bin/ruff check .
run .venv/bin/ruff format --check .
run .venv/bin/mypy .
