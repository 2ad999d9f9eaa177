"""Both gateways, in process, against real upstream apps listening on loopback."""

import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, get_args

import anyio.to_thread
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bench.experiments.plan import GatewayConfig
from bench.harness.stack import GatewayName
from core.news import FaultKind
from gateway import async_app, sync_app
from gateway.calls import CallRules
from gateway.config import AsyncClientName, GatewaySettings
from gateway.models import GatewayHealth
from serving.cores import whole_cores
from tests.faults import ERROR_KIND_OF
from tests.unit.health import health_of
from tests.unit.loopback import DELAYS_MS, DRIP_MS, FAULT_DEADLINE_MS, HANG_MS, Upstreams

# Every timing in a response is rounded to 0.1 ms, each off by up to 0.05: a start compared
# with the previous call's start plus its duration is three of them, off by up to 0.15, and
# their float sum by a hair more.
ROUNDING_MS = 0.2
# How long a test holds the only threadpool token once a request waits for it.
HOLD_S = 0.2


@dataclass(frozen=True)
class Gateway:
    """A gateway as the tests build it: which app, on which settings."""

    name: GatewayName  # what the response's "gateway" field must say
    create_app: Callable[[GatewaySettings], FastAPI]
    settings: dict[str, Any] = field(default_factory=dict)


SYNC = Gateway("sync", sync_app.create_app)
SYNC_HTTPX = Gateway("sync", sync_app.create_app, {"sync_http_client": "httpx"})
# The async gateway on each client it can be configured with; the default comes first.
ASYNC_CLIENTS = {
    client: Gateway("async", async_app.create_app, {"async_http_client": client})
    for client in get_args(AsyncClientName)
}
ASYNC = ASYNC_CLIENTS[GatewaySettings.model_fields["async_http_client"].default]
EVERY_GATEWAY = {
    "sync": SYNC,
    "sync-httpx": SYNC_HTTPX,
    **{f"async-{c}": g for c, g in ASYNC_CLIENTS.items()},
}


@dataclass(frozen=True)
class FanOut:
    gateway: Gateway
    path: str
    mode: str | None  # the ?mode= sent, if any
    reported_mode: str  # what the response's "mode" must say
    overlaps: bool  # True: every call starts before the first one ends
    client: str | None = None  # the async gateway's ?client=, if any

    @property
    def query(self) -> dict[str, str]:
        query = {"mode": self.mode, "client": self.client}
        return {name: value for name, value in query.items() if value is not None}


FAN_OUTS = {
    "sync": FanOut(SYNC, "/news", None, "sequential", overlaps=False),
    "sync-threads": FanOut(SYNC, "/news", "threads", "threads", overlaps=True),
    "sync-httpx": FanOut(SYNC_HTTPX, "/news", None, "sequential", overlaps=False),
    "sync-httpx-threads": FanOut(SYNC_HTTPX, "/news", "threads", "threads", overlaps=True),
    **{
        f"async-{client}": FanOut(gateway, "/news", None, "concurrent", overlaps=True)
        for client, gateway in ASYNC_CLIENTS.items()
    },
    "async-sequential": FanOut(ASYNC, "/news", "sequential", "sequential", overlaps=False),
    # The blog post's fetch_data: a new httpx.AsyncClient for every call.
    "async-per-call": FanOut(
        ASYNC, "/news", None, "concurrent, per-call client", overlaps=True, client="per-call"
    ),
    "blocking": FanOut(ASYNC, "/news/blocking", None, "blocking", overlaps=False),
}


