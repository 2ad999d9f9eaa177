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
# larger, so this test turns the async gateway's log on. On the default client
# (httpx-aiohttp) the fan-out measured 6.48 and 7.07 in two runs of this test at 4c8bbbf,
# and 6.47 in bench cost's quiet run (docs/results/cost.json); the call 1.49 and 1.56. The
# fan-out's bar is the highest seen, 7.07, plus 40% for a busier machine; the call's stays
# at 3.0, near twice what was seen. A return to the 10.5 of before the cuts fails the
# first, and so does httpx's own pool (136 in one session). The aiohttp client's saving
# (about a quarter) is below the bar's margin: its guard is a ratio in one run, the client
# axis of bench compare (test_bench.py: the default / aiohttp, median ≥ 1.05).
FAN_OUT_BUDGET = 10.0
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
