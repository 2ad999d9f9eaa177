#!/usr/bin/env bash
# Run the test suite with coverage: unit tests in process, integration tests against a
# fresh compose stack. CI runs both halves (.ci/run).
#   scripts/test.sh              # make test: everything but the slow tests, with the floors
#   scripts/test.sh --slow       # make test-slow: the swarm, the bench's matrices, the fuzzing
#   scripts/test.sh tests/unit   # any pytest arguments: coverage printed, no floor
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$ROOT/scripts/install.sh"
cd "$ROOT"

# The images, before any test starts a stack: from an engine with none, building the offline
# bases, PostgreSQL's and the lab's takes minutes, past a test's 300 s (pytest-timeout) when
# the first integration test's stack would build them. Cached, a few seconds.
build_images() {
  if docker info >/dev/null 2>&1; then
    build_image
  fi
}
case "${1:-}" in
  "")
    # The unit tests in 4 processes: most of their time is waiting on loopback sockets, so
    # 4 go faster than 2 cores would suggest (97 s against 280 s in a row, and 144 s beside
    # two CPU hogs). The integration tests share one stack, so they run in one process.
    run .venv/bin/pytest tests/unit -n 4 --cov --cov-report= -m "not slow"
    build_images
    run .venv/bin/pytest tests/integration --cov --cov-append --cov-report=term -m "not slow"
    # The services' code runs in process under the unit tests: 90%. The benchmark's library
    # runs in process too, and its matrix partly in `python -m bench` subprocesses: 80%.
    run .venv/bin/coverage report --omit='bench/*' --fail-under=90
    run .venv/bin/coverage report --include='bench/*' --fail-under=80
    ;;
  --slow)
    # No coverage: the floors are make test's, and this would write over its data file.
    # The cluster runs in a session of its own, once the compose test stack is gone: the
    # engine would cut that stack's networking when the cluster leaves the swarm.
    shift
    build_images
    run .venv/bin/pytest -m "slow and not cluster" "$@"
    run .venv/bin/pytest -m cluster "$@"
    ;;
  *)
    run .venv/bin/pytest --cov --cov-report=term "$@"
    ;;
esac
