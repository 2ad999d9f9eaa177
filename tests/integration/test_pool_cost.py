"""The README's account of the clients, measured outside the gateway: CPU per fan-out."""

import pytest

from bench.experiments.poolcost import pool_cost
from tests.integration.stack import free_port_run, record

pytestmark = [pytest.mark.integration, pytest.mark.timing, pytest.mark.slow]


def test_only_httpxs_own_pool_costs_more_per_fan_out_as_concurrency_grows() -> None:
    costs = pool_cost((10, 100), fan_outs=200, first_port=free_port_run(3))
    cpu = {(c.client, c.concurrency): c.cpu_ms_per_fan_out for c in costs}
    httpcore_growth = cpu["httpx", 100] / cpu["httpx", 10]
    aiohttp_growth = cpu["httpx-aiohttp", 100] / cpu["httpx-aiohttp", 10]
    versus_default = cpu["httpx", 100] / cpu["httpx-aiohttp", 100]
    record("pool-cost, httpx CPU per fan-out: C=100 / C=10", httpcore_growth, "≈ 1 if it scaled")
    record("pool-cost, httpx-aiohttp CPU per fan-out: C=100 / C=10", aiohttp_growth, "≈ 1")
    record("pool-cost, CPU per fan-out at C=100: httpx / httpx-aiohttp", versus_default, "> 1")
    # The same work at ten times the concurrency: a pool that scales costs the same.
    assert httpcore_growth >= 2
    assert aiohttp_growth <= 1.5
    assert versus_default >= 2
