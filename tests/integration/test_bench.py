"""The benchmark against the real stack: its CLI contract, hey's agreement, the quick matrix."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.compare import get_json
from bench.crosscheck import AGREEMENT, crosscheck
from tests.integration.conftest import REQUIRE_DOCKER, ROOT, Stack, record

pytestmark = pytest.mark.integration


def bench(stack: Stack, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`python -m bench ...` as a user runs it, pointed at this test's compose project."""
    env = {**os.environ, "COMPOSE_PROJECT_NAME": stack.project, **stack.env, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


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
    result = bench(
        stack,
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


def test_bench_rejects_bad_input_with_a_usage_error(stack: Stack) -> None:
    result = bench(stack, "run", "--url", stack.url("async"), "-c", "0", timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    result = bench(stack, "compare", "--preset", "huge", timeout=60)
    assert result.returncode == 2
    assert "quick" in result.stderr


def test_quick_compare_writes_the_report_and_the_gaps_are_the_theorys(
    stack: Stack, tmp_path: Path
) -> None:
    """The README's benchmark command, on this stack: restarts, report folder, ratios."""
    out = tmp_path / "quick"
    result = bench(stack, "compare", "--preset", "quick", "--out", str(out), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("summary.md", "results.json", "results.csv", "throughput.png"):
        assert (out / name).stat().st_size > 0, name
    for name in ("latency_p50.png", "latency_p99.png", "waterfall_sync.png", "waterfall_async.png"):
        assert (out / name).stat().st_size > 0, name

    runs: dict[tuple[str, int, int], dict[str, Any]] = {
        (r["target"], r["workers"], r["concurrency"]): r
        for r in json.loads((out / "results.json").read_text())["runs"]
    }
    assert {workers for _, workers, _ in runs} == {1, 2}, "the matrix restarts with 2 workers"
    for target in ("sync", "async"):
        ratio = runs[target, 1, 10]["throughput_vs_ideal"]
        record(f"bench quick, {target} 1 worker C=10: measured / ideal", ratio, "≈ 1")
        # A 3.2 s window holds about 20 answers at C=10: one answer either way is 5%.
        assert 0.8 <= ratio <= 1.15
    # The blog's point at C=10: overlapping the calls doubles throughput (1.6 s vs 0.8 s).
    speedup = runs["async", 1, 10]["throughput"] / runs["sync", 1, 10]["throughput"]
    record("bench quick, C=10: async / sync throughput", speedup, "≈ 2")
    assert speedup >= 1.6
    # The blocking mistake: one request at a time per worker, whatever the concurrency.
    blocking = runs["blocking", 1, 10]["throughput"] / runs["sync", 1, 10]["throughput"]
    record("bench quick, C=10: blocking / sync throughput", blocking, "≈ 0.1")
    assert blocking <= 0.2
    # The gateways were put back as they were.
    assert get_json(stack.url("sync", "/healthz"))["workers"] == 1
    assert get_json(stack.url("async", "/healthz"))["workers"] == 1
