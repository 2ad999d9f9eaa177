"""The swarm stack as the cluster experiments drive it: docker's CLI, scripts/cluster.sh
and scripts/swarm.sh, where each service's tasks run, and when the swarm has converged."""

import subprocess
import time
from collections import Counter

from bench.harness.topology import ROOT

LABEL = "fanout.node"
STACK = "fanout"
SOURCES = ("upstream-wire", "upstream-gazette", "upstream-chronicle")
GATEWAYS = ("sync-gateway", "async-gateway")
# A request longer than this is a failure of the request, not a slow answer: the longest
# fan-out deadline is 2.5 s.
REQUEST_TIMEOUT_S = 10.0


def docker(*args: str, timeout: float = 60) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=True
    )
    return result.stdout


def cluster(*args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [str(ROOT / "scripts" / "cluster.sh"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return result.stdout


def swarm_urls(service: str) -> list[str]:
    result = subprocess.run(
        [str(ROOT / "scripts" / "swarm.sh"), "urls", service],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.split()


def node_ids() -> dict[str, str]:
    """Each node's label (n1, n2, ...) to its swarm id."""
    ids = docker("node", "ls", "-q").split()
    labels = docker("node", "inspect", "--format", f'{{{{index .Spec.Labels "{LABEL}"}}}}', *ids)
    return dict(zip(labels.split(), ids, strict=True))


def placement() -> dict[str, Counter[str]]:
    """Where each service's running tasks are: service to a count per node hostname."""
    lines = docker(
        "stack",
        "ps",
        STACK,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Name}} {{.Node}} {{.CurrentState}}",
    ).splitlines()
    where: dict[str, Counter[str]] = {}
    for line in lines:
        name, node, state = line.split(" ", 2)
        if state.startswith("Running"):
            service = name.removeprefix(f"{STACK}_").rsplit(".", 1)[0]
            where.setdefault(service, Counter())[node] += 1
    return where


def node_hostname(label: str) -> str:
    return str(
        docker("node", "inspect", "--format", "{{.Description.Hostname}}", node_ids()[label])
    ).strip()


def quiet_node(gateway_nodes: set[str]) -> str:
    """A node other than the host's that runs no gateway: the one an event may hit while
    every gateway URL stays put."""
    for label in sorted(node_ids()):
        if label != "n1" and node_hostname(label) not in gateway_nodes:
            return label
    raise RuntimeError("every node but n1 runs a gateway: add a node (NODES=4)")


def converged() -> bool:
    """Every service runs all its replicas, and none is being updated."""
    lines = docker("stack", "services", STACK, "--format", "{{.Replicas}}").split()
    if not all(a == b for a, b in (line.split("/")[:2] for line in lines)):
        return False
    ids = docker("stack", "services", "-q", STACK).split()
    states = docker(
        "service", "inspect", "--format", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}", *ids
    ).split()
    return not {"updating", "rollback_started"} & set(states)


def node_status(label: str) -> str:
    return docker("node", "inspect", "--format", "{{.Status.State}}", node_ids()[label]).strip()


def wait_converged(timeout_s: float = 180) -> None:
    """Every service runs all its replicas again (the swarm has rescheduled)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if converged():
            return
        time.sleep(2)
    raise RuntimeError(f"the stack did not converge in {timeout_s:.0f} s")


def spread_sources(nodes: int) -> None:
    """Each source's replicas one to a node again. A rolling update places each new task
    while the old ones still run (start-first), so after a drain and an update a node can be
    left with none: a node killed then would take nothing with it. Scaling a source to 0
    and back lets the spread preference (docker-compose.cluster.yml) place every task anew."""
    for source in SOURCES:
        if sorted(placement().get(source, Counter()).values()) == [1] * nodes:
            continue
        service = f"{STACK}_{source}"
        for replicas in (0, nodes):
            docker("service", "scale", "--detach", f"{service}={replicas}")
            wait_converged()


def gateway_urls() -> dict[str, str]:
    urls = {}
    for service in GATEWAYS:
        for index, url in enumerate(swarm_urls(service)):
            urls[f"{service.removesuffix('-gateway')}#{index + 1}"] = url
    return urls
