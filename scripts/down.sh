#!/usr/bin/env bash
# Stop the stack and remove its containers, networks and volumes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# With the TLS overlay whatever UPSTREAM_TLS says now: its certs volume goes too.
UPSTREAM_TLS=true UPSTREAM_HTTP2=false compose down -v --remove-orphans
