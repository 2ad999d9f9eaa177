#!/usr/bin/env bash
# The lab on Docker Swarm (docs/scale-out.md), from the same compose file:
#   scripts/swarm.sh up                                   # make up, on a swarm
#   scripts/swarm.sh scale upstream-wire=5 async-gateway=2 # replicas per service
#   scripts/swarm.sh gateway async-gateway 2 1             # replicas, workers per replica
#   scripts/swarm.sh urls async-gateway                    # each replica's URL
#   scripts/swarm.sh status
#   scripts/swarm.sh down
# `up` initialises a one-node swarm when none is active, builds the image, deploys the stack
# (SWARM_STACK, fanout) and waits until every replica is healthy. `down` removes the stack,
# and leaves the swarm only if `up` created it. The gateways take the same ports as compose:
# `up` refuses to start while anything answers on them. With host-mode ports
# (SWARM_PUBLISH_MODE=host) a node's port holds one replica, so a gateway of several
# replicas publishes each on a port of its own, which `urls` lists.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

STACK=${SWARM_STACK:-fanout}
STATE_DIR=${SWARM_STATE_DIR:-$ROOT/.swarm}
# Written by `up` when it initialised the swarm; `down` leaves the swarm only then.
CREATED="$STATE_DIR/created-by-$STACK"
GWBRIDGE="$STATE_DIR/gwbridge-by-$STACK"

swarm_state() { docker info --format '{{.Swarm.LocalNodeState}}'; }

# Something already answers on a gateway port: the compose stack, local mode, anything.
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

gateway_port() {
  case "$1" in
    sync-gateway) echo "$SYNC_PORT" ;;
    async-gateway) echo "$ASYNC_PORT" ;;
    *) return 1 ;;
  esac
}

# The port a gateway of this many replicas publishes: the compose port, or 0 (a port per
# replica, chosen by the engine) where host mode cannot give one port to several replicas.
published_port() {
  if [ "$SWARM_PUBLISH_MODE" = host ] && [ "$2" -gt 1 ]; then echo 0; else gateway_port "$1"; fi
}

stack_services() { docker stack services "$STACK" --format '{{.Name}} {{.Replicas}}' 2>/dev/null; }

# Services whose rolling update is still going (or rolling back).
updating() {
  local ids
  ids=$(docker stack services -q "$STACK" 2>/dev/null) || return 0
  [ -z "$ids" ] || docker service inspect --format \
    '{{.Spec.Name}} {{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' $ids |
    awk '$2 == "updating" || $2 == "rollback_started" { print $1 }'
}

# Until every service runs all its replicas (a task with a healthcheck counts once healthy)
# and no update is under way: between two replicas of a rolling update, all may be up.
wait_converged() {
  local deadline=$((SECONDS + $1)) lines pending
  while [ $SECONDS -lt "$deadline" ]; do
    lines=$(stack_services)
    pending=$(awk '{ split($2, r, "/"); if (r[1] != r[2]) print $1 }' <<<"$lines")$(updating)
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
  local port sync_published async_published
  sync_published=$(published_port sync-gateway "$SYNC_REPLICAS")
  async_published=$(published_port async-gateway "$ASYNC_REPLICAS")
  for port in "$sync_published" "$async_published"; do
    if [ "$port" != 0 ] && port_taken "$port"; then
      log "error: port $port already answers: stop what holds it first (make down stops the"
      log "compose stack, make local-down local mode), or set SYNC_PORT and ASYNC_PORT"
      return 1
    fi
  done
  if [ "$(swarm_state)" = inactive ]; then
    mkdir -p "$STATE_DIR"
    # The swarm makes docker_gwbridge and leaves it behind: down removes it if up made it.
    docker network inspect docker_gwbridge >/dev/null 2>&1 || touch "$GWBRIDGE"
    run docker swarm init --advertise-addr 127.0.0.1 >/dev/null
    touch "$CREATED"
  fi
  build_image
  # COMPOSE_OVERLAYS apply here too (docker-compose.exposed.yml, for one), after the swarm's.
  local files=(-c "$ROOT/docker-compose.yml" -c "$ROOT/docker-compose.swarm.yml") overlay
  for overlay in ${COMPOSE_OVERLAYS:-}; do
    files+=(-c "$ROOT/$overlay")
  done
  # One node runs the image it built: no registry is asked for a digest (SWARM_RESOLVE_IMAGE).
  SYNC_PORT=$sync_published ASYNC_PORT=$async_published \
    run docker stack deploy --prune --resolve-image "$SWARM_RESOLVE_IMAGE" \
    "${files[@]}" "$STACK"
  wait_converged "${UP_TIMEOUT_S:-240}"
  log ""
  log "sync gateway, $SYNC_REPLICAS replica(s) of $SYNC_WORKERS worker(s):"
  log "$(urls sync-gateway)"
  log "async gateway, $ASYNC_REPLICAS replica(s) of $ASYNC_WORKERS worker(s):"
  log "$(urls async-gateway)"
}

