"""The hostile upstream across containers, once: both gateways, as they run in the stack,
pointed at a server that breaks HTTP (tests/hostile.py, docker-compose.hostile.yml). Each
misbehaviour is its source's failure of its kind, within the deadline, never a 500, and the
worker's peak memory stays far below one flood's size."""

import subprocess
from collections.abc import Iterator

import pytest

from bench.harness.stack import healthz
from tests.hostile import EXPECTED_KIND, expected_kind
from tests.integration.stack import DEADLINE_MS, Stack, fetch, record

# Slow (make test-slow): two restarts with the hostile overlay. Every hostile case is held
# in make test by tests/unit/test_hostile_upstreams.py, in process and on loopback.
pytestmark = [pytest.mark.integration, pytest.mark.timing, pytest.mark.slow]

DEADLINE_S = DEADLINE_MS / 1000
BOUND_S = DEADLINE_S + 1.0  # the faults' bar (test_faults.py): the deadline cut it
# The big-body and big-chunked cases send 64 MiB each: a worker that held one would grow by
# that much at least. The caps keep it to about one 64 KiB read.
MAX_GROWTH_MIB = 64
OVERLAY = "tests/integration/docker-compose.hostile.yml"


def memory_kib(stack: Stack, service: str, pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak RSS) of one worker process inside its container."""
    status = subprocess.run(
        ["docker", "exec", stack.container(service), "cat", f"/proc/{pid}/status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


@pytest.fixture(scope="module")
def hostile_stack(stack: Stack) -> Iterator[Stack]:
    overlays = f"{stack.env['COMPOSE_OVERLAYS']} {OVERLAY}"
    with stack.reconfigured("sync-gateway", COMPOSE_OVERLAYS=overlays):
        stack.restart("async-gateway")
        try:
            yield stack
        finally:
            stack.env["COMPOSE_OVERLAYS"] = overlays.removesuffix(f" {OVERLAY}")
            stack.restart("async-gateway")


@pytest.mark.parametrize("gateway", ["sync", "async"])
def test_every_hostile_source_is_contained_across_containers(
    hostile_stack: Stack, gateway: str
) -> None:
    stack, service = hostile_stack, f"{gateway}-gateway"
    # The stack's clients, as its /healthz names them: requests (sync), httpx-aiohttp (async).
    running = healthz(stack.url(gateway, "")).http_client
    client = "sync" if gateway == "sync" else f"async-{running}"
    warm = fetch(stack.url(gateway), sources="wire")
    pid = warm.body["worker_pid"]
    idle = memory_kib(stack, service, pid)
    worst = 0.0
    for case in EXPECTED_KIND:
        sample = fetch(stack.url(gateway), sources=f"wire,{case}")
        assert sample.status == 200, (case, sample.body)
        wire, bad = sample.body["sources"]
        assert wire["ok"] and not bad["ok"], (case, bad)
        assert bad["error_kind"] == expected_kind(case, client), (case, bad)
        assert sample.latency_s <= BOUND_S, (case, sample.latency_s)
        assert sample.body["worker_pid"] == pid  # one worker met every case
        worst = max(worst, sample.latency_s / DEADLINE_S)
    peak = memory_kib(stack, service, pid)
    growth_mib = (peak["VmHWM"] - idle["VmRSS"]) / 1024
    record(
        f"{gateway} hostile upstream, worst latency / deadline",
        worst,
        f"≤ {BOUND_S / DEADLINE_S:.2f}",
    )
    record(f"{gateway} hostile upstream, peak RSS growth MiB", growth_mib, f"< {MAX_GROWTH_MIB}")
    assert growth_mib < MAX_GROWTH_MIB
