"""The matrix's plan, its windows, and how it restarts and restores the gateways."""

from dataclasses import replace
from itertools import pairwise

import pytest
from pydantic import ValidationError

from bench import compare
from bench.compare import (
    PRESETS,
    GatewayConfig,
    Healthz,
    Point,
    label,
    needs_drain,
    plan,
    whole_cycles,
)
from bench.load import LoadResult, LoadSpec
from bench.probe import WindowCost
from bench.theory import TARGETS_BY_NAME
from gateway import async_app, sync_app
from tests.unit.loopback import LiveServer, Upstreams

DELAYS_S = [0.3, 0.5, 0.8]
SYNC = GatewayConfig("sync", 1, 40, "requests", 1000, 1000)
ASYNC = GatewayConfig("async", 1, 40, "aiohttp", 1000, 1000)


@pytest.mark.parametrize(
    ("target", "duration_s", "window_s"),
    [
        ("sync", 4, 3.2),  # 1.6 s a fan-out: 2.5 rounds round to 2
        ("sync", 10, 9.6),
        ("async", 4, 4.0),  # 0.8 s a fan-out: exactly 5 rounds
        ("blocking", 1, 3.2),  # never fewer than 2 rounds
    ],
)
def test_windows_hold_whole_fan_out_rounds(target: str, duration_s: float, window_s: float) -> None:
    assert whole_cycles(duration_s, TARGETS_BY_NAME[target], DELAYS_S) == pytest.approx(window_s)


def test_quick_plan_runs_every_target_then_each_client_and_server_once() -> None:
    points = plan(PRESETS["quick"], SYNC, ASYNC)
    series = [(label(p, 40), p.concurrency) for p in points]
    # Every target at 10, 100, 200 but blocking (10 only), the other three clients, and
    # the other two servers, async at 200 and sync at 100 (gunicorn's points are the target
    # axis's own).
    assert series == [
        *((name, c) for name in ("sync", "sync-threads") for c in (10, 100, 200)),
        *(("async · aiohttp", c) for c in (10, 100, 200)),
        *(("async-sequential", c) for c in (10, 100, 200)),
        ("blocking", 10),
        *(
            (f"async · {client}", c)
            for client in ("httpx-aiohttp", "httpx2", "httpx")
            for c in (10, 100, 200)
        ),
        ("async · aiohttp · granian", 200),
        ("async · aiohttp · uvicorn", 200),
        ("sync · granian", 100),
        ("sync · uvicorn", 100),
    ]
    assert len(set(points)) == len(points)
    assert {p.config.workers for p in points} == {1}


def test_full_plan_restarts_each_gateway_as_rarely_as_it_can() -> None:
    points = plan(PRESETS["full"], SYNC, ASYNC)
    restarts = {"sync": 0, "async": 0}
    running = {"sync": SYNC, "async": ASYNC}
    for point in points:
        gateway = point.target.gateway
        if point.config != running[gateway]:
            restarts[gateway] += 1
            running[gateway] = point.config
    # sync: 2 more servers, 3 more threadpool sizes, the overload bound, then 2 and 4
    # workers; async: 3 more clients, 2 more servers, then 2 and 4 workers (back on the
    # stack's own ones).
    assert restarts == {"sync": 8, "async": 7}
    sweep = {p.config.threadpool_tokens for p in points if p.target.name == "sync"}
    assert sweep == {40, 100, 200, 400}
    assert max(p.concurrency for p in points if label(p, 40) == "async · httpx") == 1000
    granian = [p.concurrency for p in points if label(p, 40) == "async · aiohttp · granian"]
    assert granian == [200, 400, 1000]


def test_a_point_two_axes_share_runs_once() -> None:
    # The stack already runs httpx2: its client-axis points are the target axis's own.
    points = plan(PRESETS["quick"], SYNC, replace(ASYNC, http_client="httpx2"))
    httpx2 = [p for p in points if label(p, 40) == "async · httpx2"]
    assert [p.concurrency for p in httpx2] == [10, 100, 200]


def test_labels_name_the_client_and_a_threadpool_other_than_the_stacks() -> None:
    async_point = Point(TARGETS_BY_NAME["async"], 10, replace(ASYNC, http_client="httpx"))
    sync_point = Point(TARGETS_BY_NAME["sync"], 10, replace(SYNC, threadpool_tokens=200))
    assert label(async_point, 40) == "async · httpx"
    assert label(sync_point, 40) == "sync · 200 tokens"
    assert label(sync_point, 200) == "sync"
    assert label(Point(TARGETS_BY_NAME["blocking"], 1, ASYNC), 40) == "blocking"
    granian = Point(TARGETS_BY_NAME["async"], 10, replace(ASYNC, server="granian"))
    assert label(granian, 40) == "async · aiohttp · granian"
    assert label(granian, 40, stack_server="granian") == "async · aiohttp"


def test_config_env_is_what_compose_reads() -> None:
    assert replace(SYNC, workers=4, threadpool_tokens=100).env() == {
        "SERVER": "gunicorn",
        "SYNC_WORKERS": "4",
        "SYNC_THREADPOOL_TOKENS": "100",
        "SYNC_MAX_IN_FLIGHT": "0",
    }
    assert replace(ASYNC, http_client="httpx", max_connections=50, server="uvicorn").env() == {
        "SERVER": "uvicorn",
        "ASYNC_WORKERS": "1",
        "ASYNC_HTTP_CLIENT": "httpx",
        "ASYNC_MAX_CONNECTIONS": "50",
        "ASYNC_MAX_KEEPALIVE_CONNECTIONS": "1000",
        "ASYNC_MAX_IN_FLIGHT": "0",
    }
    assert replace(SYNC, max_in_flight=40).env()["SYNC_MAX_IN_FLIGHT"] == "40"


