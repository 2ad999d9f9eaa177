"""The matrix's plan (bench/experiments/plan.py): its presets, its windows, the order that
restarts each gateway as rarely as it can, and what compose reads to run a point."""

from dataclasses import replace
from itertools import pairwise

import pytest

from bench.experiments.plan import PRESETS, GatewayConfig, label, needs_drain, plan, whole_cycles
from core.theory import TARGETS_BY_NAME
from tests.unit.health import health_of

DELAYS_S = [0.3, 0.5, 0.8]
SYNC = GatewayConfig("sync", 1, 40, "requests", 1000, 1000)
ASYNC = GatewayConfig("async", 1, 40, "httpx-aiohttp", 1000, 1000)


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
        *(("async · httpx-aiohttp", c) for c in (10, 100, 200)),
        *(("async-sequential", c) for c in (10, 100, 200)),
        ("blocking", 10),
        *(
            (f"async · {client}", c)
            for client in ("aiohttp", "httpx2", "httpx")
            for c in (10, 100, 200)
        ),
        ("async · httpx-aiohttp · granian", 200),
        ("async · httpx-aiohttp · uvicorn", 200),
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
    granian = [p.concurrency for p in points if label(p, 40) == "async · httpx-aiohttp · granian"]
    assert granian == [200, 400, 1000]


def test_a_point_two_axes_share_runs_once() -> None:
    # The stack already runs httpx2: its client-axis points are the target axis's own.
    points = plan(PRESETS["quick"], SYNC, replace(ASYNC, http_client="httpx2"))
    httpx2 = [p for p in points if label(p, 40) == "async · httpx2"]
    assert [p.concurrency for p in httpx2] == [10, 100, 200]


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


def test_a_config_is_what_the_gateway_running_it_reports() -> None:
    for config in (SYNC, replace(ASYNC, workers=4, server="granian", max_in_flight=10)):
        assert GatewayConfig.running(health_of(config)) == config
    assert "at most 10 in flight" in replace(SYNC, max_in_flight=10).describe()


def test_a_queue_left_on_either_gateway_drains_before_the_next_point() -> None:
    points = plan(PRESETS["quick"], SYNC, ASYNC)
    drains = {(label(p, 40), p.concurrency): needs_drain(p, n) for p, n in pairwise(points)}
    # sync-threads at C=200 leaves 200 requests in flight: the async points share the cores.
    assert drains["sync-threads", 200] is True
    assert drains["async · aiohttp", 10] is True
    # The blocking queue ends with the restart onto httpx2: no need to wait for it.
    assert drains["blocking", 10] is False
    assert needs_drain(points[-1], None) is False


def test_the_full_preset_holds_the_overload_pair() -> None:
    points = plan(PRESETS["full"], SYNC, ASYNC)
    overload = [p for p in points if p.overload]
    assert [p.config.max_in_flight for p in overload] == [0, 40]
    assert all(p.target.name == "sync" and p.config.workers == 1 for p in overload)
