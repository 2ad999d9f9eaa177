#!/usr/bin/env bash
# Lint, format check, strict type check, and the lock files against pyproject.toml.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$ROOT/scripts/install.sh"
cd "$ROOT"
run .venv/bin/ruff check .
run .venv/bin/ruff format --check .
run .venv/bin/mypy .
run "$ROOT/scripts/lock.sh" --check
