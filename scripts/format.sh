#!/usr/bin/env bash
# Format the code and apply ruff's safe fixes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
"$ROOT/scripts/install.sh"
cd "$ROOT"
run .venv/bin/ruff format .
run .venv/bin/ruff check --fix .
