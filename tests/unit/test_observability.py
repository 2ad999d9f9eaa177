"""Request ids, JSON log lines and /metrics, on real apps in process."""

import asyncio
import json
import logging
import logging.config
import re
import time
from collections.abc import Callable, Iterator

import pytest
from asgi_correlation_id import correlation_id
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway import async_app, sync_app
from gateway.config import GatewaySettings
from observability.logs import log_config
from observability.metrics import loop_monitor, service_metrics
from tests.unit.loopback import HeaderRecorder, LiveServer, Upstreams
from upstream.config import UpstreamSettings
from upstream.main import create_app as create_upstream

GATEWAYS: dict[str, Callable[[GatewaySettings], FastAPI]] = {
    "sync": sync_app.create_app,
    "async": async_app.create_app,
}


@pytest.fixture(scope="module")
def recorded_upstream() -> Iterator[tuple[str, HeaderRecorder]]:
    recorder = HeaderRecorder(create_upstream(UpstreamSettings(name="wire", delay_ms=0)))
    with LiveServer(recorder) as server:
        yield server.url, recorder


@pytest.mark.parametrize("gateway", GATEWAYS)
@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("client-chose-this.42", True),
        ("has spaces", False),
        ("x" * 129, False),  # past 128 characters
    ],
)
def test_the_request_id_is_returned_and_passed_on_and_replaced_when_unsafe(
    recorded_upstream: tuple[str, HeaderRecorder], gateway: str, sent: str, kept: bool
) -> None:
    url, recorder = recorded_upstream
    app = GATEWAYS[gateway](GatewaySettings.model_validate({"sources": {"wire": url}}))
    with TestClient(app) as client:
        response = client.get("/news", headers={"X-Request-ID": sent})
    assert response.status_code == 200
    returned = response.headers["X-Request-ID"]
    if kept:
        assert returned == sent
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", returned), returned
    # The upstream got the same id: their logs join the gateway's.
    assert recorder.seen[-1]["x-request-id"] == returned


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """dictConfig rewires global loggers: put back the ones it touches."""
    names = ("", "gunicorn.error", "gunicorn.access")
    saved = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level) for name in names
    }
    yield
    for name, (handlers, level) in saved.items():
        logging.getLogger(name).handlers = handlers
        logging.getLogger(name).setLevel(level)


def access_line(access_log: bool, capsys: pytest.CaptureFixture[str]) -> str:
    """What the access handlers print for one uvicorn access record, as the worker logs it."""
    logging.config.dictConfig(log_config(access_log))
    record = logging.makeLogRecord(
        {
            "name": "uvicorn.access",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": '%s - "%s %s HTTP/%s" %d',
            "args": ("10.0.0.7:5123", "GET", "/news?sources=wire", "1.1", 200),
        }
    )
    # uvicorn's worker gives its access logger gunicorn's access handlers.
    token = correlation_id.set("req-7")
    try:
        for handler in logging.getLogger("gunicorn.access").handlers:
            handler.handle(record)
    finally:
        correlation_id.reset(token)
    return capsys.readouterr().out


@pytest.mark.usefixtures("logging_restored")
def test_access_log_lines_are_json_with_the_request_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (line,) = access_line(True, capsys).splitlines()
    entry = json.loads(line)
    assert entry["request_id"] == "req-7"
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/news?sources=wire", 200)
    assert entry["client"] == "10.0.0.7:5123" and entry["level"] == "INFO"
    assert entry["message"] == '10.0.0.7:5123 - "GET /news?sources=wire HTTP/1.1" 200'


@pytest.mark.usefixtures("logging_restored")
def test_no_access_lines_when_the_access_log_is_off(capsys: pytest.CaptureFixture[str]) -> None:
    assert access_line(False, capsys) == ""


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus exposition, parsed by the library's own parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found[name, frozenset(labels.items())]


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_metrics_count_routes_statuses_and_each_sources_failures(
    upstreams: Upstreams, gateway: str
) -> None:
    app = GATEWAYS[gateway](upstreams.settings(threadpool_tokens=7))
    with TestClient(app) as client:
        for _ in range(3):
            assert client.get("/news").status_code == 200
        assert client.get("/news", params={"fault": "wire:error"}).status_code == 200
        assert client.get("/news", params={"sources": "nope"}).status_code == 422
        # The loop monitor wakes every 0.1 s: wait for its first probe, bounded.
        deadline = time.monotonic() + 10
        while True:
            response = client.get("/metrics")
            assert response.status_code == 200
            found = samples(response.text)
            if value(found, "event_loop_lag_seconds_count") >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    news = {"handler": "/news", "method": "GET"}
    assert value(found, "http_requests_total", **news, status="200") == 4
    assert value(found, "http_requests_total", **news, status="422") == 1
    assert value(found, "http_request_duration_seconds_count", **news, status="200") == 4
    # The injected error is wire's only failure, and of the status kind.
    assert value(found, "fanout_source_errors_total", source="wire", kind="status") == 1
    assert ("fanout_source_errors_total", frozenset({("source", "gazette")})) not in found
    assert value(found, "fanout_source_duration_seconds_count", source="wire", outcome="ok") == 3
    ok = value(found, "fanout_source_duration_seconds_count", source="gazette", outcome="ok")
    assert ok == 4
    assert value(found, "http_requests_in_flight") == 0
    assert value(found, "event_loop_lag_seconds_count") >= 1
    if gateway == "sync":
        assert value(found, "threadpool_tokens") == 7


@pytest.mark.timing
def test_the_loop_monitor_sees_a_blocked_loop() -> None:
    service = service_metrics()

    async def block_then_idle() -> None:
        async with loop_monitor(service, interval_s=0.02):
            await asyncio.sleep(0.1)
            time.sleep(0.3)  # what /news/blocking does to the loop
            await asyncio.sleep(0.1)

    asyncio.run(block_then_idle())
    found = samples(generate_latest(service.registry).decode())
    # One wake-up came about 0.3 s late; the others on time.
    assert value(found, "event_loop_lag_seconds_sum") >= 0.25
    assert value(found, "event_loop_lag_seconds_bucket", le="0.25") >= 1