@pytest.fixture
def client_for(upstreams: Upstreams) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(gateway: Gateway, **settings: Any) -> TestClient:
        app = gateway.create_app(upstreams.settings(**{**gateway.settings, **settings}))
        client = TestClient(app)
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def get_news(client: TestClient, path: str, mode: str | None, **params: str) -> dict[str, Any]:
    if mode is not None:
        params["mode"] = mode
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.timing  # a source cannot answer before its delay
@pytest.mark.parametrize("fan_out", FAN_OUTS.values(), ids=FAN_OUTS)
def test_response_contract(client_for: Callable[..., TestClient], fan_out: FanOut) -> None:
    client = client_for(fan_out.gateway)
    response = client.get(fan_out.path, params=fan_out.query)
    body = response.json()
    assert (body["gateway"], body["mode"]) == (fan_out.gateway.name, fan_out.reported_mode)
    assert isinstance(body["worker_pid"], int)
    # Which gateway replica answered: its hostname, unless GATEWAY_INSTANCE names it.
    assert body["instance"] == socket.gethostname()
    assert [s["name"] for s in body["sources"]] == list(DELAYS_MS)
    for source in body["sources"]:
        assert source["ok"] and source["status"] == 200 and source["error"] is None
        assert source["articles"] == 5
        # Which replica answered: the upstream's hostname, here this machine's.
        assert source["instance"] == socket.gethostname()
        # A source cannot answer faster than its configured delay.
        assert source["elapsed_ms"] >= DELAYS_MS[source["name"]]
    dates = [article["published_at"] for article in body["articles"]]
    assert len(dates) == 15 and dates == sorted(dates, reverse=True)
    timing = response.headers["server-timing"]
    assert timing.startswith("wire;dur=") and f"fanout;dur={body['elapsed_ms']}" in timing


@pytest.mark.timing
@pytest.mark.parametrize("fan_out", FAN_OUTS.values(), ids=FAN_OUTS)
def test_calls_overlap_only_in_concurrent_modes(
    client_for: Callable[..., TestClient], fan_out: FanOut
) -> None:
    """Order, not speed: each source either starts before the others end, or after."""
    client = client_for(fan_out.gateway)
    sources = client.get(fan_out.path, params=fan_out.query).json()["sources"]
    ends = [s["started_ms"] + s["elapsed_ms"] for s in sources]
    if fan_out.overlaps:
        # Every call starts before the first one finishes.
        assert max(s["started_ms"] for s in sources) < min(ends)
    else:
        # Each call starts only once the previous one has finished.
        for previous_end, source in zip(ends, sources[1:], strict=False):
            assert source["started_ms"] >= previous_end - ROUNDING_MS


@pytest.mark.timing
@pytest.mark.parametrize("gateway", [SYNC, ASYNC], ids=["sync", "async"])
def test_gateway_elapsed_covers_its_sources(
    client_for: Callable[..., TestClient], gateway: Gateway
) -> None:
    body = get_news(client_for(gateway), "/news", None)
    ends = [s["started_ms"] + s["elapsed_ms"] for s in body["sources"]]
    # Each figure is rounded to 0.1 ms, so a sum of two may overshoot by that much.
    assert body["elapsed_ms"] >= max(ends) - ROUNDING_MS


@pytest.mark.parametrize("gateway", [SYNC, ASYNC], ids=["sync", "async"])
def test_sources_pick_a_subset_in_request_order(
    client_for: Callable[..., TestClient], gateway: Gateway
) -> None:
    body = get_news(client_for(gateway), "/news", None, sources="chronicle,wire")
    assert [s["name"] for s in body["sources"]] == ["chronicle", "wire"]
    assert {a["source"] for a in body["articles"]} == {"chronicle", "wire"}


@pytest.mark.parametrize(
    ("gateway", "path"),
    [(SYNC, "/news"), (ASYNC, "/news"), (ASYNC, "/news/blocking")],
    ids=["sync", "async", "blocking"],
)
def test_unknown_source_is_a_422_listing_the_valid_ones(
    client_for: Callable[..., TestClient], gateway: Gateway, path: str
) -> None:
    response = client_for(gateway).get(path, params={"sources": "wire,http://127.0.0.2/"})
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["query", "sources"]
    assert "valid sources: wire, gazette, chronicle" in detail["msg"]


@pytest.mark.parametrize(
    ("gateway", "bad_mode"), [(SYNC, "concurrent"), (ASYNC, "threads")], ids=["sync", "async"]
)
def test_unknown_mode_is_a_422(
    client_for: Callable[..., TestClient], gateway: Gateway, bad_mode: str
) -> None:
    response = client_for(gateway).get("/news", params={"mode": bad_mode})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "mode"]


DEAD_SOURCE_CASES = {
    "sync": (SYNC, None),
    "sync-threads": (SYNC, "threads"),
    "sync-httpx": (SYNC_HTTPX, None),
    **{f"async-{client}": (gateway, None) for client, gateway in ASYNC_CLIENTS.items()},
}


