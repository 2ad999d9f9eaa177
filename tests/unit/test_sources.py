import pytest
from pydantic import ValidationError

from gateway.config import GatewaySettings
from gateway.sources import Source, UnknownSourcesError, select_sources

CONFIGURED = (
    Source("wire", "http://w"),
    Source("gazette", "http://g"),
    Source("chronicle", "http://c"),
)


def names(sources: list[Source]) -> list[str]:
    return [source.name for source in sources]


def test_no_selection_means_every_source() -> None:
    assert names(select_sources(CONFIGURED, None)) == ["wire", "gazette", "chronicle"]


def test_selection_keeps_request_order_and_drops_repeats() -> None:
    selected = select_sources(CONFIGURED, "chronicle,wire,chronicle")
    assert names(selected) == ["chronicle", "wire"]


@pytest.mark.parametrize(
    "requested", ["nope", "wire,nope", "", ",", "WIRE", " wire", "http://evil.example"]
)
def test_unknown_or_empty_names_are_rejected_with_the_valid_ones(requested: str) -> None:
    with pytest.raises(UnknownSourcesError) as caught:
        select_sources(CONFIGURED, requested)
    assert caught.value.valid == ["wire", "gazette", "chronicle"]
    assert "valid sources: wire, gazette, chronicle" in str(caught.value)


def test_settings_parse_name_equals_url_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_SOURCES", "wire=http://upstream-wire:8000/, gazette=http://g:8000")
    settings = GatewaySettings()
    assert settings.source_list == (
        Source("wire", "http://upstream-wire:8000"),
        Source("gazette", "http://g:8000"),
    )
    assert settings.source_list[0].news_url == "http://upstream-wire:8000/news"


@pytest.mark.parametrize(
    "raw",
    ["", "wire", "wire=not a url", "Wire=http://w", "bad name=http://w", "a;b=http://w"],
)
def test_settings_reject_malformed_sources(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("GATEWAY_SOURCES", raw)
    with pytest.raises(ValidationError):
        GatewaySettings()


def test_settings_read_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_THREADPOOL_TOKENS", "8")
    monkeypatch.setenv("GATEWAY_MAX_CONNECTIONS", "300")
    settings = GatewaySettings()
    assert (settings.threadpool_tokens, settings.max_connections) == (8, 300)


@pytest.mark.parametrize("client", ["httpx-aiohttp", "aiohttp"])
def test_settings_refuse_http2_for_a_client_on_aiohttp(client: str) -> None:
    with pytest.raises(ValidationError, match="has no HTTP/2"):
        GatewaySettings(async_http_client=client, http2=True)


@pytest.mark.parametrize("client", ["httpx", "httpx2"])
def test_settings_take_http2_for_httpx(client: str) -> None:
    assert GatewaySettings(async_http_client=client, http2=True).http2
