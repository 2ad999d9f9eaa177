#!/usr/bin/env bash
# The README's picture of the console, made the browser test's way: a test stack of its own,
# a race of K=10 on /news in headless Chromium, the page saved as Chromium draws it. The
# browser test's other races are skipped; their screenshots come with every make test, in
# reports/console/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$ROOT/scripts/install.sh"
cd "$ROOT"
CONSOLE_SHOTS="$ROOT/docs/results" CONSOLE_SHOT_PREFIX=console- FANOUT_REQUIRE_DOCKER=1 \
  run .venv/bin/pytest tests/integration/test_console.py -k staircase --no-cov -p no:randomly
log "docs/results/console-news.png"
