"""The matrix run (bench/experiments/compare.py) against a fake stack: how it restarts each gateway,
what it measures without restarts, and how it puts the stack back as it found it."""

from dataclasses import replace

import pytest

from bench.experiments.compare import run_matrix
from bench.experiments.plan import GatewayConfig
from bench.harness.load import LoadResult, LoadSpec
from bench.harness.probe import WindowCost
from bench.harness.stack import GatewayName
from gateway.models import GatewayHealth
from tests.unit.health import health_of

DELAYS_S = [0.3, 0.5, 0.8]
SYNC = GatewayConfig("sync", 1, 40, "requests", 1000, 1000)
ASYNC = GatewayConfig("async", 1, 40, "aiohttp", 1000, 1000)


class FakeStack:
    """Two gateways that 'restart' by changing config; every restart is recorded."""

    def __init__(self, sync: GatewayConfig, async_: GatewayConfig, priced: bool = True) -> None:
        self.running = {"sync": sync, "async": async_}
        self.restarts: list[GatewayConfig] = []
        self.can_price = priced

    def base(self, gateway: GatewayName) -> str:
        return f"http://{gateway}"

    def health(self, gateway: GatewayName) -> GatewayHealth:
        return health_of(self.running[gateway])

    def calibrate(self) -> dict[str, float]:
        return dict(zip(("wire", "gazette", "chronicle"), DELAYS_S, strict=True))

    def restart(self, gateway: GatewayName, env: dict[str, str]) -> None:
        """Start the gateway as compose does: from these variables alone."""
        prefix = f"{gateway.upper()}_"
        config = replace(
            self.running[gateway],
            server=env["SERVER"],
            workers=int(env[prefix + "WORKERS"]),
            max_in_flight=int(env[prefix + "MAX_IN_FLIGHT"]),
        )
        if gateway == "sync":
            config = replace(config, threadpool_tokens=int(env["SYNC_THREADPOOL_TOKENS"]))
        else:
            config = replace(
                config,
                http_client=env["ASYNC_HTTP_CLIENT"],
                max_connections=int(env["ASYNC_MAX_CONNECTIONS"]),
                max_keepalive_connections=int(env["ASYNC_MAX_KEEPALIVE_CONNECTIONS"]),
            )
        self.restarts.append(config)
        self.running[gateway] = config

    def measure(self, gateway: GatewayName, spec: LoadSpec) -> tuple[LoadResult, WindowCost | None]:
        result = LoadResult(spec, window_s=1.0, ok=10, window_start=0.0, window_end=1.0)
        return result, WindowCost(0.03, 80.0, 120.0, 0.2, 0.1)

    def priced(self, gateway: GatewayName) -> bool:
        return self.can_price


@pytest.fixture
def user_stack() -> FakeStack:
    # As a user may have started it: SYNC_WORKERS=4, ASYNC_HTTP_CLIENT=httpx2.
    return FakeStack(replace(SYNC, workers=4), replace(ASYNC, http_client="httpx2"))


def test_the_matrix_puts_the_stack_back_as_the_user_started_it(user_stack: FakeStack) -> None:
    started = dict(user_stack.running)
    comparison = run_matrix("quick", user_stack)
    assert user_stack.running == started
    assert comparison.stack == started
    # It ran one worker with each client, so it restarted, then restored, each gateway.
    assert user_stack.restarts[-2:] == [started["sync"], started["async"]]
    clients = {row.client for row in comparison.rows if row.target.name == "async"}
    assert clients == {"aiohttp", "httpx-aiohttp", "httpx2", "httpx"}
    assert {row.workers for row in comparison.rows} == {1}


def test_without_restarts_it_measures_only_what_runs(user_stack: FakeStack) -> None:
    comparison = run_matrix("quick", user_stack, restart=False)
    assert user_stack.restarts == []
    # Only the async gateway runs one worker here, on httpx2.
    assert {row.series for row in comparison.rows} == {
        "async · httpx2",
        "async-sequential",
        "blocking",
    }


def test_a_row_is_cpu_bound_when_its_cpu_line_is_below_its_ideal(user_stack: FakeStack) -> None:
    comparison = run_matrix("quick", user_stack)
    record = next(
        r.record() for r in comparison.rows if r.series == "async · httpx2" and r.concurrency == 200
    )
    # 0.03 s of CPU for 10 answers: 3 ms each, so one worker's core allows 333 req/s,
    # above the ideal of 250: not CPU-bound.
    assert record["gateway_cpu_ms_per_request"] == pytest.approx(3.0)
    assert record["cpu_line_throughput"] == pytest.approx(333.3)
    assert record["ideal_throughput"] == pytest.approx(250)
    assert record["cpu_bound"] is False
    assert record["peak_worker_rss_mib"] == 80.0


def test_the_overload_pair_runs_past_capacity_without_and_with_a_bound(
    user_stack: FakeStack,
) -> None:
    started = dict(user_stack.running)
    comparison = run_matrix("overload", user_stack)
    unbounded, bounded = comparison.rows
    assert [unbounded.series, bounded.series] == [
        "sync · 4x capacity, no bound",
        "sync · 4x capacity, bound 40",
    ]
    assert [unbounded.point.config.max_in_flight, bounded.point.config.max_in_flight] == [0, 40]
    assert {row.workers for row in comparison.rows} == {1}
    # One worker, 40 tokens, 1.6 s a fan-out: 25 req/s; arrivals at 4x that, open loop.
    for row in comparison.rows:
        assert row.ideal.throughput == pytest.approx(25)
        assert row.ideal.latency_s == pytest.approx(1.6)
        assert row.result.spec.loop == "open"
        assert row.result.spec.rate == pytest.approx(100)
    assert user_stack.running == started


def test_a_stack_this_host_cannot_price_says_so_in_the_report() -> None:
    comparison = run_matrix("quick", FakeStack(SYNC, ASYNC, priced=False), restart=False)
    assert comparison.probe_note is not None and "cgroups" in comparison.probe_note
    assert run_matrix("quick", FakeStack(SYNC, ASYNC), restart=False).probe_note is None
