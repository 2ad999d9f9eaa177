# Shared shell helpers for scripts/*.sh. Source it; do not run it.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-fanout-lab}
OFFLINE_BASE_IMAGE=fanout-lab/python-base:bookworm
OFFLINE_POSTGRES_IMAGE=fanout-lab/postgres-base:15

# .env holds the lab's defaults; they count here as they do for compose: the shell's
# environment wins.
if [ -f "$ROOT/.env" ]; then
  while IFS='=' read -r key value; do
    case "$key" in '' | \#*) continue ;; esac
    [ -n "${!key+x}" ] || export "$key=$value"
  done <"$ROOT/.env"
fi
export PYTHON_IMAGE=${PYTHON_IMAGE:-python:3.12-slim}
export POSTGRES_IMAGE=${POSTGRES_IMAGE:-postgres:15-bookworm}
# Docker refuses a CPU limit above the host's cores: on a 1-core host a limit of 2 becomes 1.
for limit in GATEWAY_CPUS UPSTREAM_CPUS; do
  if [ -n "${!limit:-}" ] && awk -v want="${!limit}" -v have="$(nproc)" 'BEGIN { exit !(want > have) }'; then
    export "$limit=$(nproc)"
  fi
done

log() { printf '%s\n' "$*" >&2; }

# Echo a command, then run it.
run() {
  log "+ $*"
  "$@"
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else run sudo "$@"; fi
}

# Install a command from Debian's packages unless it is already on PATH.
ensure_debian_package() {
  local package=$1 command=${2:-$1}
  command -v "$command" >/dev/null 2>&1 && return 0
  log "$command is missing; installing $package from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
}

# Compose v2 is a docker plugin; v1 is its own binary. Use whichever is here.
# COMPOSE_OVERLAYS: more compose files (space-separated, relative to the repo) merged over
# docker-compose.yml, e.g. docker-compose.upstream-ports.yml. UPSTREAM_TLS=true adds
# docker-compose.tls.yml (the upstreams serve HTTPS from a private CA), UPSTREAM_HTTP2=true
# docker-compose.http2.yml (and HTTP/2).
compose() {
  local files=(-f "$ROOT/docker-compose.yml") overlay overlays=${COMPOSE_OVERLAYS:-}
  if [ "${UPSTREAM_TLS:-false}" = true ]; then
    overlays="docker-compose.tls.yml $overlays"
  fi
  if [ "${UPSTREAM_HTTP2:-false}" = true ]; then
    if [ "${UPSTREAM_TLS:-false}" != true ]; then
      log "error: UPSTREAM_HTTP2=true needs UPSTREAM_TLS=true: clients choose HTTP/2 by ALPN"
      return 2
    fi
    overlays="docker-compose.http2.yml $overlays"
  fi
  for overlay in $overlays; do
    files+=(-f "$ROOT/$overlay")
  done
  if docker compose version >/dev/null 2>&1; then
    run docker compose --project-directory "$ROOT" "${files[@]}" -p "$COMPOSE_PROJECT_NAME" "$@"
  elif command -v docker-compose >/dev/null 2>&1; then
    run docker-compose --project-directory "$ROOT" "${files[@]}" -p "$COMPOSE_PROJECT_NAME" "$@"
  else
    log "error: neither 'docker compose' nor 'docker-compose' is installed"
    return 127
  fi
}

# Make the image the variable $1 names usable: present already, pulled, or else the
# offline image $2, which the command $3 builds when it is missing too.
ensure_image() {
  local var=$1 offline=$2 build=$3
  if docker image inspect "${!var}" >/dev/null 2>&1; then
    return 0
  fi
  if [ "${!var}" != "$offline" ]; then
    log "image ${!var} is not here; trying to pull it"
    if timeout 120 docker pull "${!var}" >/dev/null 2>&1; then
      return 0
    fi
    log "no registry answered; using the offline image $offline instead"
    export "$var=$offline"
    if docker image inspect "$offline" >/dev/null 2>&1; then
      return 0
    fi
  fi
  "$build"
}

# The Python base: the official slim image, or Debian's python3 (scripts/base-image.sh).
ensure_base_image() {
  ensure_image PYTHON_IMAGE "$OFFLINE_BASE_IMAGE" "$ROOT/scripts/base-image.sh"
}

# PostgreSQL: the official image, or Debian's postgresql package on the offline base
# (db/offline/).
ensure_postgres_image() {
  ensure_image POSTGRES_IMAGE "$OFFLINE_POSTGRES_IMAGE" build_offline_postgres
}

build_offline_postgres() {
  if ! docker image inspect "$OFFLINE_BASE_IMAGE" >/dev/null 2>&1; then
    "$ROOT/scripts/base-image.sh"
  fi
  run docker build -q --build-arg "BASE_IMAGE=$OFFLINE_BASE_IMAGE" \
    -t "$OFFLINE_POSTGRES_IMAGE" "$ROOT/db/offline" >/dev/null
}

# Every Python service runs the one image (docker-compose.yml's x-service): building one
# of them builds it, where `compose build` would go through the same cached build once per
# service. PostgreSQL has its own.
build_image() {
  ensure_base_image
  ensure_postgres_image
  compose build sync-gateway postgres
}

# The base images the last build used, without a pull: a restart without a build must pass
# compose the same build arguments, or compose sees every service as changed and recreates
# the upstreams along with the one service asked for.
built_base_image() {
  if ! docker image inspect "$PYTHON_IMAGE" >/dev/null 2>&1 &&
    docker image inspect "$OFFLINE_BASE_IMAGE" >/dev/null 2>&1; then
    export PYTHON_IMAGE=$OFFLINE_BASE_IMAGE
  fi
  if ! docker image inspect "$POSTGRES_IMAGE" >/dev/null 2>&1 &&
    docker image inspect "$OFFLINE_POSTGRES_IMAGE" >/dev/null 2>&1; then
    export POSTGRES_IMAGE=$OFFLINE_POSTGRES_IMAGE
  fi
}

# The swarm service that publishes this port on this node, if any (make swarm-up's stack,
# host-mode or ingress), so that compose and the swarm never both take the same port.
swarm_service_on_port() {
  [ "$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = active ] || return 0
  {
    docker ps --filter label=com.docker.swarm.service.name \
      --format '{{.Label "com.docker.swarm.service.name"}} {{.Ports}}'
    docker service ls --format '{{.Name}} {{.Ports}}'
  } | awk -v port=":$1->" 'index($0, port) && !found { print $1; found = 1 }'
}

# Wait until every container of the project reports healthy, for at most $1 seconds.
wait_healthy() {
  local deadline=$((SECONDS + ${1:-120})) ids status unhealthy
  ids=$(compose ps -q 2>/dev/null)
  if [ -z "$ids" ]; then
    log "error: no containers are running in project $COMPOSE_PROJECT_NAME"
    return 1
  fi
  log "waiting for $(echo "$ids" | wc -l) containers to be healthy"
  while [ $SECONDS -lt $deadline ]; do
    unhealthy=0
    for id in $ids; do
      # A one-shot service without a healthcheck (UPSTREAM_TLS's certs) is done once it
      # exited 0.
      status=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}:{{.State.ExitCode}}{{end}}' "$id" 2>/dev/null)
      [ "$status" = healthy ] || [ "$status" = exited:0 ] || unhealthy=$((unhealthy + 1))
    done
    if [ "$unhealthy" -eq 0 ]; then
      log "all healthy"
      return 0
    fi
    sleep 1
  done
  log "error: containers not healthy after ${1:-120}s:"
  compose ps >&2
  return 1
}
