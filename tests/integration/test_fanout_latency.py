"""End-to-end fan-out latency across containers, as ratios measured in the same run."""

import statistics
from collections.abc import Callable

import pytest

from tests.integration.stack import Sample, Stack, burst, fetch, median_latency, record

pytestmark = [pytest.mark.integration, pytest.mark.timing]

Ideal = Callable[[list[float]], float]
IDEALS: dict[str, Ideal] = {"max": max, "sum": sum}

# (gateway, path, query, the ideal its total should match)
FAN_OUTS = [
    ("sync", "/news", {}, "sum"),
    ("sync", "/news", {"mode": "threads"}, "max"),
    ("async", "/news", {}, "max"),
    ("async", "/news", {"mode": "sequential"}, "sum"),
    ("async", "/news/blocking", {}, "sum"),
]


@pytest.mark.parametrize(("gateway", "path", "query", "ideal"), FAN_OUTS)
def test_total_latency_matches_its_ideal(
    stack: Stack, gateway: str, path: str, query: dict[str, str], ideal: str
) -> None:
    url = stack.url(gateway, path)
    fetch(url, **query)  # warm-up: first connections and DNS inside the stack
    samples: list[Sample] = [fetch(url, **query) for _ in range(3)]
    assert all(sample.status == 200 for sample in samples)
    assert all(all(s["ok"] for s in sample.body["sources"]) for sample in samples)

    to_ideal = IDEALS[ideal]
    other = IDEALS["sum" if ideal == "max" else "max"]
    gateway_ratio = statistics.median(
        s.body["elapsed_ms"] / to_ideal(s.source_elapsed_ms) for s in samples
    )
    client_ratio = statistics.median(
        s.latency_s * 1000 / to_ideal(s.source_elapsed_ms) for s in samples
    )
    other_ratio = statistics.median(
        s.latency_s * 1000 / other(s.source_elapsed_ms) for s in samples
    )
    label = f"{gateway} {path} {query.get('mode', 'default')}"
    record(f"{label}: gateway elapsed / {ideal}(sources)", gateway_ratio, "≈ 1")
    record(f"{label}: client latency / {ideal}(sources)", client_ratio, "≈ 1")

    # The gateway's own total is its sources' ideal plus a little bookkeeping.
    assert 0.98 <= gateway_ratio <= 1.10
    # Across the container network, the client sees the same shape.
    assert 0.98 <= client_ratio <= 1.25
    # And clearly not the other shape: max/sum is 0.5 with the default 300/500/800 ms.
    if ideal == "max":
        assert other_ratio < 0.75
    else:
        assert other_ratio > 1.5


def test_blocking_mistake_serialises_one_worker_while_async_overlaps(stack: Stack) -> None:
    clients = 4
    blocking_url, async_url = stack.url("async", "/news/blocking"), stack.url("async")
    fetch(blocking_url)
    single_blocking = median_latency(blocking_url, repeats=2)
    single_async = median_latency(async_url, repeats=2)

    blocking_wall, blocking = burst(blocking_url, clients)
    async_wall, overlapped = burst(async_url, clients)

    assert {s.status for s in blocking + overlapped} == {200}
    # One worker took them all, so the queueing below is that worker's event loop.
    assert len({s.body["worker_pid"] for s in blocking}) == 1
    blocking_ratio = blocking_wall / single_blocking
    async_ratio = async_wall / single_async
    record(f"blocking: {clients} at once / one alone", blocking_ratio, f"≈ {clients}")
    record(f"async /news: {clients} at once / one alone", async_ratio, "≈ 1")
    assert blocking_ratio >= 0.75 * clients
    assert async_ratio <= 1.5

    # The gateway's own timings cannot see the queue: each request reports about one
    # fan-out, while the slowest client waited about `clients` of them.
    reported = max(s.body["elapsed_ms"] for s in blocking) / 1000
    slowest = max(s.latency_s for s in blocking)
    record("blocking: slowest client latency / its reported elapsed", slowest / reported, "≈ K")
    assert slowest / reported >= 0.75 * clients
