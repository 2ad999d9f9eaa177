#!/usr/bin/env bash
# Stop the stack and remove its containers, networks and volumes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

compose down -v --remove-orphans
