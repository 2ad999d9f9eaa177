#!/usr/bin/env bash
# Local mode: the same five services as gunicorn processes on loopback, no Docker needed.
#   scripts/local.sh up | down | status
# Ports: upstreams on 127.0.0.1:9101-9103 (LOCAL_UPSTREAM_PORT moves the first), gateways on
# SYNC_PORT/ASYNC_PORT (8001/8002). The same env vars as compose apply (delays, worker counts,
# threadpool, pool limits). Pid files and logs go to LOCAL_RUN_DIR (.local).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUN_DIR=${LOCAL_RUN_DIR:-$ROOT/.local}
PY="$ROOT/.venv/bin"
first=${LOCAL_UPSTREAM_PORT:-9101}
SOURCES=(
  wire:$first:"${WIRE_DELAY_MS:-300}"
  gazette:$((first + 1)):"${GAZETTE_DELAY_MS:-500}"
  chronicle:$((first + 2)):"${CHRONICLE_DELAY_MS:-800}"
)

# start NAME PORT APP [ENV=VALUE ...]: one gunicorn master in the background, pid in .local/.
start() {
  local name=$1 port=$2 app=$3
  shift 3
  log "+ gunicorn $app on 127.0.0.1:$port ($name)"
  # Every stream goes to the log, so nothing holds this script's output open after it ends.
  (cd "$ROOT" && exec env BIND="127.0.0.1:$port" ACCESS_LOG="${ACCESS_LOG:-true}" "$@" \
    "$PY/gunicorn" --config gunicorn.conf.py --pid "$RUN_DIR/$name.pid" "$app") \
    >"$RUN_DIR/$name.log" 2>&1 </dev/null &
}

wait_local_healthy() {
  "$PY/python" - "$@" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 30
for port in sys.argv[1:]:
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"port {port} not healthy after 30 s; see the logs in LOCAL_RUN_DIR")
            time.sleep(0.2)
PY
}

up() {
  [ -x "$PY/gunicorn" ] || "$ROOT/scripts/install.sh"
  mkdir -p "$RUN_DIR"
  local gateway_sources="" entry name port delay ports=()
  for entry in "${SOURCES[@]}"; do
    IFS=: read -r name port delay <<<"$entry"
    start "upstream-$name" "$port" "upstream.main:create_app()" WEB_CONCURRENCY="${UPSTREAM_WORKERS:-1}" \
      UPSTREAM_NAME="$name" UPSTREAM_DELAY_MS="$delay" GUNICORN_KEEPALIVE="${UPSTREAM_KEEPALIVE_S:-75}" \
      UPSTREAM_JITTER_MS="${UPSTREAM_JITTER_MS:-0}" UPSTREAM_MAX_DELAY_MS="${UPSTREAM_MAX_DELAY_MS:-10000}"
    gateway_sources+="${gateway_sources:+,}$name=http://127.0.0.1:$port"
    ports+=("$port")
  done
  wait_local_healthy "${ports[@]}"
  start sync-gateway "${SYNC_PORT:-8001}" "gateway.sync_app:create_app()" GATEWAY_SOURCES="$gateway_sources" \
    WEB_CONCURRENCY="${SYNC_WORKERS:-1}" GATEWAY_THREADPOOL_TOKENS="${SYNC_THREADPOOL_TOKENS:-40}" \
    GATEWAY_MAX_IN_FLIGHT="${SYNC_MAX_IN_FLIGHT:-0}"
  start async-gateway "${ASYNC_PORT:-8002}" "gateway.async_app:create_app()" GATEWAY_SOURCES="$gateway_sources" \
    WEB_CONCURRENCY="${ASYNC_WORKERS:-1}" GATEWAY_HTTP_CLIENT="${ASYNC_HTTP_CLIENT:-httpx-aiohttp}" \
    GATEWAY_MAX_CONNECTIONS="${ASYNC_MAX_CONNECTIONS:-3000}" \
    GATEWAY_MAX_KEEPALIVE_CONNECTIONS="${ASYNC_MAX_KEEPALIVE_CONNECTIONS:-3000}" \
    GATEWAY_MAX_IN_FLIGHT="${ASYNC_MAX_IN_FLIGHT:-0}"
  wait_local_healthy "${SYNC_PORT:-8001}" "${ASYNC_PORT:-8002}"
  log "local stack up; logs in $RUN_DIR/*.log; stop it with: scripts/local.sh down"
}

down() {
  local pidfile pid
  for pidfile in "$RUN_DIR"/*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    log "+ kill $pid ($(basename "$pidfile" .pid))"
    kill "$pid" 2>/dev/null || true
  done
  # gunicorn removes its pid file once its workers have stopped.
  for _ in $(seq 1 50); do
    compgen -G "$RUN_DIR/*.pid" >/dev/null || return 0
    sleep 0.2
  done
  log "error: still running: $(ls "$RUN_DIR"/*.pid)"
  return 1
}

status() {
  local pidfile
  for pidfile in "$RUN_DIR"/*.pid; do
    [ -e "$pidfile" ] || { log "local stack is not running"; return 0; }
    printf '%-20s pid %s\n' "$(basename "$pidfile" .pid)" "$(cat "$pidfile")"
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) log "usage: scripts/local.sh up|down|status"; exit 2 ;;
esac
