"""The same stack on a one-node Docker Swarm: replicated sources, the spread of calls over
their replicas, scaling, a rolling update under load; and the engine left as it was."""

import os
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from bench.topology import SOURCE_NAMES
from tests.integration.stack import ROOT, Stack, closed_loop, fetch, free_port, record

pytestmark = pytest.mark.integration

REPLICAS = 3


def swarm_state() -> str:
    return subprocess.run(
        ["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


@dataclass
class Swarm:
    """One stack on the engine's swarm, driven by scripts/swarm.sh like a user drives it."""

    name: str
    env: dict[str, str] = field(default_factory=dict)

    def script(self, *args: str, timeout: float = 600) -> str:
        env = {**os.environ, "SWARM_STACK": self.name, **self.env}
        result = subprocess.run(
            [str(ROOT / "scripts" / "swarm.sh"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"swarm.sh {' '.join(args)} failed:\n{result.stderr[-4000:]}")
        return result.stderr

    def url(self, gateway: str, path: str = "/news") -> str:
        port = self.env["SYNC_PORT" if gateway == "sync" else "ASYNC_PORT"]
        return f"http://127.0.0.1:{port}{path}"

    def replicas(self) -> dict[str, str]:
        out = subprocess.run(
            ["docker", "stack", "services", self.name, "--format", "{{.Name}} {{.Replicas}}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        return {
            line.split()[0].removeprefix(f"{self.name}_"): line.split()[1]
            for line in out.splitlines()
        }


@pytest.fixture(scope="module")
def swarm(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    """The compose test stack built the image; the swarm stack runs beside it on its own
    ports. Whatever happens, the stack goes, and the swarm too if this made it."""
    before = swarm_state()
    state_dir: Path = tmp_path_factory.mktemp("swarm")
    deployed = Swarm(
        f"fanout-sw-{uuid.uuid4().hex[:6]}",
        {
            "SYNC_PORT": str(free_port()),
            "ASYNC_PORT": str(free_port()),
            "UPSTREAM_REPLICAS": str(REPLICAS),
            "SWARM_STATE_DIR": str(state_dir),
            "ACCESS_LOG": "false",
        },
    )
    try:
        deployed.script("up")
        yield deployed
    finally:
        try:
            deployed.script("down", timeout=300)
        finally:
            after = swarm_state()
            if after != before and before == "inactive":
                # swarm.sh failed to put it back: do it here, then fail loudly.
                subprocess.run(["docker", "swarm", "leave", "--force"], timeout=120)
            assert after == before, f"the engine's swarm state went from {before} to {after}"


def test_every_replica_runs_healthy(swarm: Swarm) -> None:
    running = swarm.replicas()
    for name in SOURCE_NAMES:
        assert running[f"upstream-{name}"] == f"{REPLICAS}/{REPLICAS}"
    assert running["sync-gateway"] == running["async-gateway"] == "1/1"


def spread(swarm: Swarm, gateway: str) -> Counter[str]:
    """Which wire replica answered each of 60 fan-outs, 10 at a time."""
    _, samples = closed_loop(swarm.url(gateway), 10, total=60, deadline_s=120, sources="wire")
    assert {s.status for s in samples} == {200}
    return Counter(s.body["sources"][0]["instance"] for s in samples)


def test_the_async_gateway_spreads_calls_over_every_replica(swarm: Swarm) -> None:
    """aiohttp's connector caches the name's addresses and hands them out in turn, one per
    new connection: 10 connections cover 3 replicas."""
    seen = spread(swarm, "async")
    assert len(seen) == REPLICAS, seen
    evenness = min(seen.values()) / (sum(seen.values()) / REPLICAS)
    record("swarm async: least-used wire replica / an even share", evenness, "> 0")


def test_the_sync_gateways_spread_is_measured(swarm: Swarm) -> None:
    """urllib3 connects to the first address the name resolves to, and this engine's DNS
    keeps one order: the spread is what the connections' timing makes it (a known limit,
    docs/scale-out.md)."""
    seen = spread(swarm, "sync")
    record("swarm sync: wire replicas reached", len(seen), f"of {REPLICAS}")
    evenness = min(seen.values()) / (sum(seen.values()) / REPLICAS) if len(seen) == 3 else 0.0
    record("swarm sync: least-used wire replica / an even share", evenness, "measured")


def test_a_source_scales_out_and_in(swarm: Swarm) -> None:
    swarm.script("scale", "upstream-wire=4")
    assert swarm.replicas()["upstream-wire"] == "4/4"
    swarm.script("scale", f"upstream-wire={REPLICAS}")
    assert swarm.replicas()["upstream-wire"] == f"{REPLICAS}/{REPLICAS}"
    # The gateways keep answering whole after replicas went away.
    assert fetch(swarm.url("async"), sources="wire").status == 200


def test_a_rolling_update_loses_no_accepted_request(swarm: Swarm) -> None:
    """`docker service update --force` of a gateway under load. With host-mode ports the old
    replica stops first: what it accepted finishes (gunicorn's graceful stop), and until the
    new one listens, new connections fail at once: the node's port has no backend. A request
    the gateway had taken would fail only after part of its fan-out (0.8 s); one that never
    reached a gateway fails within a moment. So any failure after half a fan-out is a loss."""
    service = f"{swarm.name}_async-gateway"
    half_a_fan_out = 0.4

    def client(_: int) -> tuple[int, list[float], list[str]]:
        answered, refused, lost = 0, [], []
        stop_at = time.monotonic() + 25
        while time.monotonic() < stop_at:
            started = time.monotonic()
            try:
                response = requests.get(swarm.url("async"), timeout=30)
                answered += response.status_code == 200
            except requests.ConnectionError as exc:
                took = time.monotonic() - started
                if took < half_a_fan_out:
                    refused.append(took)
                    time.sleep(0.1)  # the port has no backend yet: bounded, not a spin
                else:
                    lost.append(f"{took:.2f} s: {exc!r}")
        return answered, refused, lost

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client, i) for i in range(8)]
        time.sleep(3)
        subprocess.run(
            ["docker", "service", "update", "--force", "--detach", service],
            check=True,
            capture_output=True,
            timeout=120,
        )
        results = [future.result(timeout=120) for future in futures]
    answered = sum(r[0] for r in results)
    refused = [took for r in results for took in r[1]]
    lost = [line for r in results for line in r[2]]
    record("swarm rolling update: answered", answered, "> 0")
    record("swarm rolling update: failed at once (no backend yet)", len(refused), "any")
    record("swarm rolling update: accepted requests lost", len(lost), "= 0")
    assert answered > 0 and refused, "the update should have left a gap to measure"
    assert lost == [], lost[:5]
    # And the new replica serves.
    deadline = time.monotonic() + 60
    while swarm.replicas()["async-gateway"] != "1/1" and time.monotonic() < deadline:
        time.sleep(1)
    assert fetch(swarm.url("async")).status == 200
