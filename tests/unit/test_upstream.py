"""One upstream in process: its articles, its query, its latency models and its faults."""

import json
import socket
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from tests.unit.loopback import LiveServer
from tests.waiting import in_flight, poll
from upstream.articles import generate_articles
from upstream.config import UpstreamSettings
from upstream.faults import Draws
from upstream.main import create_app


@pytest.fixture
def client() -> TestClient:
    settings = UpstreamSettings(name="wire", delay_ms=0, max_delay_ms=50, article_count=12)
    return TestClient(create_app(settings))


def test_articles_are_deterministic_per_source() -> None:
    assert generate_articles("wire", 5) == generate_articles("wire", 5)
    assert generate_articles("wire", 5) != generate_articles("gazette", 5)


def test_articles_are_newest_first_and_carry_their_source() -> None:
    articles = generate_articles("gazette", 20)
    dates = [article.published_at for article in articles]
    assert dates == sorted(dates, reverse=True)
    assert {article.source for article in articles} == {"gazette"}
    assert len({article.id for article in articles}) == 20


def test_news_honours_limit(client: TestClient) -> None:
    body = client.get("/news", params={"limit": 3}).json()
    assert body["source"] == "wire"
    assert [a["id"] for a in body["articles"]] == ["wire-0000", "wire-0001", "wire-0002"]


@pytest.mark.timing
def test_delay_override_is_applied_and_reported(client: TestClient) -> None:
    started = time.perf_counter()
    response = client.get("/news", params={"delay_ms": 40})
    assert time.perf_counter() - started >= 0.04
    assert response.json()["delay_ms"] == 40
    assert response.headers["server-timing"] == "delay;dur=40"


@pytest.mark.parametrize(
    ("params", "bad_param"),
    [
        ({"delay_ms": 51}, "delay_ms"),
        ({"delay_ms": -1}, "delay_ms"),
        ({"delay_ms": "soon"}, "delay_ms"),
        ({"limit": 0}, "limit"),
        ({"limit": 13}, "limit"),
    ],
)
def test_bad_query_is_a_422_naming_the_parameter(
    client: TestClient, params: dict[str, int | str], bad_param: str
) -> None:
    response = client.get("/news", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", bad_param]


def test_jitter_stays_within_its_bound() -> None:
    settings = UpstreamSettings(name="wire", delay_ms=1, jitter_ms=4, max_delay_ms=5)
    client = TestClient(create_app(settings))
    delays = {client.get("/news").json()["delay_ms"] for _ in range(30)}
    assert delays <= set(range(1, 6))
    assert len(delays) > 1


def test_settings_reject_a_base_delay_above_the_maximum() -> None:
    with pytest.raises(ValidationError, match="max_delay_ms"):
        UpstreamSettings(delay_ms=900, jitter_ms=200, max_delay_ms=1000)


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_NAME", "chronicle")
    monkeypatch.setenv("UPSTREAM_DELAY_MS", "800")
    settings = UpstreamSettings()
    assert (settings.name, settings.delay_ms, settings.node) == ("chronicle", 800, None)


def test_an_answer_names_its_node_on_a_swarm(monkeypatch: pytest.MonkeyPatch) -> None:
    # The swarm stack sets NODE_NAME from the node's hostname (docker-compose.swarm.yml).
    monkeypatch.setenv("NODE_NAME", "fanout-n2")
    body = TestClient(create_app(UpstreamSettings(name="wire", delay_ms=0))).get("/news").json()
    assert (body["source"], body["node"]) == ("wire", "fanout-n2")


def test_healthz_answers_at_once(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "source": "wire"}


# --- faults and latency models -----------------------------------------------------------


def fault_client(**settings: object) -> TestClient:
    fields: dict[str, object] = {"name": "wire", "delay_ms": 0, "hang_ms": 60, "drip_ms": 100}
    return TestClient(create_app(UpstreamSettings.model_validate({**fields, **settings})))


def test_forced_error_is_a_500_or_503() -> None:
    client = fault_client()
    statuses = {client.get("/news", params={"fault": "error"}).status_code for _ in range(20)}
    assert statuses == {500, 503}


@pytest.mark.timing
def test_forced_hang_answers_only_after_the_hang() -> None:
    started = time.perf_counter()
    response = fault_client().get("/news", params={"fault": "hang"})
    assert time.perf_counter() - started >= 0.06
    assert response.status_code == 200 and response.json()["source"] == "wire"


@pytest.mark.timing
def test_a_slow_body_drips_out_in_chunks_over_its_duration() -> None:
    with fault_client().stream("GET", "/news", params={"fault": "slow-body"}) as response:
        started = time.perf_counter()
        chunks = list(response.iter_bytes())
        took = time.perf_counter() - started
    assert response.status_code == 200
    assert len(chunks) > 1 and took >= 0.08
    assert json.loads(b"".join(chunks))["source"] == "wire"


@pytest.mark.parametrize("fault", ["malformed-json", "wrong-shape"])
def test_a_bad_body_is_200_with_something_that_is_not_news(fault: str) -> None:
    response = fault_client().get("/news", params={"fault": fault})
    assert response.status_code == 200
    try:
        body = json.loads(response.content)
    except ValueError:
        assert fault == "malformed-json"
    else:
        assert fault == "wrong-shape" and "articles" not in body


def test_a_reset_drops_the_connection_mid_body() -> None:
    settings = UpstreamSettings(name="wire", delay_ms=0)
    with LiveServer(create_app(settings)) as server:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"{server.url}/news", params={"fault": "reset"})
        # The server itself is fine: the next request is answered.
        assert httpx.get(f"{server.url}/news").status_code == 200


