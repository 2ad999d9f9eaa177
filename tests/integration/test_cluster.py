"""A three-node swarm on this machine (scripts/cluster.sh): the contract on every gateway
replica, each node named in the answers, the replicas spread over the nodes, a drain, a
rolling update and a node's death under load; and the engine left as it was found."""

import os
import subprocess
from collections.abc import Iterator

import pytest

from bench.experiments.failover import failover
from bench.harness import swarm
from gateway.models import NewsResponse
from tests.integration.stack import (
    DEADLINE_MS,
    REQUIRE_DOCKER,
    docker_unavailable,
    fetch,
    free_port,
    record,
    run_script,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.cluster]

NODES = 3
CLIENTS = 5  # per gateway replica: a bounded closed loop, well below capacity
MAX_EVENT_S = 150.0
# A dead node's replicas are found dead, and rescheduled, within this (12.9 s measured).
MAX_RECOVERY_S = 60.0
DEADLINE_S = DEADLINE_MS / 1000


def sh(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False).stdout


def engine_state() -> dict[str, object]:
    """What cluster-up may touch, and cluster-down must put back."""
    mounts = [line for line in sh("cat", "/proc/mounts").splitlines() if "fanout-cluster" in line]
    return {
        "swarm": sh("docker", "info", "--format", "{{.Swarm.LocalNodeState}}").strip(),
        "namespaces": sorted(sh("ip", "netns", "list").split()),
        "links": sorted(
            line.split()[0].split("@")[0] for line in sh("ip", "-br", "link").splitlines()
        ),
        "networks": sorted(sh("docker", "network", "ls", "--format", "{{.Name}}").split()),
        "daemons": len(sh("pgrep", "-x", "dockerd").split()),
        "docker_user_rules": sh("iptables", "-S", "DOCKER-USER").splitlines(),
        # The host's own containers (the compose test stack's), and every container's init:
        # a node's containers left running after it went would show here.
        "containers": sorted(sh("docker", "ps", "-q").split()),
        "container_inits": len(sh("pgrep", "-x", "docker-init").split()),
        "cluster_mounts": mounts,
    }


def cluster_script(*args: str, env: dict[str, str], timeout: float = 300) -> str:
    return run_script("cluster.sh", *args, env={**os.environ, **env}, timeout=timeout)


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, str]]:
    """No compose stack beside it (cluster.sh refuses: leaving the swarm would cut its
    networking); cluster.sh builds the image. Whatever happens, the cluster goes, and the
    engine must be as it was."""
    reason = docker_unavailable()
    if reason is not None:
        if os.environ.get(REQUIRE_DOCKER) == "1":
            pytest.fail(f"{REQUIRE_DOCKER}=1 but {reason}", pytrace=False)
        pytest.skip(f"the cluster needs a Docker engine: {reason}")
    if os.geteuid() != 0:
        pytest.skip("the cluster needs root: network namespaces, links and dockerd")
    before = engine_state()
    # The gateways' host-mode ports, away from the compose test stack's.
    env = {"SYNC_PORT": str(free_port()), "ASYNC_PORT": str(free_port()), "ACCESS_LOG": "false"}
    try:
        cluster_script("up", str(NODES), env=env)
        yield env
    finally:
        try:
            cluster_script("down", env=env)
        finally:
            assert engine_state() == before


# Run inside a source's container: its own answer, as the gateways get it.
OWN_ANSWER = (
    "import json, urllib.request; "
    "print(json.load(urllib.request.urlopen('http://127.0.0.1:8000/news?delay_ms=0'))['node'])"
)


def test_every_replica_answers_and_names_its_node(cluster: dict[str, str]) -> None:
    labels = swarm.node_ids()
    nodes = {swarm.node_hostname(label): label for label in labels}
    assert len(nodes) == NODES
    # Each gateway replica: the contract, and every node named is one of the cluster's.
    # (Which source replicas a gateway reaches is its pool's choice, so not asserted.)
    for url in swarm.gateway_urls().values():
        for _ in range(3):
            answer = NewsResponse.model_validate(fetch(f"{url}/news").body)
            assert not answer.partial and answer.node in nodes
            assert all(source.ok and source.node in nodes for source in answer.sources)
    # Each source replica, asked on its own node, names that node: every one of the 9.
    named = []
    for hostname, label in nodes.items():
        for source in swarm.SOURCES:
            service = f"label=com.docker.swarm.service.name={swarm.STACK}_{source}"
            for container in cluster_script(
                "docker", label, "ps", "-q", "--filter", service, env=cluster
            ).split():
                said = cluster_script(
                    "docker", label, "exec", container, "python", "-c", OWN_ANSWER, env=cluster
                )
                named.append((source, said.strip() == hostname))
    assert len(named) == NODES * len(swarm.SOURCES) and all(ok for _, ok in named), named


