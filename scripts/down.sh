#!/usr/bin/env bash
# Stop the stack and remove its containers and networks. The archive's data stays, on its
# volume, for the next start; --volumes (make reset-db) removes it too, and the next start
# seeds it afresh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# With the TLS overlay whatever UPSTREAM_TLS says now: its certs volume goes either way.
UPSTREAM_TLS=true UPSTREAM_HTTP2=false
if [ "${1:-}" = --volumes ]; then
  compose down -v --remove-orphans
  exit 0
fi
compose down --remove-orphans
certs="${COMPOSE_PROJECT_NAME}_certs"
if docker volume inspect "$certs" >/dev/null 2>&1; then
  run docker volume rm "$certs" >/dev/null
fi
