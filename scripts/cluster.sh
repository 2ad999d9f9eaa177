#!/usr/bin/env bash
# A real multi-node Docker Swarm on this one machine (docs/scale-out.md, "A cluster on one
# machine"): the host's daemon is node n1, and each further node is a dockerd of its own
# in a network namespace, on a private /24 that this script creates and owns.
#   scripts/cluster.sh up [NODES]     # make cluster-up NODES=3: nodes, swarm, image, stack
#   scripts/cluster.sh down           # make cluster-down: removes what up made, only that
#   scripts/cluster.sh status         # nodes, and where each replica runs
#   scripts/cluster.sh docker NODE ARGS...   # the docker CLI against one node's daemon
#   scripts/cluster.sh kill NODE      # a hard failure: the node's daemon and containers die
# It is one kernel and one CPU budget: it shows placement, traffic over the overlay between
# nodes and failure handling, not more capacity. Needs root (namespaces, links, dockerd).
# `up` refuses when anything it would create exists; every step it takes is written to a
# manifest first, and `down` undoes the manifest's steps, newest first, so a half-made
# cluster comes down too. `down` with no manifest does nothing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PREFIX=${CLUSTER_SUBNET_PREFIX:?set in .env} # the /24: PREFIX.1 is the host, PREFIX.N node nN
BRIDGE=fanout-br0
DATA=${CLUSTER_DATA_DIR:-/var/lib/fanout-cluster}
RUN_DIR=/run/fanout-cluster
MANIFEST="$DATA/manifest"
LABEL=fanout.node
STACK=${SWARM_STACK:-fanout}
IMAGE="${FANOUT_IMAGE}:${FANOUT_IMAGE_TAG}"

netns() { echo "fanout-$1"; }
link() { echo "fanout-v${1#n}"; }
socket() { echo "unix://$RUN_DIR/$1/docker.sock"; }
node_docker() {
  local node=$1
  shift
  if [ "$node" = n1 ]; then docker "$@"; else docker -H "$(socket "$node")" "$@"; fi
}
record() { echo "$*" >>"$MANIFEST"; }
nodes_in_manifest() { [ -f "$MANIFEST" ] && awk '$1 == "daemon" { print $2 }' "$MANIFEST"; }

refuse() {
  log "error: $*"
  exit 1
}

check_free() {
  local nodes=$1 i
  [ "$(id -u)" = 0 ] || refuse "the cluster needs root: network namespaces, links and dockerd"
  for tool in ip nsenter unshare dockerd fuse-overlayfs; do
    command -v "$tool" >/dev/null || refuse "$tool is missing"
  done
  [ ! -e "$MANIFEST" ] || refuse "a cluster is already up (or half up): $MANIFEST; run make cluster-down"
  [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = inactive ] ||
    refuse "this engine is already in a swarm: leave it (make swarm-down) before make cluster-up"
  # Leaving a swarm cuts the networking of the engine's standalone containers (compose's):
  # they keep running, with no address (moby/moby#47392). cluster-down leaves the swarm.
  [ -z "$(docker ps -q)" ] ||
    refuse "containers are running here; cluster-down would cut their networking when it leaves the swarm (moby/moby#47392): stop them first (make down)"
  ! ip link show "$BRIDGE" >/dev/null 2>&1 || refuse "the link $BRIDGE exists already"
  ! ip -o addr | grep -q " $PREFIX\." || refuse "an address in $PREFIX.0/24 is in use: set CLUSTER_SUBNET_PREFIX"
  for ((i = 2; i <= nodes; i++)); do
    ! ip netns list | grep -qw "$(netns "n$i")" || refuse "the namespace $(netns "n$i") exists already"
    ! ip link show "$(link "n$i")" >/dev/null 2>&1 || refuse "the link $(link "n$i") exists already"
    [ ! -e "$DATA/n$i" ] || refuse "$DATA/n$i exists already"
  done
}

