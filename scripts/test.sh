#!/usr/bin/env bash
# Run the test suite: unit tests in process, integration tests against a fresh compose stack,
# with coverage. The whole suite (no arguments) holds each package to its floor.
#   scripts/test.sh tests/unit      # just the fast ones, coverage printed, no floor
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$ROOT/scripts/install.sh"
cd "$ROOT"
run .venv/bin/pytest --cov --cov-report=term "$@"
if [ $# -eq 0 ]; then
  # The services' code runs in process under the unit tests: 90%. The benchmark's matrix and
  # CLI run partly in `python -m bench` subprocesses the integration tests start: 80%.
  run .venv/bin/coverage report --include='gateway/*,upstream/*,observability/*,serving/*' --fail-under=90
  run .venv/bin/coverage report --include='bench/*' --fail-under=80
fi
