#!/usr/bin/env bash
# The lab on Docker Swarm (docs/scale-out.md), from the same compose file:
#   scripts/swarm.sh up                                   # make up, on a swarm
#   scripts/swarm.sh scale upstream-wire=5 sync-gateway=1 # replicas per service
#   scripts/swarm.sh status
#   scripts/swarm.sh down
# `up` initialises a one-node swarm when none is active, builds the image, deploys the stack
# (SWARM_STACK, fanout) and waits until every replica is healthy. `down` removes the stack,
# and leaves the swarm only if `up` created it. The gateways take the same ports as compose:
# `up` refuses to start while anything answers on them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

STACK=${SWARM_STACK:-fanout}
STATE_DIR=${SWARM_STATE_DIR:-$ROOT/.swarm}
# Written by `up` when it initialised the swarm; `down` leaves the swarm only then.
CREATED="$STATE_DIR/created-by-$STACK"

swarm_state() { docker info --format '{{.Swarm.LocalNodeState}}'; }

# Something already answers on a gateway port: the compose stack, local mode, anything.
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stack_services() { docker stack services "$STACK" --format '{{.Name}} {{.Replicas}}' 2>/dev/null; }

# Until every service runs all its replicas (a task with a healthcheck counts once healthy).
wait_converged() {
  local deadline=$((SECONDS + $1)) lines pending
  while [ $SECONDS -lt "$deadline" ]; do
    lines=$(stack_services)
    pending=$(awk '{ split($2, r, "/"); if (r[1] != r[2]) print $1 }' <<<"$lines")
    if [ -n "$lines" ] && [ -z "$pending" ]; then
      log "every replica is running and healthy:"
      log "$lines"
      return 0
    fi
    sleep 2
  done
  log "error: not converged after $1 s:"
  docker stack ps "$STACK" --no-trunc --format '{{.Name}} {{.CurrentState}} {{.Error}}' >&2 || true
  return 1
}

up() {
  local port
  for port in "$SYNC_PORT" "$ASYNC_PORT"; do
    if port_taken "$port"; then
      log "error: port $port already answers: stop what holds it first (make down stops the"
      log "compose stack, make local-down local mode), or set SYNC_PORT and ASYNC_PORT"
      return 1
    fi
  done
  if [ "$(swarm_state)" = inactive ]; then
    mkdir -p "$STATE_DIR"
    run docker swarm init --advertise-addr 127.0.0.1 >/dev/null
    touch "$CREATED"
  fi
  ensure_base_image
  compose build
  # One node runs the image it built: no registry is asked for a digest (SWARM_RESOLVE_IMAGE).
  run docker stack deploy --prune --resolve-image "$SWARM_RESOLVE_IMAGE" \
    -c "$ROOT/docker-compose.yml" -c "$ROOT/docker-compose.swarm.yml" "$STACK"
  wait_converged "${UP_TIMEOUT_S:-240}"
  log ""
  log "sync gateway:  http://127.0.0.1:$SYNC_PORT/news   ($SYNC_REPLICAS replica(s) of $SYNC_WORKERS worker(s))"
  log "async gateway: http://127.0.0.1:$ASYNC_PORT/news   ($ASYNC_REPLICAS replica(s) of $ASYNC_WORKERS worker(s))"
}

scale() {
  [ $# -gt 0 ] || { log "usage: scripts/swarm.sh scale SERVICE=REPLICAS ..."; return 2; }
  local pair targets=()
  for pair in "$@"; do
    targets+=("${STACK}_$pair")
  done
  run docker service scale --detach "${targets[@]}"
  wait_converged "${UP_TIMEOUT_S:-240}"
}

stack_left() {
  [ -n "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] ||
    [ -n "$(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK")" ]
}

down() {
  if docker stack ls --format '{{.Name}}' 2>/dev/null | grep -qx "$STACK"; then
    # The engine removes a stack's tasks, then its network; removing the network while a
    # task still stops fails, so ask again until everything is gone (bounded).
    run docker stack rm "$STACK" || log "the stack is still going; asking again"
    local deadline=$((SECONDS + 90))
    while stack_left && [ $SECONDS -lt $deadline ]; do
      sleep 2
      docker stack rm "$STACK" >/dev/null 2>&1 || true
    done
  fi
  if [ -e "$CREATED" ]; then
    # Leaving removes whatever is left of the stack too. Right after a stack goes, the
    # engine may still be busy with its network: retry.
    local attempt
    for attempt in 1 2 3 4 5; do
      if run docker swarm leave --force >/dev/null; then
        rm -f "$CREATED"
        return 0
      fi
      log "swarm leave failed (attempt $attempt of 5); retrying in 3 s"
      sleep 3
    done
    log "error: could not leave the swarm this script created; run: docker swarm leave --force"
    return 1
  fi
  if stack_left; then
    log "error: stack $STACK still has containers or networks after 90 s"
    return 1
  fi
}

status() {
  log "swarm: $(swarm_state)"
  stack_services || true
}

case "${1:-}" in
  up) up ;;
  scale) shift; scale "$@" ;;
  down) down ;;
  status) status ;;
  *) log "usage: scripts/swarm.sh up|scale SERVICE=N ...|down|status"; exit 2 ;;
esac