def _healthz(config: GatewayConfig) -> Healthz:
    return {
        "status": "ok",
        "gateway": config.gateway,
        "sources": ["wire", "gazette", "chronicle"],
        "http_client": config.http_client,
        "workers": config.workers,
        "server": config.server,
        "threadpool_tokens": config.threadpool_tokens,
        "executor_threads": config.threadpool_tokens * 3,
        "requests_pool_maxsize": config.threadpool_tokens,
        "max_connections": config.max_connections,
        "max_keepalive_connections": config.max_keepalive_connections,
        "max_in_flight": config.max_in_flight,
    }


class FakeStack:
    """Two gateways that 'restart' by changing config; every restart is recorded."""

    def __init__(self, sync: GatewayConfig, async_: GatewayConfig) -> None:
        self.running = {"sync": sync, "async": async_}
        self.restarts: list[GatewayConfig] = []

    def healthz(self, base: str) -> Healthz:
        return _healthz(self.running["sync" if base == "http://sync" else "async"])

    def restart(self, config: GatewayConfig) -> None:
        self.restarts.append(config)
        self.running[config.gateway] = config

    def measure(self, spec: LoadSpec, probe: object) -> tuple[LoadResult, WindowCost | None]:
        result = LoadResult(spec, window_s=1.0, ok=10, window_start=0.0, window_end=1.0)
        return result, WindowCost(0.03, 80.0, 120.0, 0.2, 0.1)


@pytest.fixture
def user_stack(monkeypatch: pytest.MonkeyPatch) -> FakeStack:
    # As a user may have started it: SYNC_WORKERS=4, ASYNC_HTTP_CLIENT=httpx2.
    stack = FakeStack(replace(SYNC, workers=4), replace(ASYNC, http_client="httpx2"))
    monkeypatch.setattr(compare, "healthz", stack.healthz)
    monkeypatch.setattr(compare, "restart_gateway", stack.restart)
    monkeypatch.setattr(compare, "measure", stack.measure)
    monkeypatch.setattr(compare, "calibrate", lambda base: dict(zip("abc", DELAYS_S, strict=True)))
    monkeypatch.setattr(compare, "compose_probe", lambda *args: None)
    return stack


def test_the_matrix_puts_the_stack_back_as_the_user_started_it(user_stack: FakeStack) -> None:
    started = dict(user_stack.running)
    comparison = compare.run_matrix("quick", "http://sync", "http://async")
    assert user_stack.running == started
    assert comparison.stack == started
    # It ran one worker with each client, so it restarted, then restored, each gateway.
    assert user_stack.restarts[-2:] == [started["sync"], started["async"]]
    clients = {row.client for row in comparison.rows if row.target.name == "async"}
    assert clients == {"aiohttp", "httpx-aiohttp", "httpx2", "httpx"}
    assert {row.workers for row in comparison.rows} == {1}


def test_without_restarts_it_measures_only_what_runs(user_stack: FakeStack) -> None:
    comparison = compare.run_matrix("quick", "http://sync", "http://async", restart=False)
    assert user_stack.restarts == []
    # Only the async gateway runs one worker here, on httpx2.
    assert {row.series for row in comparison.rows} == {
        "async · httpx2",
        "async-sequential",
        "blocking",
    }


def test_a_row_is_cpu_bound_when_its_cpu_line_is_below_its_ideal(user_stack: FakeStack) -> None:
    comparison = compare.run_matrix("quick", "http://sync", "http://async")
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


def test_healthz_reads_what_each_gateway_really_reports(upstreams: Upstreams) -> None:
    settings = upstreams.settings(http_client="httpx2", threadpool_tokens=7)
    for create_app, expected in [
        (sync_app.create_app, GatewayConfig("sync", 1, 7, "requests", 3000, 3000)),
        (async_app.create_app, GatewayConfig("async", 1, 7, "httpx2", 3000, 3000)),
    ]:
        with LiveServer(create_app(settings)) as server:
            assert GatewayConfig.running(compare.healthz(server.url)) == expected


def test_healthz_without_a_limit_the_matrix_needs_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    partial = dict(_healthz(ASYNC))
    del partial["max_connections"]
    monkeypatch.setattr(compare, "get_json", lambda url: partial)
    with pytest.raises(ValidationError, match="max_connections"):
        compare.healthz("http://async")


def test_a_queue_left_on_either_gateway_drains_before_the_next_point() -> None:
    points = plan(PRESETS["quick"], SYNC, ASYNC)
    drains = {(label(p, 40), p.concurrency): needs_drain(p, n) for p, n in pairwise(points)}
    # sync-threads at C=200 leaves 200 requests in flight: the async points share the cores.
    assert drains["sync-threads", 200] is True
    assert drains["async · httpx-aiohttp", 10] is True
    # The blocking queue ends with the restart onto httpx2: no need to wait for it.
    assert drains["blocking", 10] is False
    assert needs_drain(points[-1], None) is False


def test_the_overload_pair_runs_past_capacity_without_and_with_a_bound(
    user_stack: FakeStack,
) -> None:
    started = dict(user_stack.running)
    comparison = compare.run_matrix("overload", "http://sync", "http://async")
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


def test_the_full_preset_holds_the_overload_pair() -> None:
    points = plan(PRESETS["full"], SYNC, ASYNC)
    overload = [p for p in points if p.overload]
    assert [p.config.max_in_flight for p in overload] == [0, 40]
    assert all(p.target.name == "sync" and p.config.workers == 1 for p in overload)