# The private /24: a bridge on the host (PREFIX.1), and each node's namespace on it.
make_network() {
  local nodes=$1 i node
  record bridge "$BRIDGE"
  run ip link add "$BRIDGE" type bridge
  ip addr add "$PREFIX.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Frames between two nodes cross the bridge, and with br_netfilter they meet the host's
  # FORWARD chain, which Docker sets to DROP: the overlay between n2 and n3 would be cut.
  # DOCKER-USER is the chain Docker leaves to its users.
  record forward "$BRIDGE"
  run iptables -I DOCKER-USER -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
  for ((i = 2; i <= nodes; i++)); do
    node="n$i"
    record netns "$(netns "$node")"
    run ip netns add "$(netns "$node")"
    record link "$(link "$node")"
    ip link add "$(link "$node")" type veth peer name eth0 netns "$(netns "$node")"
    ip link set "$(link "$node")" master "$BRIDGE" up
    ip -n "$(netns "$node")" addr add "$PREFIX.$i/24" dev eth0
    ip -n "$(netns "$node")" link set eth0 up
    ip -n "$(netns "$node")" link set lo up
  done
}

# One dockerd in a node's namespace, with its own hostname (every answer names its node),
# roots, socket and an empty config (the machine's daemon.json names the host's data root).
# `ip netns exec` would remount /sys, where the daemon then finds no cgroups: nsenter.
start_daemon() {
  local node=$1 dir="$DATA/$1" run_dir="$RUN_DIR/$1"
  record dir "$dir"
  record dir "$run_dir"
  mkdir -p "$dir/data" "$run_dir"
  echo '{}' >"$dir/daemon.json"
  nsenter --net="/var/run/netns/$(netns "$node")" unshare --uts sh -c \
    "hostname fanout-$node && exec dockerd --data-root '$dir/data' --exec-root '$run_dir/exec' \
      --pidfile '$run_dir/docker.pid' -H '$(socket "$node")' --config-file '$dir/daemon.json' \
      --storage-driver fuse-overlayfs --bridge none --iptables=false" \
    >"$dir/dockerd.log" 2>&1 &
  record daemon "$node" "$!"
}

wait_daemon() {
  local node=$1 deadline=$((SECONDS + 60))
  until node_docker "$node" version >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { tail -20 "$DATA/$node/dockerd.log" >&2; refuse "node $node's daemon did not answer in 60 s"; }
    sleep 0.5
  done
}

label_node() {
  local node=$1 id
  id=$(node_docker "$node" info --format '{{.Swarm.NodeID}}')
  docker node update --label-add "$LABEL=$node" "$id" >/dev/null
}

up() {
  local nodes=${1:-${NODES:-3}} i started=$SECONDS
  [[ "$nodes" =~ ^[2-9]$ ]] || refuse "NODES is 2 to 9, not '$nodes'"
  check_free "$nodes"
  mkdir -p "$DATA"
  : >"$MANIFEST"
  # Whatever fails from here on, down undoes what the manifest says was made.
  trap 'code=$?; if [ $code -ne 0 ]; then log "cluster-up failed: removing what it made"; down; fi' EXIT
  build_image
  make_network "$nodes"
  for ((i = 2; i <= nodes; i++)); do start_daemon "n$i"; done
  for ((i = 2; i <= nodes; i++)); do wait_daemon "n$i"; done
  # The swarm makes docker_gwbridge on the host and leaves it behind when it goes.
  docker network inspect docker_gwbridge >/dev/null 2>&1 || record network docker_gwbridge
  record swarm n1
  run docker swarm init --advertise-addr "$PREFIX.1" --listen-addr "$PREFIX.1:2377" >/dev/null
  label_node n1
  local token
  token=$(docker swarm join-token -q worker)
  for ((i = 2; i <= nodes; i++)); do
    run node_docker "n$i" swarm join --token "$token" --advertise-addr "$PREFIX.$i" "$PREFIX.1:2377" >/dev/null
    label_node "n$i"
  done
  # No registry: each node loads the image the host built (about 7 s each, side by side).
  record file "$DATA/image.tar"
  run docker save -o "$DATA/image.tar" "$IMAGE"
  local loads=()
  for ((i = 2; i <= nodes; i++)); do
    node_docker "n$i" load -q -i "$DATA/image.tar" >/dev/null &
    loads+=($!)
  done
  for i in "${loads[@]}"; do wait "$i"; done
  rm -f "$DATA/image.tar"
  # The stack, its replicas spread over the nodes (docker-compose.cluster.yml).
  COMPOSE_OVERLAYS="docker-compose.cluster.yml ${COMPOSE_OVERLAYS:-}" "$ROOT/scripts/swarm.sh" up
  trap - ERR
  log ""
  log "a $nodes-node swarm in $((SECONDS - started)) s:"
  status
}

