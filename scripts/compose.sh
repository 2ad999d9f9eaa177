#!/usr/bin/env bash
# Run any compose command against this project, with v1 or v2, e.g. `scripts/compose.sh logs -f`.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

compose "$@"