# Each running replica of a gateway as a URL: the node's address and the replica's
# host-mode port, or with the ingress mesh the service's one port.
urls() {
  local service="${STACK}_$1" task node port
  gateway_port "$1" >/dev/null || { log "usage: scripts/swarm.sh urls sync-gateway|async-gateway"; return 2; }
  if [ "$SWARM_PUBLISH_MODE" != host ]; then
    echo "http://127.0.0.1:$(gateway_port "$1")"
    return 0
  fi
  for task in $(docker service ps -q --filter desired-state=running "$service"); do
    read -r node port _ < <(docker inspect --format \
      '{{.NodeID}} {{range .Status.PortStatus.Ports}}{{.PublishedPort}} {{end}}' "$task")
    [ -n "${port:-}" ] || continue # not started yet: no port
    echo "http://$(docker node inspect --format '{{.Status.Addr}}' "$node"):$port"
  done | sort -u
}

# One gateway's replicas, and optionally its gunicorn workers per replica. In host mode a
# single replica takes the compose port and several take one each (published_port).
gateway() {
  local name=${1:-} replicas=${2:-} workers=${3:-} args=()
  if ! gateway_port "$name" >/dev/null || ! [[ "$replicas" =~ ^[1-9][0-9]*$ ]]; then
    log "usage: scripts/swarm.sh gateway sync-gateway|async-gateway REPLICAS [WORKERS]"
    return 2
  fi
  args+=(--replicas "$replicas")
  [ -z "$workers" ] || args+=(--env-add "WEB_CONCURRENCY=$workers")
  local published now
  published=$(published_port "$name" "$replicas")
  now=$(docker service inspect --format \
    '{{range .Spec.EndpointSpec.Ports}}{{.PublishedPort}}{{end}}' "${STACK}_$name")
  # Only a port that changes: docker drops a port that is removed and added back the same.
  if [ "$SWARM_PUBLISH_MODE" = host ] && [ "$now" != "$published" ]; then
    if [ "$published" = 0 ]; then
      # From the compose port to a port per replica: in one update the engine keeps the
      # port it had allocated and the second replica waits for it forever ("host-mode port
      # already in use", Engine 20.10). Without any port first, it lets go of it.
      run docker service update --detach --publish-rm "mode=host,target=8000" \
        "${STACK}_$name" >/dev/null
      wait_converged "${UP_TIMEOUT_S:-240}"
      args+=(--publish-add "mode=host,target=8000")
    else
      args+=(--publish-rm "mode=host,target=8000")
      args+=(--publish-add "mode=host,target=8000,published=$published")
    fi
  fi
  run docker service update --detach "${args[@]}" "${STACK}_$name" >/dev/null
  wait_converged "${UP_TIMEOUT_S:-240}"
  urls "$name"
}

scale() {
  [ $# -gt 0 ] || { log "usage: scripts/swarm.sh scale SERVICE=REPLICAS ..."; return 2; }
  local pair targets=()
  for pair in "$@"; do
    if gateway_port "${pair%%=*}" >/dev/null; then
      gateway "${pair%%=*}" "${pair#*=}" # its ports may change with its replicas
    else
      targets+=("${STACK}_$pair")
    fi
  done
  [ ${#targets[@]} -eq 0 ] || run docker service scale --detach "${targets[@]}"
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
  # A stack leaves its volumes behind: the archive's goes too, and the next swarm-up seeds it
  # afresh (its container may take a moment more to go).
  local attempt
  for attempt in 1 2 3 4 5; do
    docker volume inspect "${STACK}_archive" >/dev/null 2>&1 || break
    docker volume rm "${STACK}_archive" >/dev/null 2>&1 && break
    sleep 2
  done
  if [ -e "$CREATED" ]; then
    # Leaving removes whatever is left of the stack too. Right after a stack goes, the
    # engine may still be busy with its network: retry.
    for attempt in 1 2 3 4 5; do
      if run docker swarm leave --force >/dev/null; then
        rm -f "$CREATED"
        if [ -e "$GWBRIDGE" ]; then
          docker network rm docker_gwbridge >/dev/null 2>&1 || true
          rm -f "$GWBRIDGE"
        fi
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
  gateway) shift; gateway "$@" ;;
  urls) shift; urls "$@" ;;
  down) down ;;
  status) status ;;
  *) log "usage: scripts/swarm.sh up|scale SERVICE=N ...|gateway NAME REPLICAS [WORKERS]|urls NAME|down|status"; exit 2 ;;
esac
