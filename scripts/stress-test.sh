#!/usr/bin/env bash
# The suite beside two CPU hogs, again and again: a test that fails only because the machine
# is busy fails here. Stops at the first failed run.
#   scripts/stress-test.sh                                   # the unit tests, 5 runs
#   RUNS=1 scripts/stress-test.sh tests/integration -m timing  # the timed integration tests
# RUNS: how many runs in a row (5); HOGS: CPU hogs beside them (2); HOG_LIMIT_S: the most a
# hog may live, whatever happens to this script (1800).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-5}
HOGS=${HOGS:-2}
HOG_LIMIT_S=${HOG_LIMIT_S:-1800}
[ $# -gt 0 ] || set -- tests/unit

"$ROOT/scripts/install.sh"
ensure_debian_package stress-ng
cd "$ROOT"

hog=
stop_hog() {
  if [ -n "$hog" ]; then
    kill "$hog" 2>/dev/null || true
    wait "$hog" 2>/dev/null || true
    hog=
  fi
}
trap stop_hog EXIT

passed=0
for run_number in $(seq 1 "$RUNS"); do
  log "--- run $run_number of $RUNS, beside $HOGS CPU hogs"
  # Not through run(): a backgrounded function is a subshell, and $! would be its pid,
  # not the hog's.
  log "+ stress-ng --cpu $HOGS --timeout ${HOG_LIMIT_S}s --quiet &"
  stress-ng --cpu "$HOGS" --timeout "${HOG_LIMIT_S}s" --quiet &
  hog=$!
  started=$SECONDS
  if run .venv/bin/pytest -q --no-cov -p no:cacheprovider "$@"; then
    passed=$((passed + 1))
    stop_hog
    log "--- run $run_number passed in $((SECONDS - started)) s"
  else
    stop_hog
    log "--- run $run_number FAILED after $((SECONDS - started)) s: $passed of $RUNS passed"
    exit 1
  fi
done
log "stress: $passed of $RUNS runs passed beside $HOGS CPU hogs ($*)"
