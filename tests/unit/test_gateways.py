"""Both gateways, in process, against real upstream apps listening on loopback."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway import async_app, sync_app
from gateway.config import GatewaySettings
from tests.unit.conftest import DELAYS_MS, Upstreams

# Every timing in a response is rounded to 0.1 ms; sums of two can be off by 0.1.
ROUNDING_MS = 0.1

AppFactory = Callable[[GatewaySettings], FastAPI]
GATEWAYS: dict[str, AppFactory] = {"sync": sync_app.create_app, "async": async_app.create_app}

# (gateway, path, mode param, expected mode, overlaps?)
FAN_OUTS = [
    ("sync", "/news", None, "sequential", False),
    ("sync", "/news", "threads", "threads", True),
    ("async", "/news", None, "concurrent", True),
    ("async", "/news", "sequential", "sequential", False),
    ("async", "/news/blocking", None, "blocking", False),
]


@pytest.fixture
def client_for(upstreams: Upstreams) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(gateway: str, **settings: Any) -> TestClient:
        client = TestClient(GATEWAYS[gateway](upstreams.settings(**settings)))
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


@pytest.mark.parametrize(("gateway", "path", "mode", "expected_mode", "overlaps"), FAN_OUTS)
def test_response_contract(
    client_for: Callable[..., TestClient],
    gateway: str,
    path: str,
    mode: str | None,
    expected_mode: str,
    overlaps: bool,
) -> None:
    client = client_for(gateway)
    response = client.get(path, params={"mode": mode} if mode else {})
    body = response.json()
    assert (body["gateway"], body["mode"]) == (
        gateway if gateway == "sync" else "async",
        expected_mode,
    )
    assert isinstance(body["worker_pid"], int)
    assert [s["name"] for s in body["sources"]] == list(DELAYS_MS)
    for source in body["sources"]:
        assert source["ok"] and source["status"] == 200 and source["error"] is None
        assert source["articles"] == 5
        # A source cannot answer faster than its configured delay.
        assert source["elapsed_ms"] >= DELAYS_MS[source["name"]]
    dates = [article["published_at"] for article in body["articles"]]
    assert len(dates) == 15 and dates == sorted(dates, reverse=True)
    timing = response.headers["server-timing"]
    assert timing.startswith("wire;dur=") and f"fanout;dur={body['elapsed_ms']}" in timing


@pytest.mark.parametrize(("gateway", "path", "mode", "expected_mode", "overlaps"), FAN_OUTS)
def test_calls_overlap_only_in_concurrent_modes(
    client_for: Callable[..., TestClient],
    gateway: str,
    path: str,
    mode: str | None,
    expected_mode: str,
    overlaps: bool,
) -> None:
    """Order, not speed: each source either starts before the others end, or after."""
    sources = get_news(client_for(gateway), path, mode)["sources"]
    ends = [s["started_ms"] + s["elapsed_ms"] for s in sources]
    if overlaps:
        # Every call starts before the first one finishes.
        assert max(s["started_ms"] for s in sources) < min(ends)
    else:
        # Each call starts only once the previous one has finished.
        for previous_end, source in zip(ends, sources[1:], strict=False):
            assert source["started_ms"] >= previous_end - ROUNDING_MS


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_gateway_elapsed_covers_its_sources(
    client_for: Callable[..., TestClient], gateway: str
) -> None:
    body = get_news(client_for(gateway), "/news", None)
    ends = [s["started_ms"] + s["elapsed_ms"] for s in body["sources"]]
    # Each figure is rounded to 0.1 ms, so a sum of two may overshoot by that much.
    assert body["elapsed_ms"] >= max(ends) - ROUNDING_MS


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_sources_pick_a_subset_in_request_order(
    client_for: Callable[..., TestClient], gateway: str
) -> None:
    body = get_news(client_for(gateway), "/news", None, sources="chronicle,wire")
    assert [s["name"] for s in body["sources"]] == ["chronicle", "wire"]
    assert {a["source"] for a in body["articles"]} == {"chronicle", "wire"}


@pytest.mark.parametrize(
    ("gateway", "path"), [("sync", "/news"), ("async", "/news"), ("async", "/news/blocking")]
)
def test_unknown_source_is_a_422_listing_the_valid_ones(
    client_for: Callable[..., TestClient], gateway: str, path: str
) -> None:
    response = client_for(gateway).get(path, params={"sources": "wire,http://127.0.0.2/"})
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["query", "sources"]
    assert "valid sources: wire, gazette, chronicle" in detail["msg"]


@pytest.mark.parametrize(("gateway", "bad_mode"), [("sync", "concurrent"), ("async", "threads")])
def test_unknown_mode_is_a_422(
    client_for: Callable[..., TestClient], gateway: str, bad_mode: str
) -> None:
    response = client_for(gateway).get("/news", params={"mode": bad_mode})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "mode"]


@pytest.mark.parametrize(
    ("gateway", "mode"), [("sync", None), ("sync", "threads"), ("async", None)]
)
def test_a_dead_source_gives_a_partial_answer(
    upstreams: Upstreams, unused_url: str, gateway: str, mode: str | None
) -> None:
    settings = upstreams.settings(sources={**upstreams.urls, "dead": unused_url})
    with TestClient(GATEWAYS[gateway](settings)) as client:
        body = get_news(client, "/news", mode)
    dead = body["sources"][-1]
    assert dead["name"] == "dead" and not dead["ok"] and dead["status"] is None
    assert dead["error"].startswith("connection error")
    assert all(s["ok"] for s in body["sources"][:-1])
    assert len(body["articles"]) == 15


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_slow_source_times_out_instead_of_hanging(upstreams: Upstreams, gateway: str) -> None:
    # chronicle takes 250 ms; a 150 ms read timeout cuts it off, and wire (50 ms) answers.
    with TestClient(GATEWAYS[gateway](upstreams.settings(read_timeout_s=0.15))) as client:
        body = get_news(client, "/news", None, sources="wire,chronicle")
    wire, chronicle = body["sources"]
    assert wire["ok"]
    assert not chronicle["ok"] and chronicle["error"].startswith("timeout")
    assert chronicle["elapsed_ms"] < DELAYS_MS["chronicle"]


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_every_source_failing_is_a_502_that_still_explains(
    upstreams: Upstreams, unused_url: str, gateway: str
) -> None:
    settings = upstreams.settings(sources={"dead": unused_url})
    with TestClient(GATEWAYS[gateway](settings)) as client:
        response = client.get("/news")
    assert response.status_code == 502
    assert response.json()["sources"][0]["error"].startswith("connection error")


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_healthz(client_for: Callable[..., TestClient], gateway: str) -> None:
    body = client_for(gateway).get("/healthz").json()
    assert body == {
        "status": "ok",
        "gateway": gateway,
        "sources": list(DELAYS_MS),
        "workers": 1,
        "threadpool_tokens": 40,
        "max_connections": 100,
    }


def test_sync_lifespan_sizes_the_threadpool_and_the_pool(upstreams: Upstreams) -> None:
    import anyio.to_thread

    app = sync_app.create_app(upstreams.settings(threadpool_tokens=7))
    with TestClient(app) as client:
        assert client.portal is not None
        tokens = client.portal.call(
            lambda: anyio.to_thread.current_default_thread_limiter().total_tokens
        )
        session = client.app_state["session"]
        adapter = session.get_adapter("http://127.0.0.1")
    assert tokens == 7
    assert adapter._pool_maxsize == 7
    assert adapter._pool_connections == len(DELAYS_MS)