@pytest.mark.parametrize(("gateway", "mode"), DEAD_SOURCE_CASES.values(), ids=DEAD_SOURCE_CASES)
def test_a_refused_source_is_a_connection_error_in_a_partial_answer(
    client_for: Callable[..., TestClient],
    upstreams: Upstreams,
    unused_url: str,
    gateway: Gateway,
    mode: str | None,
) -> None:
    client = client_for(gateway, sources={**upstreams.urls, "dead": unused_url})
    body = get_news(client, "/news", mode)
    dead = body["sources"][-1]
    assert dead["name"] == "dead" and not dead["ok"] and dead["status"] is None
    # Refused, not timed out: httpx-aiohttp alone would call it a ConnectTimeout.
    assert dead["error"].startswith("connection error")
    assert all(s["ok"] for s in body["sources"][:-1])
    assert len(body["articles"]) == 15


READ_TIMEOUT_S = 1.0


@pytest.mark.timing
@pytest.mark.parametrize("gateway", EVERY_GATEWAY.values(), ids=EVERY_GATEWAY)
def test_a_slow_source_times_out_instead_of_hanging(
    client_for: Callable[..., TestClient], gateway: Gateway
) -> None:
    # chronicle hangs; the 1 s read timeout cuts it off, well before the 2.5 s deadline
    # would, and wire (50 ms, a twentieth of the timeout) answers.
    client = client_for(gateway, read_timeout_s=READ_TIMEOUT_S)
    body = get_news(client, "/news", None, sources="wire,chronicle", fault="chronicle:hang")
    wire, chronicle = body["sources"]
    assert wire["ok"]
    assert not chronicle["ok"] and chronicle["error"].startswith("timeout")
    # The read timeout ended it, not the deadline and not the hang: 1 s from each.
    deadline_ms = GatewaySettings().deadline_ms
    assert READ_TIMEOUT_S * 1000 <= chronicle["elapsed_ms"] < deadline_ms < HANG_MS
    assert "deadline" not in chronicle["error"]


@pytest.mark.parametrize("gateway", EVERY_GATEWAY.values(), ids=EVERY_GATEWAY)
def test_every_source_failing_is_a_502_that_still_explains(
    client_for: Callable[..., TestClient], unused_url: str, gateway: Gateway
) -> None:
    response = client_for(gateway, sources={"dead": unused_url}).get("/news")
    assert response.status_code == 502
    assert response.json()["sources"][0]["error"].startswith("connection error")


