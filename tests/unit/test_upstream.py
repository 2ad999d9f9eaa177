import time

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from upstream.articles import generate_articles
from upstream.config import UpstreamSettings
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
    assert (settings.name, settings.delay_ms) == ("chronicle", 800)


def test_healthz_answers_at_once(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "source": "wire"}
