#!/usr/bin/env bash
# Resolve pyproject.toml into the two lock files, every transitive pin with its hashes:
# requirements.txt (what the image installs) and requirements-dev.txt (the host venv: the
# same pins, plus the dev and bench groups).
#   scripts/lock.sh            # after editing pyproject.toml
#   scripts/lock.sh --check    # fail when a lock file is out of date (make lint runs it)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
"$ROOT/scripts/install.sh"
UV="$ROOT/.venv/bin/uv"

# Existing pins are kept unless pyproject.toml asks for others (uv prefers the output's).
lock() {
  local compile=("$UV" pip compile pyproject.toml --quiet --universal --python-version 3.11
    --generate-hashes --custom-compile-command scripts/lock.sh)
  run "${compile[@]}" -o requirements.txt
  run "${compile[@]}" --group dev -c requirements.txt -o requirements-dev.txt
}

if [ "${1:-}" != --check ]; then
  lock
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp pyproject.toml README.md LICENSE requirements.txt requirements-dev.txt "$work/"
(cd "$work" && lock)
for file in requirements.txt requirements-dev.txt; do
  if ! diff -u "$file" "$work/$file" >&2; then
    log "error: $file is out of date with pyproject.toml; run scripts/lock.sh"
    exit 1
  fi
done
log "lock files match pyproject.toml"
