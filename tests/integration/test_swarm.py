"""The same stack on a one-node Docker Swarm: 2 replicas of each source and of the async
gateway, the contract on every gateway replica, every source replica serving, scaling,
replicas against workers with the bench, a rolling update under load; and the engine left
as it was."""

import itertools
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from bench.harness.topology import SOURCE_NAMES
from tests.integration.stack import ROOT, Stack, closed_loop, fetch, free_port, record, run_script

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.swarm]

UPSTREAM_REPLICAS = 2
ASYNC_REPLICAS = 2


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

    @property
    def script_env(self) -> dict[str, str]:
        return {**os.environ, "SWARM_STACK": self.name, **self.env}

    def script(self, *args: str, timeout: float = 600) -> str:
        return run_script("swarm.sh", *args, env=self.script_env, timeout=timeout)

    def urls(self, gateway: str) -> list[str]:
        """Each running replica's base URL, as `swarm.sh urls` lists them."""
        return self.script("urls", f"{gateway}-gateway", timeout=60).split()

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
            "UPSTREAM_REPLICAS": str(UPSTREAM_REPLICAS),
            "ASYNC_REPLICAS": str(ASYNC_REPLICAS),
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


def test_every_replica_runs_healthy_on_the_ports_it_should(swarm: Swarm) -> None:
    running = swarm.replicas()
    for name in SOURCE_NAMES:
        assert running[f"upstream-{name}"] == f"{UPSTREAM_REPLICAS}/{UPSTREAM_REPLICAS}"
    assert running["sync-gateway"] == "1/1"
    assert running["async-gateway"] == f"{ASYNC_REPLICAS}/{ASYNC_REPLICAS}"
    # One replica keeps compose's port; two cannot share a node's port, so each has its own.
    assert swarm.urls("sync") == [f"http://127.0.0.1:{swarm.env['SYNC_PORT']}"]
    async_urls = swarm.urls("async")
    assert len(async_urls) == ASYNC_REPLICAS
    assert f"http://127.0.0.1:{swarm.env['ASYNC_PORT']}" not in async_urls


def test_the_contract_holds_on_every_gateway_replica(swarm: Swarm) -> None:
    answered_by = {}
    for gateway in ("sync", "async"):
        for url in swarm.urls(gateway):
            sample = fetch(f"{url}/news")
            assert sample.status == 200, sample.body
            body = sample.body
            assert body["gateway"] == gateway and not body["partial"]
            assert [s["name"] for s in body["sources"]] == list(SOURCE_NAMES)
            assert all(s["ok"] and s["instance"] for s in body["sources"])
            assert len(body["articles"]) == 10 * len(SOURCE_NAMES)
            answered_by[url] = body["instance"]
    # Every replica is its own container: as many gateway instances as URLs.
    assert len(set(answered_by.values())) == 1 + ASYNC_REPLICAS


def source_spread(urls: list[str]) -> dict[str, Counter[str]]:
    """Which replica of each source answered each of 60 fan-outs per gateway URL, 10 at a
    time, each client on a new connection to the gateway."""
    seen: dict[str, Counter[str]] = {name: Counter() for name in SOURCE_NAMES}
    for url in urls:
        _, samples = closed_loop(f"{url}/news", 10, total=60, deadline_s=120)
        assert {s.status for s in samples} == {200}
        for sample in samples:
            for source in sample.body["sources"]:
                seen[source["name"]][source["instance"]] += 1
    return seen


@pytest.mark.parametrize("gateway", ["sync", "async"])
def test_every_source_replica_serves_each_gateway_evenly(swarm: Swarm, gateway: str) -> None:
    """The async gateway's aiohttp connector and the sync gateway's round-robin pool
    (gateway/balancing.py) give each new connection the next replica's address: 10
    connections per source split 5/5. urllib3 alone sent every one to the first address."""
    for name, seen in source_spread(swarm.urls(gateway)).items():
        assert len(seen) == UPSTREAM_REPLICAS, (name, seen)
        evenness = min(seen.values()) / (sum(seen.values()) / UPSTREAM_REPLICAS)
        record(f"swarm {gateway}: least-used {name} replica / an even share", evenness, "> 0.5")
        assert evenness > 0.5, (name, seen)


def test_a_source_scales_out_and_in(swarm: Swarm) -> None:
    swarm.script("scale", f"upstream-wire={UPSTREAM_REPLICAS + 1}")
    assert swarm.replicas()["upstream-wire"] == f"{UPSTREAM_REPLICAS + 1}/{UPSTREAM_REPLICAS + 1}"
    swarm.script("scale", f"upstream-wire={UPSTREAM_REPLICAS}")
    assert swarm.replicas()["upstream-wire"] == f"{UPSTREAM_REPLICAS}/{UPSTREAM_REPLICAS}"
    # The gateways keep answering whole after a replica went away.
    for url in swarm.urls("async"):
        sample = fetch(f"{url}/news", sources="wire")
        assert sample.status == 200 and sample.body["sources"][0]["ok"]