def test_an_unknown_fault_is_a_422_naming_it() -> None:
    response = fault_client().get("/news", params={"fault": "explode"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "fault"]


def test_a_fault_rate_faults_that_share_of_answers_the_same_way_every_run() -> None:
    def statuses() -> list[int]:
        client = fault_client(fault="error", fault_rate=0.3, seed=7)
        return [client.get("/news").status_code for _ in range(200)]

    first = statuses()
    assert first == statuses()  # seeded: the same answers in the same order
    assert 0.2 <= sum(status != 200 for status in first) / 200 <= 0.4


def test_lognormal_latency_has_its_median_at_the_delay_and_a_long_tail() -> None:
    settings = UpstreamSettings(
        name="wire", delay_ms=100, latency="lognormal", latency_sigma=0.5, seed=1
    )
    draws = Draws(settings)
    delays = sorted(draws.delay_ms() for _ in range(4000))
    median, p99 = delays[len(delays) // 2], delays[int(len(delays) * 0.99)]
    assert median == pytest.approx(100, rel=0.05)
    # exp(2.326 x 0.5) = 3.2: the 99th percentile of a lognormal with sigma 0.5.
    assert p99 / median == pytest.approx(3.2, rel=0.15)


def test_spikes_multiply_their_share_of_delays() -> None:
    settings = UpstreamSettings(
        name="wire", delay_ms=100, spike_rate=0.05, spike_factor=5, seed=3, max_delay_ms=1000
    )
    draws = Draws(settings)
    delays = [draws.delay_ms() for _ in range(4000)]
    assert set(delays) == {100, 500}
    assert delays.count(500) / len(delays) == pytest.approx(0.05, abs=0.015)


def test_a_drawn_delay_never_exceeds_the_maximum() -> None:
    settings = UpstreamSettings(
        name="wire", delay_ms=100, spike_rate=1, spike_factor=50, max_delay_ms=300
    )
    assert Draws(settings).delay_ms() == 300


def held_request(url: str, query: str) -> socket.socket:
    """A GET that stays open until the caller closes the returned socket."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(f"GET /news?{query} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return sock


@pytest.mark.timing
@pytest.mark.parametrize("query", ["delay_ms=60000", "fault=hang", "fault=slow-body"])
def test_an_upstream_stops_work_for_a_caller_that_left(query: str) -> None:
    # 60 s of work, which must end within 5 s of the caller hanging up: a wide separation.
    # The normal delay watches for the hang-up itself; a fault's answer, in a task beside it.
    settings = UpstreamSettings(
        name="wire", delay_ms=0, max_delay_ms=60_000, hang_ms=60_000, drip_ms=60_000
    )
    with LiveServer(create_app(settings)) as server:
        caller = held_request(server.url, query)
        assert poll(lambda: in_flight(server.url) == 1, within_s=5)
        caller.close()
        assert poll(lambda: in_flight(server.url) == 0, within_s=5)


def test_an_upstream_past_its_bound_answers_503_at_once() -> None:
    settings = UpstreamSettings(name="wire", delay_ms=0, hang_ms=60_000, max_in_flight=2)
    with LiveServer(create_app(settings)) as server:
        callers = [held_request(server.url, "fault=hang") for _ in range(2)]
        try:
            assert poll(lambda: in_flight(server.url) == 2, within_s=5)
            refused = httpx.get(f"{server.url}/news", timeout=5)
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
            assert "2 answers in flight" in refused.json()["detail"]
            assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        finally:
            for caller in callers:
                caller.close()
