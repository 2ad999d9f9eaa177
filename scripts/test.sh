#!/usr/bin/env bash
# Run the test suite: unit tests in process, integration tests against a fresh compose stack.
#   scripts/test.sh tests/unit      # just the fast ones
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$ROOT/scripts/install.sh"
cd "$ROOT"
run .venv/bin/pytest "$@"
