"""The overload bound, on both gateways served over loopback sockets: concurrent requests,
real slots, real 503s."""

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from fastapi import FastAPI

from gateway import async_app, sync_app
from gateway.config import GatewaySettings
from tests.unit.loopback import HANG_MS, LiveServer, Upstreams
from tests.waiting import in_flight, poll

GATEWAYS: dict[str, Callable[[GatewaySettings], FastAPI]] = {
    "sync": sync_app.create_app,
    "async": async_app.create_app,
}
# A fan-out that holds its slot for its whole deadline: the one source hangs (5x longer).
HOLD_S = 1.5
assert HANG_MS >= 5 * HOLD_S * 1000
HELD = {"sources": "chronicle", "fault": "chronicle:hang", "deadline_ms": str(int(HOLD_S * 1000))}


@dataclass(frozen=True)
class Answer:
    status: int
    sent: float  # on this process's perf_counter, which the in-process servers share
    answered: float
    retry_after: str | None
    body: dict[str, Any]

    @property
    def seconds(self) -> float:
        return self.answered - self.sent


def get(url: str, params: dict[str, str]) -> Answer:
    sent = time.perf_counter()
    response = requests.get(url, params=params, timeout=30)
    return Answer(
        response.status_code,
        sent,
        time.perf_counter(),
        response.headers.get("Retry-After"),
        response.json(),
    )


def burst(url: str, params: dict[str, str], count: int) -> list[Answer]:
    """`count` requests at once, each from its own thread, released together."""
    ready = threading.Barrier(count)

    def one(_: int) -> Answer:
        ready.wait(timeout=30)
        return get(url, params)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


@pytest.mark.timing
@pytest.mark.parametrize("name", GATEWAYS)
def test_past_the_bound_a_fast_503_with_retry_after(upstreams: Upstreams, name: str) -> None:
    settings = upstreams.settings(max_in_flight=2, queue_timeout_ms=0, retry_after_s=3)
    with LiveServer(GATEWAYS[name](settings)) as gateway, ThreadPoolExecutor(1) as side:
        pending = side.submit(burst, f"{gateway.url}/news", HELD, 6)
        # Full of fan-outs (polled: the two admitted hold their slots), the gateway still
        # says it is alive.
        assert poll(lambda: in_flight(gateway.url) == 2, within_s=30)
        assert requests.get(f"{gateway.url}/healthz", timeout=5).status_code == 200
        answers = pending.result(timeout=30)

    admitted = [a for a in answers if a.status != 503]
    refused = [a for a in answers if a.status == 503]
    assert len(admitted) == 2, answers
    assert {a.status for a in admitted} == {504}  # the hang ran into the deadline
    assert len(refused) == 4
    assert {a.retry_after for a in refused} == {"3"}
    assert all("overloaded: 2 fan-outs in flight" in str(a.body["detail"]) for a in refused)
    # Refused at once: every 503 came back before any admitted fan-out could end.
    assert max(a.seconds for a in refused) < min(a.seconds for a in admitted)


@pytest.mark.timing
@pytest.mark.parametrize("name", GATEWAYS)
def test_a_request_waits_for_a_slot_within_the_queue_timeout(
    upstreams: Upstreams, name: str
) -> None:
    settings = upstreams.settings(max_in_flight=1, queue_timeout_ms=10_000)
    with LiveServer(GATEWAYS[name](settings)) as gateway, ThreadPoolExecutor(1) as side:
        # The one slot is held by a fan-out that ends only at its deadline (its source
        # hangs). Once it holds the slot, three quick fan-outs arrive and must wait for it.
        holder = side.submit(get, f"{gateway.url}/news", HELD)
        assert poll(lambda: in_flight(gateway.url) == 1, within_s=30)
        waiters = burst(f"{gateway.url}/news", {"sources": "wire"}, 3)
        held = holder.result(timeout=30)
    assert held.status == 504 and [a.status for a in waiters] == [200, 200, 200]
    # An ordering on one clock: no waiter's fan-out could start before the holder's
    # deadline had passed, however slow the machine. Without the slot they take 50 ms.
    deadline_passed = held.sent + HOLD_S
    assert all(a.answered - a.body["elapsed_ms"] / 1000 >= deadline_passed for a in waiters)


@pytest.mark.parametrize("name", GATEWAYS)
def test_no_bound_by_default(upstreams: Upstreams, name: str) -> None:
    settings = upstreams.settings()
    assert settings.max_in_flight == 0
    with LiveServer(GATEWAYS[name](settings)) as gateway:
        answers = burst(f"{gateway.url}/news", {"sources": "wire"}, 8)
    assert [a.status for a in answers] == [200] * 8
