"""The CPU budget of a fan-out, against the real containers: ``bench cost``, in units of a
trivial request (the same worker's /healthz) measured in the same run."""

import json
from pathlib import Path

import pytest

from tests.integration.stack import Stack, record

pytestmark = [pytest.mark.integration, pytest.mark.timing]

# The targets are in the unit `bench cost` prices on the stack .env sets up: a trivial
# request through the same server and middleware, its access log line included. This suite
# runs with the log off, which makes the unit a third cheaper and every ratio a third
# larger: on one test-like stack, 7.18 and 7.57 for a fan-out with the log off, then 5.65
# and 5.11 with it on, and 4.84 on beside two CPU hogs (docs/results/cost.json: 4.93). So
# this test turns the async gateway's log on. The bars are the medians seen, up to 6.0 and
# 2.0, plus 40% for a busier machine: a return to the 10.5 of before the cuts fails it, and
# httpx's own pool (136 in one session) does. One cut alone stays under: the httpx-aiohttp
# client gave 7.7 where aiohttp gave 5.8, minutes apart. Its guard is a ratio in one run,
# the client axis of bench compare (test_bench.py: httpx-aiohttp / aiohttp ≥ 1.1).
FAN_OUT_BUDGET = 8.5
UPSTREAM_CALL_BUDGET = 3.0


def test_a_fan_out_stays_within_its_cpu_budget(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "cost.json"
    async_url = stack.url("async", "")
    command = ("cost", "-c", "200", "--duration", "4", "--rounds", "5", "--async-url", async_url)
    with stack.reconfigured("async-gateway", deps=False, ACCESS_LOG="true"):
        result = stack.bench(*command, "--out", str(out), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (point,) = json.loads(out.read_text())["points"]
    assert point["errors"] == 0
    units, call_units = point["fan_out_units"], point["upstream_call_units"]
    # What the test asserts; #19's targets (5 and 1.2) live in the benchmark (bench cost).
    record(
        "cost C=200: gateway CPU per fan-out / per trivial request", units, f"≤ {FAN_OUT_BUDGET}"
    )
    record(
        "cost C=200: upstream CPU per call / per trivial request",
        call_units,
        f"≤ {UPSTREAM_CALL_BUDGET}",
    )
    assert units <= FAN_OUT_BUDGET, point["fan_out_units_by_round"]
    assert call_units <= UPSTREAM_CALL_BUDGET, point["upstream_call_units_by_round"]
