#!/usr/bin/env bash
# Create .venv from the lock (requirements-dev.txt, hashes checked), and install hey, the
# independent load tool the benchmark is cross-checked against, Debian's chromium and its
# chromedriver, which the console's browser test drives, and Debian's PostgreSQL server,
# which the archive's unit tests run in a temporary directory (tests/unit/postgres.py). Does nothing that is
# already done: a venv installed from this very lock is not touched again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
PYTHON=${PYTHON:-python3}
STAMP=.venv/.installed-from
lock=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
  run "$PYTHON" -m venv .venv
fi
# The lock is the whole closure, so pip installs exactly it (--no-deps) and resolves
# nothing: pip 23's resolver, asked for an extra (pytest-cov wants coverage[toml]),
# looks past the pin to the newest release and then refuses it for having no hash.
# pip check then proves the pins satisfy each other.
if [ "$(cat "$STAMP" 2>/dev/null)" != "$lock" ]; then
  run .venv/bin/pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
    -r requirements-dev.txt
  run .venv/bin/pip check --disable-pip-version-check
  echo "$lock" >"$STAMP"
fi
ensure_debian_package hey || log "warning: could not install hey; the load cross-check test will skip"
ensure_debian_package chromium || log "warning: could not install chromium; the console's browser test will skip"
ensure_debian_package chromium-driver chromedriver || log "warning: could not install chromedriver; the console's browser test will skip"
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  log "PostgreSQL's server is missing; installing postgresql from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
