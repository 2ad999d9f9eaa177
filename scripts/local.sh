#!/usr/bin/env bash
# Local mode: the same five services as gunicorn processes on loopback, no Docker needed.
#   scripts/local.sh up | upstreams | down | status
# Ports: upstreams on WIRE_PORT, GAZETTE_PORT, CHRONICLE_PORT (LOCAL_UPSTREAM_PORT moves all
# three), gateways on SYNC_PORT/ASYNC_PORT. The same .env as compose applies (delays, worker
# counts, threadpool, pool limits). `upstreams` starts only the three sources (bench
# pool-cost runs them so). Pid files and logs go to LOCAL_RUN_DIR (.local).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUN_DIR=${LOCAL_RUN_DIR:-$ROOT/.local}
PY="$ROOT/.venv/bin"
# The sources' ports come from .env; LOCAL_UPSTREAM_PORT moves all three (first, +1, +2).
if [ -n "${LOCAL_UPSTREAM_PORT:-}" ]; then
  WIRE_PORT=$LOCAL_UPSTREAM_PORT
  GAZETTE_PORT=$((LOCAL_UPSTREAM_PORT + 1))
  CHRONICLE_PORT=$((LOCAL_UPSTREAM_PORT + 2))
fi
SOURCES=(
  wire:"$WIRE_PORT":"$WIRE_DELAY_MS"
  gazette:"$GAZETTE_PORT":"$GAZETTE_DELAY_MS"
  chronicle:"$CHRONICLE_PORT":"$CHRONICLE_DELAY_MS"
)

# start NAME PORT APP [ENV=VALUE ...]: one gunicorn master in the background, pid in .local/.
start() {
  local name=$1 port=$2 app=$3
  shift 3
  log "+ gunicorn $app on 127.0.0.1:$port ($name)"
  # Every stream goes to the log, so nothing holds this script's output open after it ends.
  (cd "$ROOT" && exec env BIND="127.0.0.1:$port" ACCESS_LOG="$ACCESS_LOG" "$@" \
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

# The three sources, as the stack runs them (keep-alive included), until `down`.
upstreams() {
  [ -x "$PY/gunicorn" ] || "$ROOT/scripts/install.sh"
  mkdir -p "$RUN_DIR"
  local entry name port delay ports=()
  for entry in "${SOURCES[@]}"; do
    IFS=: read -r name port delay <<<"$entry"
    start "upstream-$name" "$port" "upstream.main:create_app()" WEB_CONCURRENCY="$UPSTREAM_WORKERS" \
      UPSTREAM_NAME="$name" UPSTREAM_DELAY_MS="$delay" GUNICORN_KEEPALIVE="$UPSTREAM_KEEPALIVE_S" \
      ACCESS_LOG="$UPSTREAM_ACCESS_LOG"
    ports+=("$port")
  done
  wait_local_healthy "${ports[@]}"
}

up() {
  upstreams
  local gateway_sources="" entry name port delay
  for entry in "${SOURCES[@]}"; do
    IFS=: read -r name port delay <<<"$entry"
    gateway_sources+="${gateway_sources:+,}$name=http://127.0.0.1:$port"
  done
  start sync-gateway "$SYNC_PORT" "gateway.sync_app:create_app()" GATEWAY_SOURCES="$gateway_sources" \
    WEB_CONCURRENCY="$SYNC_WORKERS" GATEWAY_THREADPOOL_TOKENS="$SYNC_THREADPOOL_TOKENS" \
    GATEWAY_SYNC_HTTP_CLIENT="$SYNC_HTTP_CLIENT" GATEWAY_MAX_IN_FLIGHT="$SYNC_MAX_IN_FLIGHT"
  start async-gateway "$ASYNC_PORT" "gateway.async_app:create_app()" GATEWAY_SOURCES="$gateway_sources" \
    WEB_CONCURRENCY="$ASYNC_WORKERS" GATEWAY_ASYNC_HTTP_CLIENT="$ASYNC_HTTP_CLIENT" \
    GATEWAY_MAX_CONNECTIONS="$ASYNC_MAX_CONNECTIONS" \
    GATEWAY_MAX_KEEPALIVE_CONNECTIONS="$ASYNC_MAX_KEEPALIVE_CONNECTIONS" \
    GATEWAY_MAX_IN_FLIGHT="$ASYNC_MAX_IN_FLIGHT"
  wait_local_healthy "$SYNC_PORT" "$ASYNC_PORT"
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
  upstreams) upstreams ;;
  down) down ;;
  status) status ;;
  *) log "usage: scripts/local.sh up|upstreams|down|status"; exit 2 ;;
esac
