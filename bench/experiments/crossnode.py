"""The async gateway's sources on its own node, then on another, on the multi-node swarm:
what the overlay between nodes adds to each call, and to the machine's CPU per fan-out.

Loads go only to the gateway's own address on the cluster's bridge, and every window is
bounded in time.
"""

import statistics
import threading
import time
from dataclasses import dataclass

import requests

from bench.harness.probe import machine_busy_seconds
from bench.harness.swarm import (
    LABEL,
    REQUEST_TIMEOUT_S,
    SOURCES,
    STACK,
    docker,
    node_hostname,
    node_ids,
    spread_sources,
    swarm_urls,
    wait_converged,
)


@dataclass(frozen=True)
class PlacementCost:
    """The async gateway's fan-outs with every source on one node, in one window."""

    sources_on: str  # the node's hostname
    same_node: bool  # the gateway's own node
    fan_outs: int
    call_ms: dict[str, float]  # each source's median elapsed_ms, as the gateway measured it
    machine_cpu_ms_per_fan_out: float  # every core's busy time over the window, per fan-out


def constrain_sources(label: str | None, previous: str | None) -> None:
    """Every source's replicas on the node labelled `label` (None: anywhere again). It asks
    the swarm, and does not wait: wait_converged() does."""
    for source in SOURCES:
        args = ["service", "update", "--detach"]
        if previous is not None:
            args += ["--constraint-rm", f"node.labels.{LABEL}=={previous}"]
        if label is not None:
            args += ["--constraint-add", f"node.labels.{LABEL}=={label}"]
        docker(*args, f"{STACK}_{source}")


def refuse_unless_active() -> None:
    """A drained or paused node never converges with every source on it: say so first."""
    states = docker("node", "ls", "--format", "{{.Hostname}} {{.Availability}}").splitlines()
    idle = [line for line in states if not line.endswith(" Active")]
    if idle:
        raise RuntimeError(f"every node must be active: {', '.join(idle)}")


def measure_placement(
    url: str, node: str, same_node: bool, clients: int, window_s: float, warmup_s: float
) -> PlacementCost:
    calls: dict[str, list[float]] = {}
    fan_outs = 0
    lock = threading.Lock()
    measuring = threading.Event()
    stop = threading.Event()

    def client() -> None:
        nonlocal fan_outs
        with requests.Session() as session:
            while not stop.is_set():
                body = session.get(f"{url}/news", timeout=REQUEST_TIMEOUT_S).json()
                if not measuring.is_set() or stop.is_set():
                    continue
                with lock:
                    fan_outs += 1
                    for source in body["sources"]:
                        calls.setdefault(source["name"], []).append(source["elapsed_ms"])

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(warmup_s)
    busy = machine_busy_seconds()
    measuring.set()
    time.sleep(window_s)
    stop.set()
    spent, counted = machine_busy_seconds() - busy, fan_outs
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_S + 5)
    return PlacementCost(
        node,
        same_node,
        counted,
        {name: statistics.median(values) for name, values in calls.items()},
        1000 * spent / max(1, counted),
    )


def cross_node_cost(
    rounds: int = 2, clients: int = 20, window_s: float = 10.0, warmup_s: float = 3.0
) -> list[PlacementCost]:
    """The async gateway's sources on its own node, then on another, `rounds` times in one
    run, then free again: each window's per-call latency and the machine's CPU."""
    refuse_unless_active()
    (url,) = swarm_urls("async-gateway")
    gateway_node = requests.get(f"{url}/healthz", timeout=30).json()["node"]
    labels = {node_hostname(label): label for label in node_ids()}
    other = next(host for host in sorted(labels) if host != gateway_node)
    points: list[PlacementCost] = []
    previous = None
    try:
        for _ in range(rounds):
            for host in (gateway_node, other):
                constrain_sources(labels[host], previous)
                # Before the wait, so that a wait that fails still lifts this constraint.
                previous = labels[host]
                wait_converged()
                same = host == gateway_node
                points.append(measure_placement(url, host, same, clients, window_s, warmup_s))
    finally:
        constrain_sources(None, previous)
        wait_converged()
        # Freed, the replicas stay where they are (swarm moves a task only when it must).
        spread_sources(len(labels))
    return points
