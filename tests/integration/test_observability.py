"""Every service's /metrics and logs on the real stack, and the event-loop lag that gives
the blocking mistake away."""

import json
import subprocess

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.stack import Stack, closed_loop, record

pytestmark = pytest.mark.integration

SERVICES = [
    "upstream-wire",
    "upstream-gazette",
    "upstream-chronicle",
    "sync-gateway",
    "async-gateway",
]
# Read inside the container: the upstreams publish no ports.
SCRAPE = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/metrics').read().decode())"


def scrape(stack: Stack, service: str) -> dict[str, float]:
    """Every unlabelled sample, and the labelled ones summed by name."""
    text = subprocess.run(
        ["docker", "exec", stack.container(service), "python", "-c", SCRAPE],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_exposes_prometheus_metrics(stack: Stack, service: str) -> None:
    requests.get(stack.url("async"), timeout=30)  # some traffic everywhere
    requests.get(stack.url("sync"), timeout=30)
    found = scrape(stack, service)
    assert found["http_requests_total"] >= 1
    assert found["http_request_duration_seconds_count"] >= 1
    assert found["event_loop_lag_seconds_count"] >= 1
    assert "http_requests_in_flight" in found
    if service.endswith("gateway"):
        assert found["fanout_source_duration_seconds_count"] >= 3


def mean_lag(before: dict[str, float], after: dict[str, float]) -> float:
    count = after["event_loop_lag_seconds_count"] - before["event_loop_lag_seconds_count"]
    lag = after["event_loop_lag_seconds_sum"] - before["event_loop_lag_seconds_sum"]
    return lag / count


@pytest.mark.timing
def test_event_loop_lag_gives_the_blocking_route_away(stack: Stack) -> None:
    """The same worker under /news, then under /news/blocking: its loop's mean lag."""
    start = scrape(stack, "async-gateway")
    _, awaited = closed_loop(stack.url("async"), 10, total=40, deadline_s=60)
    middle = scrape(stack, "async-gateway")
    # One source (0.3 s a call) keeps the blocking run short: every request still holds
    # the loop for its whole fan-out.
    blocking_url = stack.url("async", "/news/blocking")
    _, blocked = closed_loop(blocking_url, 4, total=12, deadline_s=60, sources="wire")
    end = scrape(stack, "async-gateway")
    assert [s.status for s in awaited + blocked] == [200] * 52

    ratio = mean_lag(middle, end) / mean_lag(start, middle)
    record("event-loop lag: /news/blocking / /news", ratio, "≥ 10")
    assert ratio >= 10


def test_log_lines_are_json(stack: Stack) -> None:
    logs = subprocess.run(
        ["docker", "logs", stack.container("async-gateway")],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = (logs.stdout + logs.stderr).splitlines()
    assert lines, "the gateway logged nothing"
    entries = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message", "request_id"} <= set(e) for e in entries)
    assert any("Booting worker" in e["message"] for e in entries)
    # Its start is clean: no error from gunicorn's arbiter until the app is up (gunicorn 27's
    # control socket, on the read-only root filesystem, logged one at every start).
    messages = [e["message"] for e in entries]
    started = messages.index("Application startup complete.")
    assert [e for e in entries[:started] if e["level"] == "ERROR"] == []


def test_the_request_id_comes_back(stack: Stack) -> None:
    for gateway in ("sync", "async"):
        response = requests.get(
            stack.url(gateway), headers={"X-Request-ID": "it-trace-1"}, timeout=30
        )
        assert response.headers["X-Request-ID"] == "it-trace-1"