@pytest.mark.timing
def test_the_bench_measures_replicas_against_workers(
    swarm: Swarm, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`bench compare --target swarm --preset quick`: the sync gateway as 1 process, as 2
    workers, as 2 replicas. Its capacity is its workers' threadpool tokens, so 2 replicas
    double it, as 2 workers do, only if the load really spreads over both replicas."""
    out = tmp_path_factory.mktemp("scale-out")
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "compare", "--target", "swarm", "--preset", "quick"]
        + ["--out", str(out)],
        cwd=ROOT,
        env={**swarm.script_env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    runs = json.loads((out / "results.json").read_text())["runs"]
    by_shape = {(r["replicas"], r["workers"]): r for r in runs}
    assert set(by_shape) == {(1, 1), (1, 2), (2, 1)}
    assert all(r["errors"] == 0 and r["target"] == "sync" for r in runs)
    assert by_shape[(2, 1)]["instances_seen"] == 2 and by_shape[(1, 2)]["workers_seen"] == 2
    one, workers, replicas = (by_shape[s]["throughput"] for s in ((1, 1), (1, 2), (2, 1)))
    record("swarm bench: sync 2 replicas / 1 replica", replicas / one, ">= 1.6")
    record("swarm bench: sync 2 replicas / 2 workers", replicas / workers, ">= 0.8")
    assert replicas / one >= 1.6 and replicas / workers >= 0.8
    assert (out / "scale_out.png").stat().st_size > 0
    # And the gateway is back as the bench found it: one replica on compose's port.
    assert swarm.urls("sync") == [f"http://127.0.0.1:{swarm.env['SYNC_PORT']}"]
    assert swarm.replicas()["sync-gateway"] == "1/1"


@dataclass
class ReplicaSet:
    """The async gateway's replica URLs as clients see them: read again when one refuses."""

    swarm: Swarm
    urls: list[str]
    lock: threading.Lock = field(default_factory=threading.Lock)
    turns: "itertools.count[int]" = field(default_factory=itertools.count)

    def next(self) -> str:
        with self.lock:
            return self.urls[next(self.turns) % len(self.urls)]

    def refresh(self) -> None:
        urls = self.swarm.urls("async")
        with self.lock:
            self.urls = urls or self.urls


def update_state(service: str) -> str:
    return subprocess.run(
        ["docker", "service", "inspect", "--format", "{{.UpdateStatus.State}}", service],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()


@pytest.mark.timing
def test_a_rolling_update_loses_no_accepted_request(swarm: Swarm) -> None:
    """`docker service update --force` of the async gateway's 2 replicas under load, one at a
    time. A replica being replaced finishes what it accepted (gunicorn's graceful stop)
    and then refuses connections; a client then reads the replicas again and goes on. A
    request a gateway had taken would fail only after part of its fan-out (0.8 s); one that
    never reached a gateway fails within a moment. So any failure after half a fan-out is a
    loss."""
    service = f"{swarm.name}_async-gateway"
    half_a_fan_out = 0.4
    replicas = ReplicaSet(swarm, swarm.urls("async"))
    before = {fetch(f"{url}/news", sources="wire").body["instance"] for url in replicas.urls}
    updated = threading.Event()

    def client(_: int) -> tuple[int, list[float], list[str]]:
        answered, refused, lost = 0, [], []
        stop_at = time.monotonic() + 120
        while time.monotonic() < stop_at and not updated.is_set():
            started = time.monotonic()
            try:
                response = requests.get(f"{replicas.next()}/news", timeout=30)
                answered += response.status_code == 200
            except requests.ConnectionError as exc:
                took = time.monotonic() - started
                if took < half_a_fan_out:
                    refused.append(took)
                    replicas.refresh()  # a subprocess: bounded, not a spin
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
        deadline = time.monotonic() + 110
        time.sleep(2)
        while update_state(service) == "updating" and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(2)  # a moment of load on the new replicas too
        updated.set()
        results = [future.result(timeout=150) for future in futures]
    assert update_state(service) == "completed"
    answered = sum(r[0] for r in results)
    refused = [took for r in results for took in r[1]]
    lost = [line for r in results for line in r[2]]
    record("swarm rolling update: answered", answered, "> 0")
    record("swarm rolling update: refused at once, then retried elsewhere", len(refused), "any")
    record("swarm rolling update: accepted requests lost", len(lost), "= 0")
    assert answered > 0
    assert lost == [], lost[:5]
    # Both replicas were replaced, and the new ones serve.
    replicas.refresh()
    after = {fetch(f"{url}/news", sources="wire").body["instance"] for url in replicas.urls}
    assert len(after) == ASYNC_REPLICAS and not after & before, (before, after)
