"""The README's explanation of the async gateway's shortfall, measured: httpx's pool CPU."""

import pytest

from bench.poolcost import pool_cost
from tests.integration.conftest import free_port_run, record

pytestmark = pytest.mark.integration


def test_httpx_pool_costs_more_cpu_per_fan_out_at_high_concurrency() -> None:
    _, costs = pool_cost((10, 100), fan_outs=200, first_port=free_port_run(3))
    cpu = {(c.client, c.concurrency): c.cpu_ms_per_fan_out for c in costs}
    growth = cpu["httpx", 100] / cpu["httpx", 10]
    versus_fork = cpu["httpx", 100] / cpu["httpx2", 100]
    record("httpx CPU per fan-out: C=100 / C=10", growth, "≈ 1 if the pool scaled")
    record("CPU per fan-out at C=100: httpx / httpx2", versus_fork, "> 1")
    # The same work, ten times the concurrency: a pool that scaled would cost the same.
    assert growth >= 2
    assert versus_fork >= 2