def test_each_sources_replicas_spread_over_the_nodes(cluster: dict[str, str]) -> None:
    where = swarm.placement()
    for source in swarm.SOURCES:
        assert sorted(where[source].values()) == [1] * NODES, where[source]


def test_a_drain_loses_nothing_and_a_rolling_update_spreads_back(
    cluster: dict[str, str],
) -> None:
    drained = failover("drain", CLIENTS, MAX_EVENT_S)
    summary = drained.summary()
    record("cluster: drain a node, lost / answers after", drained.lost(), "0")
    assert drained.node is not None and drained.recovery_s() is not None, summary
    assert drained.replicas_on_node == len(swarm.SOURCES), summary
    # 0 in every run measured (docs/scale-out.md), but a drain stops replicas as an update
    # does, so the update's race below is its too (a CI run lost 1 of 155).
    assert drained.lost() <= 0.01 * len(drained.after()), "\n".join(drained.lost_answers())
    assert drained.refused() == 0, summary
    hostname = swarm.node_hostname(drained.node)
    assert all(hostname not in where for where in drained.placement_after.values())

    swarm.docker("node", "update", "--availability", "active", swarm.node_ids()[drained.node])
    rolled = failover("update", CLIENTS, MAX_EVENT_S)
    summary = rolled.summary()
    record("cluster: rolling update of every source, lost", rolled.lost(), "0")
    # 0 in every run measured (docs/scale-out.md): a new connection to an address DNS lists
    # while the overlay cannot reach it falls back to the source's other replicas. The 1%
    # is for the one race no client closes: a pooled connection the stopping replica
    # closes just as a request goes out on it. It was 3 to 7 of about 280 before.
    assert rolled.lost() <= 0.01 * len(rolled.after()), summary
    assert rolled.refused() == 0 and rolled.recovery_s() is not None, summary
    # The drained node takes replicas again. Nothing more is asked of the spread: with
    # start-first, each new task is placed while the old ones still run, so the emptied
    # node draws them and another can end up with none (a CI run: all 9 on n1 and n2).
    running_on = {node for source in swarm.SOURCES for node in rolled.placement_after[source]}
    assert hostname in running_on, summary


def test_a_dead_node_costs_what_it_had_in_flight_and_nothing_a_deadline_later(
    cluster: dict[str, str],
) -> None:
    # After the drain and the update a node may hold none of the sources' replicas (a CI
    # run: 0 of 9), and killing it would prove nothing: one of each source's on every node.
    swarm.spread_sources(NODES)
    died = failover("kill", CLIENTS, MAX_EVENT_S)
    summary = died.summary()
    assert died.node is not None and died.replicas_on_node == len(swarm.SOURCES), summary
    recovery = died.recovery_s()
    in_flight, replicas = died.in_flight_at_event(), died.replicas_on_node
    record(
        f"cluster: kill a node ({replicas} of 9 source replicas), lost",
        died.lost(),
        f"({in_flight} in flight)",
    )
    record("cluster: kill a node, seconds until every answer is full", recovery or -1, "")
    assert died.lost_before() == 0 and died.refused() == 0, summary
    # A dead node costs the fan-outs that had a call on it then: a pooled connection to it
    # fails within a quarter of a second (gateway/balancing.py, dead_peer_options) and the
    # call goes again, to a live replica. Before, every fan-out that picked one of its
    # replicas was lost too, until the swarm declared it down (about 13 s): 22 to 30 lost
    # with 5 of the 9 replicas on it, against 10 in flight. Now the loss was 7 to 10 of the
    # 10 in flight in every run (docs/scale-out.md), the bound; but at 6 of 9 every
    # fan-out in flight has a call there, and one more, sent in the moment before the
    # gateways learn, would cross it. So the bars are what the fix guarantees: nothing sent
    # a deadline after the kill is lost, and the loss stays far below what it was.
    lost = "\n".join(died.lost_answers())
    assert died.lost_sent_after(DEADLINE_S) == 0, lost
    assert died.lost() <= 2 * in_flight, lost
    assert died.settled_s is not None, summary
    assert died.lost_after_settled() == 0, summary
    assert recovery is not None and recovery <= MAX_RECOVERY_S, summary
    # Its replicas run on the nodes left, and every service has all of them.
    hostname = swarm.node_hostname(died.node)
    assert all(hostname not in where for where in died.placement_after.values())
    for source in swarm.SOURCES:
        assert sum(died.placement_after[source].values()) == NODES, summary
