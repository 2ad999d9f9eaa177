"""The CPU budget of a fan-out, against the real containers: ``bench cost``, in units of a
trivial request (the same worker's /healthz) measured in the same run."""

import json
from pathlib import Path

import pytest

from tests.integration.stack import Stack, record

pytestmark = [pytest.mark.integration, pytest.mark.timing]

# This test's command on this 2-core machine, access log off as in this stack. With the
# aiohttp client, the median of 3 to 5 rounds was 6.1 to 8.3 in eight runs within half an
# hour (single rounds: 6.2 to 9.7); httpx over the same connector, the default before it,
# gave 9.2 (docs/benchmark.md, "Where a fan-out's CPU goes"). The
# issue's target is 5 (bench/cost.py), not met yet. The bar is where the code stands plus
# that spread: it fails a return to 050a8ed's cost (10.5) or worse. The sharp guard of the
# client's cut is a ratio in one run: bench compare's client axis (test_bench.py).
FAN_OUT_BUDGET = 10.0
# Upstream CPU per source call, same unit: medians 2.0 to 2.4, rounds up to 2.9 (target 1.2).
UPSTREAM_CALL_BUDGET = 3.2


def test_a_fan_out_stays_within_its_cpu_budget(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "cost.json"
    async_url = stack.url("async", "")
    command = ("cost", "-c", "200", "--duration", "4", "--rounds", "5", "--async-url", async_url)
    result = stack.bench(*command, "--out", str(out), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (point,) = json.loads(out.read_text())["points"]
    assert point["errors"] == 0
    units, call_units = point["fan_out_units"], point["upstream_call_units"]
    record("cost C=200: gateway CPU per fan-out / per trivial request", units, "target ≤ 5")
    record("cost C=200: upstream CPU per call / per trivial request", call_units, "target ≤ 1.2")
    assert units <= FAN_OUT_BUDGET, point["fan_out_units_by_round"]
    assert call_units <= UPSTREAM_CALL_BUDGET, point["upstream_call_units_by_round"]