@pytest.mark.parametrize(
    ("gateway", "http_client"),
    [(SYNC, "requests"), (SYNC_HTTPX, "httpx"), *((g, c) for c, g in ASYNC_CLIENTS.items())],
    ids=["sync", "sync-httpx", *(f"async-{c}" for c in ASYNC_CLIENTS)],
)
def test_healthz_reports_the_client_and_every_limit(
    client_for: Callable[..., TestClient],
    gateway: Gateway,
    http_client: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The server, as serving/serve.py reads it, with what it lacks of gunicorn's features.
    monkeypatch.setenv("SERVER", "uvicorn")
    monkeypatch.setenv("NODE_NAME", "fanout-n3")
    client = client_for(gateway, threadpool_tokens=7, max_connections=50, instance="gw-7")
    health = GatewayHealth.model_validate(client.get("/healthz").json())
    # The CPU routes' calibration: rounds of pure-Python work per ms of this CPU.
    assert health.cpu_rounds_per_ms > 100
    assert health.cpu_processes == whole_cores()
    config = GatewayConfig(gateway.name, 1, 7, http_client, 50, 3000, server="uvicorn")
    # threads mode: 7 requests in flight x 3 sources, one thread per call (health_of's).
    assert health == health_of(
        config,
        instance="gw-7",
        node="fanout-n3",
        sources=list(DELAYS_MS),
        default_sources=list(DELAYS_MS),
        archive_driver=None,
        server_lacks=["blocked-loop timeout"],
        executor_threads=21,
        cpu_rounds_per_ms=health.cpu_rounds_per_ms,
        cpu_processes=whole_cores(),
    )


def test_sync_lifespan_sizes_the_threadpool_and_the_requests_pool(
    client_for: Callable[..., TestClient], upstreams: Upstreams
) -> None:
    client = client_for(SYNC, threadpool_tokens=7)
    assert client.portal is not None
    tokens = client.portal.call(
        lambda: anyio.to_thread.current_default_thread_limiter().total_tokens
    )
    assert tokens == 7
    # The pool a call to a source really gets: 7 connections kept, one per token.
    adapter = client.app_state["caller"].client.session.get_adapter(upstreams.urls["wire"])
    pool = adapter.poolmanager.connection_from_url(upstreams.urls["wire"])
    assert pool.pool is not None and pool.pool.maxsize == 7


def test_a_request_waiting_for_a_threadpool_token_reports_its_wait(
    client_for: Callable[..., TestClient],
) -> None:
    # The only token is held here until the request is seen waiting for it, and for
    # HOLD_S more: it reached its route before it was seen, and starts its fan-out after
    # the release, so its wait is at least HOLD_S however busy the machine is.
    client = client_for(SYNC, threadpool_tokens=1)
    portal, holder = client.portal, object()
    assert portal is not None
    limiter = portal.call(anyio.to_thread.current_default_thread_limiter)
    portal.call(limiter.acquire_on_behalf_of, holder)
    with ThreadPoolExecutor(max_workers=1) as pool:
        answer = pool.submit(get_news, client, "/news", None)
        deadline = time.monotonic() + 30
        while portal.call(lambda: limiter.statistics().tasks_waiting) == 0:
            assert time.monotonic() < deadline and not answer.done()
            time.sleep(0.01)
        seen = time.perf_counter()
        time.sleep(HOLD_S)
        held_ms = (time.perf_counter() - seen) * 1000
        portal.call(limiter.release_on_behalf_of, holder)
        body = answer.result(timeout=30)
    assert body["queued_ms"] >= held_ms - ROUNDING_MS
    response = client.get("/news")
    assert response.headers["Server-Timing"].endswith(f"queue;dur={response.json()['queued_ms']}")


# --- faults: the deadline, the error kinds, partial answers ------------------------------

DEADLINE_MS = FAULT_DEADLINE_MS
# In process the servers share this test's GIL, so a busy machine can slow every call; the
# integration tests measure answer / deadline across containers. What must hold: the
# deadline ended the call, not the hang or the drip, which would run 5x past it. A second
# past the deadline is far from the scheduler's noise, and far from them.
CUT_BY_DEADLINE_MS = DEADLINE_MS + 1000

# (gateway, path, mode, overlaps?)
FAULT_MODES = {
    "sync": (SYNC, "/news", None, False),
    "sync-threads": (SYNC, "/news", "threads", True),
    "sync-httpx": (SYNC_HTTPX, "/news", None, False),
    "async": (ASYNC, "/news", None, True),
    "async-httpx": (ASYNC_CLIENTS["httpx"], "/news", None, True),
    "async-httpx2": (ASYNC_CLIENTS["httpx2"], "/news", None, True),
    "async-sequential": (ASYNC, "/news", "sequential", False),
    "blocking": (ASYNC, "/news/blocking", None, False),
}


@pytest.mark.timing
@pytest.mark.parametrize("fault", ERROR_KIND_OF)
@pytest.mark.parametrize(
    ("gateway", "path", "mode", "overlaps"), FAULT_MODES.values(), ids=FAULT_MODES
)
def test_a_faulty_source_is_contained_within_the_deadline(
    client_for: Callable[..., TestClient],
    gateway: Gateway,
    path: str,
    mode: str | None,
    overlaps: bool,
    fault: FaultKind,
) -> None:
    client = client_for(gateway)
    params = {"fault": f"gazette:{fault}", "deadline_ms": str(DEADLINE_MS)}
    if mode is not None:
        params["mode"] = mode
    started = time.perf_counter()
    response = client.get(path, params=params)
    took_ms = (time.perf_counter() - started) * 1000
    body = response.json()
    assert response.status_code == 200, body
    assert body["partial"] is True and body["deadline_ms"] == DEADLINE_MS
    by_name = {source["name"]: source for source in body["sources"]}
    gazette = by_name.pop("gazette")
    assert not gazette["ok"] and gazette["error_kind"] == ERROR_KIND_OF[fault], gazette
    assert gazette["instance"] is None
    assert took_ms < CUT_BY_DEADLINE_MS < min(HANG_MS, DRIP_MS)
    # wire (50 ms) always answers; chronicle (250 ms) does unless the sequential modes
    # spent the deadline waiting on gazette first: the three take a third of the deadline.
    assert by_name["wire"]["ok"]
    if ERROR_KIND_OF[fault] != "timeout" or overlaps:
        assert by_name["chronicle"]["ok"]
    else:
        assert by_name["chronicle"]["error_kind"] == "timeout"


@pytest.mark.timing
@pytest.mark.parametrize("gateway", [SYNC, ASYNC], ids=["sync", "async"])
def test_every_source_timing_out_is_a_504(
    client_for: Callable[..., TestClient], gateway: Gateway
) -> None:
    faults = "wire:hang,gazette:hang,chronicle:hang"
    params = {"fault": faults, "deadline_ms": "300", "mode": "threads"}
    if gateway is ASYNC:
        params.pop("mode")
    response = client_for(gateway).get("/news", params=params)
    assert response.status_code == 504
    body = response.json()
    assert body["partial"] is False and body["articles"] == []
    assert {s["error_kind"] for s in body["sources"]} == {"timeout"}


@pytest.mark.timing
@pytest.mark.parametrize("gateway", [SYNC, ASYNC], ids=["sync", "async"])
def test_every_source_failing_otherwise_is_a_502(
    client_for: Callable[..., TestClient], gateway: Gateway
) -> None:
    # The hang goes last: the sync gateway's sequential calls spend the deadline on it.
    faults = "wire:error,gazette:reset,chronicle:hang"
    params = {"fault": faults, "deadline_ms": str(FAULT_DEADLINE_MS)}
    response = client_for(gateway).get("/news", params=params)
    assert response.status_code == 502
    kinds = [s["error_kind"] for s in response.json()["sources"]]
    assert kinds == ["status", "connect", "timeout"]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"fault": "reuters:hang"}, "fault"),
        ({"fault": "wire:explode"}, "fault"),
        ({"fault": "wire:hang,wire:error"}, "fault"),
        ({"fault": "http://127.0.0.2/:hang"}, "fault"),
        ({"fault": " wire:hang"}, "fault"),
        ({"sources": "wire, gazette"}, "sources"),
        ({"deadline_ms": "0"}, "deadline_ms"),
        ({"deadline_ms": "10001"}, "deadline_ms"),
        ({"deadline_ms": "soon"}, "deadline_ms"),
    ],
)
@pytest.mark.parametrize("gateway", [SYNC, ASYNC], ids=["sync", "async"])
def test_a_bad_fault_or_deadline_is_a_422_naming_it(
    client_for: Callable[..., TestClient], gateway: Gateway, params: dict[str, str], name: str
) -> None:
    response = client_for(gateway).get("/news", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", name]


@pytest.mark.parametrize("gateway", [SYNC, ASYNC], ids=["sync", "async"])
def test_a_fault_for_a_source_not_called_is_ignored(
    client_for: Callable[..., TestClient], gateway: Gateway
) -> None:
    # The schema cannot tie ?fault= to ?sources=, so neither does the gateway.
    response = client_for(gateway).get("/news", params={"sources": "wire", "fault": "gazette:hang"})
    assert response.status_code == 200
    assert [source["name"] for source in response.json()["sources"]] == ["wire"]


@pytest.mark.timing
@pytest.mark.parametrize("gateway", [SYNC, ASYNC], ids=["sync", "async"])
def test_connect_retries_stay_within_the_deadline(
    client_for: Callable[..., TestClient], unused_url: str, gateway: Gateway
) -> None:
    client = client_for(gateway, sources={"dead": unused_url}, connect_retries=5)

    def fan_out(deadline_ms: int) -> tuple[float, dict[str, Any], int]:
        started = time.perf_counter()
        response = client.get("/news", params={"deadline_ms": str(deadline_ms)})
        (dead,) = response.json()["sources"]
        return time.perf_counter() - started, dead, response.status_code

    # The calibration, in the same run: five refused connects with their waits run out,
    # 0.05 + 0.1 + 0.2 x 3 = 0.75 s at the least, well within a 10 s deadline.
    run_out, dead, status = fan_out(10_000)
    policy = CallRules.of(GatewaySettings(connect_retries=5)).retry_policy(10)
    waits = [min(policy["wait_initial"] * 2**n, policy["wait_max"]) for n in range(5)]
    assert run_out >= sum(waits)
    assert (dead["error_kind"], status) == ("connect", 502)
    # Cut at a 20 ms deadline instead: the deadline plus one wait already begun (0.25 s at
    # most), a third of the run-out or less; the bar is half. Still a connection error, or
    # the deadline's timeout: nothing was ever reached.
    cut, dead, status = fan_out(20)
    assert cut < run_out / 2
    assert dead["error_kind"] in ("connect", "timeout") and status in (502, 504)
