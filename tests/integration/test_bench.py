"""The benchmark against the real stack: its CLI contract, hey's agreement, the quick matrix."""

import json
import os
import shutil
import statistics
from pathlib import Path
from typing import Any

import pytest

from bench.experiments.plan import GatewayConfig
from bench.experiments.rows import limit_throughput
from bench.harness.crosscheck import AGREEMENT, crosscheck
from bench.harness.stack import healthz
from tests.integration.stack import REQUIRE_DOCKER, Stack, record

pytestmark = [pytest.mark.integration, pytest.mark.timing]


@pytest.fixture(scope="module")
def hey() -> None:
    if shutil.which("hey") is None:
        reason = "hey is not installed (scripts/install.sh installs it)"
        if os.environ.get(REQUIRE_DOCKER) == "1":
            pytest.fail(f"{REQUIRE_DOCKER}=1 but {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.mark.parametrize("gateway", ["sync", "async"])
@pytest.mark.usefixtures("hey")
def test_bench_agrees_with_hey(stack: Stack, gateway: str) -> None:
    check = crosscheck(stack.url(gateway), concurrency=10, rounds=6)
    throughput, p50 = check.difference("throughput"), check.difference("p50_ms")
    record(f"{gateway} C=10: bench vs hey, throughput difference", throughput, "≤ 0.15")
    record(f"{gateway} C=10: bench vs hey, p50 difference", p50, "≤ 0.15")
    assert check.agrees, f"throughput off by {throughput:.1%}, p50 by {p50:.1%} (> {AGREEMENT:.0%})"


def test_bench_run_writes_json_and_csv(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    result = stack.bench(
        "run",
        "--url",
        stack.url("async"),
        "--mode",
        "sequential",
        "-c",
        "4",
        "--duration",
        "3.2",
        "--warmup",
        "1",
        "--json",
        str(out),
        "--csv",
        str(tmp_path / "run.csv"),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "client latency" in result.stdout
    (run,) = json.loads(out.read_text())["runs"]
    assert run["params"] == "mode=sequential" and run["errors"] == 0
    # Sequential fan-outs: each answer takes the sum of the delays, as the gateway reports.
    assert run["latency_p50_ms"] / run["gateway_p50_ms"] == pytest.approx(1, abs=0.1)
    assert (tmp_path / "run.csv").read_text().startswith("url,params,loop,concurrency")


@pytest.mark.slow
def test_quick_compare_shows_the_lesson_at_c100_and_restores_the_stack(
    stack: Stack, tmp_path: Path
) -> None:
    """The README's benchmark command, on this stack: report folder, ratios, restore."""
    before = {g: GatewayConfig.running(healthz(stack.url(g, ""))) for g in ("sync", "async")}
    out = tmp_path / "quick"
    result = stack.bench("compare", "--preset", "quick", "--out", str(out), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("summary.md", "results.json", "results.csv", "throughput.png"):
        assert (out / name).stat().st_size > 0, name
    for name in ("latency_p99.png", "cpu_per_request.png", "waterfall_async.png"):
        assert (out / name).stat().st_size > 0, name

    report = json.loads((out / "results.json").read_text())
    runs: dict[tuple[str, int], dict[str, Any]] = {
        (r["series"], r["concurrency"]): r for r in report["runs"]
    }
    default = f"async · {report['meta']['async_http_client']}"
    assert default == "async · httpx-aiohttp"
    assert {r["errors"] for r in report["runs"] if r["series"] == default} == {0}

    # 1. The default client nears its ideal at C=100, in 3 s windows: 0.95 to 1.00 on a
    # quiet machine. How near is the machine's speed as much as the code's: the same code
    # gave 0.80 in a run of an evening when this machine ran about 3x slower (the async
    # gateway of 343a4de and of its successor both at 72 to 89 req/s, side by side). The
    # bar is set against what it guards: a pool that collapses (httpx's own: 0.20) or caps
    # the connections (httpx's default 100: 0.50). The speed target is the benchmark's.
    of_ideal = runs[default, 100]["throughput_vs_ideal"]
    record("bench quick, async C=100: measured / ideal", of_ideal, "≥ 0.7")
    assert of_ideal >= 0.7
    # 2. The lesson at C=100: async holds 100 fan-outs, sync 40 (ideal 5x): 5.0 measured.
    speedup = runs[default, 100]["throughput"] / runs["sync", 100]["throughput"]
    record("bench quick, C=100: async / sync throughput", speedup, "≥ 3.5 (ideal 5)")
    assert speedup >= 3.5
    # 3. The default client's cost stays flat: 0.64 to 0.71 measured (C=100 / C=10).
    growth = runs[default, 100]["gateway_cpu_ms_per_request"]
    growth /= runs[default, 10]["gateway_cpu_ms_per_request"]
    record("bench quick, async CPU per request: C=100 / C=10", growth, "≤ 1.5")
    assert growth <= 1.5
    # httpx's own pool, in the same run: 12x the default's CPU per request at C=100.
    httpcore = runs["async · httpx", 100]["gateway_cpu_ms_per_request"]
    httpcore /= runs[default, 100]["gateway_cpu_ms_per_request"]
    record("bench quick, C=100 CPU per request: httpx / httpx-aiohttp", httpcore, "≥ 2")
    assert httpcore >= 2
    assert runs["async · httpx", 100]["cpu_bound"] is True
    # The default's httpx request layer over the connector the aiohttp client calls bare,
    # in the same run: what the aiohttp setting saves, kept measurable. One 3 s window can
    # be off by a third on a busy machine (a CI run at 45ee1f2: 1.10, 1.16 and 1.08 at C=10,
    # 100 and 200, the last where the full run gave 1.58), so the bar is on the median of
    # the three concurrencies' ratios.
    layer = statistics.median(
        runs[default, c]["gateway_cpu_ms_per_request"]
        / runs["async · aiohttp", c]["gateway_cpu_ms_per_request"]
        for c in (10, 100, 200)
    )
    record("bench quick, CPU per request, median: httpx-aiohttp / aiohttp", layer, "≥ 1.05")
    assert layer >= 1.05
    # The blog's point at C=10: overlapping the calls doubles throughput (1.6 s vs 0.8 s).
    at_10 = runs[default, 10]["throughput"] / runs["sync", 10]["throughput"]
    record("bench quick, C=10: async / sync throughput", at_10, "≥ 1.6 (ideal 2)")
    assert at_10 >= 1.6
    # The blocking mistake: one request at a time per worker, whatever the concurrency.
    blocking = runs["blocking", 10]["throughput"] / runs["sync", 10]["throughput"]
    record("bench quick, C=10: blocking / sync throughput", blocking, "≤ 0.2 (ideal 0.1)")
    assert blocking <= 0.2
    # The server axis: the async gateway under each server at C=200, in the same run. Each
    # serves the lesson as far as the machine lets it: measured against the lowest of the
    # ideal and the gateway's and the machine's CPU lines, every cap that applies. On
    # httpx's client C=200 is CPU-bound here: of the ideal alone, uvicorn once gave 0.69 (a
    # CI run at 34d706a); the full run gave 0.65 gunicorn, 0.71 granian, 0.74 uvicorn, with
    # the machine's line at 0.79. A deadline cut is a failed answer: at most 2% of them.
    for server in ("granian", "uvicorn"):
        row = runs[f"{default} · {server}", 200]
        assert row["server"] == server
        assert row["errors"] <= 0.02 * (row["ok"] + row["errors"]), row["errors_by_kind"]
        of_limit = row["throughput"] / limit_throughput(row)
        record(f"bench quick, async under {server} C=200: measured / limit", of_limit, "≥ 0.7")
        assert of_limit >= 0.7
    assert "## Servers" in (out / "summary.md").read_text()
    # The gateways were put back exactly as they were: workers, client, pool, threadpool,
    # server.
    after = {g: GatewayConfig.running(healthz(stack.url(g, ""))) for g in ("sync", "async")}
    assert after == before


@pytest.mark.slow
def test_quick_sweep_writes_its_report_and_the_sync_gateway_queues_as_replayed(
    stack: Stack, tmp_path: Path
) -> None:
    """`bench sweep` as the docs run it: both gateways at rho 0.5 and 0.8, every request due
    answered, and the sync gateway's wait the ideal queue's on the same arrivals."""
    urls = ("--sync-url", stack.url("sync", ""), "--async-url", stack.url("async", ""))
    out = tmp_path / "sweep"
    result = stack.bench("sweep", "--preset", "quick", *urls, "--out", str(out), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "sweep.md").read_text().startswith("# Waiting under Poisson arrivals")
    assert (out / "wait.png").stat().st_size > 10_000
    sweep = json.loads((out / "sweep.json").read_text())
    capacities = sweep["meta"]["capacities"]
    assert capacities["sync"]["servers"] == 40 and capacities["async"]["servers"] is None
    points = {(p["gateway"], p["rho"]): p for p in sweep["points"]}
    assert set(points) == {(g, rho) for g in ("sync", "async") for rho in (0.5, 0.8)}
    assert all(p["answered"] == p["sent"] > 0 for p in points.values())
    # M/D/40 at rho 0.8 predicts about 14 ms; with the same arrivals, the queue is the same.
    sync = points[("sync", 0.8)]
    record(
        "sweep, sync at rho 0.8: mean wait - ideal queue's, same arrivals (ms)",
        sync["wait_mean_ms"] - sync["replayed_mean_ms"],
        "≈ 0",
    )
    assert abs(sync["wait_mean_ms"] - sync["replayed_mean_ms"]) <= (
        0.3 * sync["replayed_mean_ms"] + 5
    )
