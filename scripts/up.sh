#!/usr/bin/env bash
# Build the image and start the stack (or just the services named), then wait until healthy.
#   SYNC_WORKERS=4 scripts/up.sh                       # scale the sync gateway to 4 workers
#   SYNC_WORKERS=2 scripts/up.sh --no-build sync-gateway   # restart one gateway, no rebuild
set -euo pipefail
. "$(dirname "$0")/lib.sh"

build=1
if [ "${1:-}" = --no-build ]; then
  build=0
  shift
fi
for port in "$SYNC_PORT" "$ASYNC_PORT"; do
  holder=$(swarm_service_on_port "$port")
  if [ -n "$holder" ]; then
    log "error: port $port is published by the swarm service $holder: the compose stack and"
    log "the swarm take the same ports, one at a time. Run make swarm-down first, or set"
    log "SYNC_PORT and ASYNC_PORT"
    exit 1
  fi
done
if [ "$build" = 1 ]; then
  build_image
else
  built_base_image
fi
compose up -d "$@"
wait_healthy "${UP_TIMEOUT_S:-180}"
log ""
log "sync gateway:  http://127.0.0.1:${SYNC_PORT}/news   (${SYNC_WORKERS} worker(s))"
log "async gateway: http://127.0.0.1:${ASYNC_PORT}/news   (${ASYNC_WORKERS} worker(s))"
log "console:       http://127.0.0.1:${CONSOLE_PORT}/        (press Run: both gateways race)"
