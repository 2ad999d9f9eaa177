"""Overload against the real stack: the benchmark's overload pair, and the async bound."""

import json
from pathlib import Path
from typing import Any

import pytest

from bench.harness.stack import healthz
from tests.integration.stack import Stack, burst, record
from tests.unit.health import as_configured

pytestmark = [pytest.mark.integration, pytest.mark.timing]


@pytest.mark.slow
def test_past_capacity_a_bound_turns_a_growing_queue_into_fast_503s(
    stack: Stack, tmp_path: Path
) -> None:
    """`bench compare --preset overload`: sync at 4x its capacity, without and with a bound."""
    before = healthz(stack.url("sync", ""))
    result = stack.bench("compare", "--preset", "overload", "--out", str(tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs: dict[int, dict[str, Any]] = {
        run["max_in_flight"]: run
        for run in json.loads((tmp_path / "results.json").read_text())["runs"]
    }
    unbounded, bounded = runs[0], runs[before.threadpool_tokens]
    ideal_ms = bounded["ideal_latency_ms"]  # one fan-out: sum(delays)

    # Without a bound every request is taken and waits its turn: 3.3x to 4.0x measured.
    queued = unbounded["latency_p50_ms"] / ideal_ms
    record("overload, no bound: p50 / one fan-out", queued, "≥ 2")
    assert queued >= 2
    assert unbounded["refused"] == 0

    # With the bound, 3 of 4 arrivals are refused (75% measured) ...
    record("overload, bound: 503 share", bounded["refused_share"], "≥ 0.5 (ideal 0.75)")
    assert bounded["refused_share"] >= 0.5
    # ... at once: a 503's p99 is a small part of a fan-out (0.07 to 0.09 measured) ...
    fast = bounded["refused_p99_ms"] / ideal_ms
    record("overload, bound: 503 p99 / one fan-out", fast, "≤ 0.3")
    assert fast <= 0.3
    # ... while the admitted stay far from the unbounded queue (3.3x to 4.0x above) at full
    # capacity: 1.06 to 1.16 measured before 2026-11-29, then 1.39 and 1.41 in two
    # fresh-clone runs that day; on 2026-11-30, 1.08 to 1.10 here with the upstream of
    # either day (an A/B of upstream/main.py) and 1.09 in a fresh-clone run. The cause of
    # those two is not found, so the bar stays at 1.6 until more runs agree with 1.3.
    admitted = bounded["latency_p99_ms"] / ideal_ms
    record("overload, bound: admitted p99 / one fan-out", admitted, "≤ 1.6")
    assert admitted <= 1.6
    assert bounded["throughput_vs_ideal"] >= 0.85
    assert as_configured(healthz(stack.url("sync", ""))) == as_configured(before)  # restored


def test_the_async_gateway_bound_refuses_past_it_and_reports_it(stack: Stack) -> None:
    with stack.reconfigured("async-gateway", ASYNC_MAX_IN_FLIGHT="10"):
        assert healthz(stack.url("async", "")).max_in_flight == 10
        _, samples = burst(stack.url("async"), 30)
    statuses = sorted(sample.status for sample in samples)
    # A burst of 30 at 10 slots, each held 0.8 s, and 100 ms to wait: 10 in, 20 refused.
    assert statuses == [200] * 10 + [503] * 20
    refused = [s for s in samples if s.status == 503]
    assert all("overloaded: 10 fan-outs in flight" in s.body["detail"] for s in refused)
    assert max(s.latency_s for s in refused) < min(s.latency_s for s in samples if s.status == 200)