status() {
  docker node ls --format '{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}' 2>/dev/null || true
  docker stack ps "$STACK" --filter desired-state=running \
    --format '{{.Name}} {{.Node}} {{.CurrentState}}' 2>/dev/null || true
}

stop_daemon() {
  local pid=$1 deadline=$((SECONDS + 30))
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
}

# Every process of a node: those in its namespace (its daemon, containerd, the shims,
# fuse-overlayfs) and their descendants (the containers, each in a namespace of its own).
node_pids() {
  local ns=$1 roots
  [ -e "/var/run/netns/$ns" ] || return 0
  roots=$(ip netns pids "$ns" 2>/dev/null || true)
  [ -n "$roots" ] || return 0
  ps -eo pid=,ppid= | awk -v roots="$roots" '
    BEGIN { n = split(roots, r, /[ \n]+/); for (i = 1; i <= n; i++) if (r[i] != "") keep[r[i]] = 1 }
    { parent[$1] = $2 }
    END {
      do { grown = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grown = 1 } } while (grown)
      for (p in keep) print p
    }'
}

unmount_under() {
  local path=$1 mount
  # Deepest first: a container's mounts sit under its daemon's.
  awk -v p="$path" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mount; do
    umount -l "$mount" 2>/dev/null || true
  done
}

# A hard failure of one node: its link is cut and every process in its namespace killed,
# as when a host loses power. The manifest keeps the node, so down still removes it.
kill_node() {
  local node=${1:-}
  [ -n "$node" ] && [ "$node" != n1 ] && nodes_in_manifest | grep -qx "$node" ||
    refuse "usage: scripts/cluster.sh kill NODE (one of: $(nodes_in_manifest | tr '\n' ' '))"
  # The link first, so that no process of the node gets to say goodbye: its peers see
  # silence, as from a host that lost power, not resets from a kernel still running.
  ip link set "$(link "$node")" down
  local pids
  pids=$(node_pids "$(netns "$node")")
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  log "node $node: link cut, $(wc -w <<<"$pids") processes killed"
}

down() {
  trap - EXIT
  [ -f "$MANIFEST" ] || { log "no cluster here ($MANIFEST): nothing to remove"; return 0; }
  if docker info --format '{{.Swarm.LocalNodeState}}' | grep -qx active; then
    "$ROOT/scripts/swarm.sh" down || true
  fi
  local what name extra
  # Newest first: daemons leave and stop before their namespaces and links go.
  while read -r what name extra <&3; do
    case "$what" in
      daemon)
        node_docker "$name" swarm leave --force >/dev/null 2>&1 || true
        # The node's whole tree at once: daemon, containerd, shims and containers. Its state
        # goes with it, so nothing needs a graceful stop.
        local pids
        pids=$(node_pids "$(netns "$name")")
        [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
        stop_daemon "$extra"
        unmount_under "$DATA/$name"
        unmount_under "$RUN_DIR/$name"
        ;;
      swarm)
        local attempt
        for attempt in 1 2 3 4 5; do
          docker swarm leave --force >/dev/null 2>&1 && break
          [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != inactive ] || break
          log "swarm leave failed (attempt $attempt of 5); retrying in 3 s"
          sleep 3
        done
        ;;
      forward) iptables -D DOCKER-USER -i "$name" -o "$name" -j ACCEPT 2>/dev/null || true ;;
      network) docker network rm "$name" >/dev/null 2>&1 || true ;;
      link) ip link del "$name" 2>/dev/null || true ;;
      netns) ip netns del "$name" 2>/dev/null || true ;;
      bridge) ip link del "$name" 2>/dev/null || true ;;
      dir) rm -rf "$name" ;;
      file) rm -f "$name" ;;
    esac
  done 3< <(tac "$MANIFEST")
  rm -f "$MANIFEST"
  rmdir "$DATA" "$RUN_DIR" 2>/dev/null || true
  log "cluster removed; swarm: $(docker info --format '{{.Swarm.LocalNodeState}}')"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  status) status ;;
  docker) shift; node=${1:?usage: scripts/cluster.sh docker NODE ARGS...}; shift; node_docker "$node" "$@" ;;
  kill) shift; kill_node "$@" ;;
  *) log "usage: scripts/cluster.sh up [NODES]|down|status|docker NODE ARGS...|kill NODE"; exit 2 ;;
esac
