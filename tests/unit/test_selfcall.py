"""The post's /kkblogs on each gateway, served for real on loopback (a self-call needs a
socket): the async one answers any count at once, the sync one deadlocks once every
threadpool token waits on the worker itself, and the deadline ends it with a 504."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any

import httpx
import pytest

from gateway import async_app, sync_app
from gateway.config import GatewaySettings
from tests.unit.loopback import LiveServer, Upstreams

TOKENS = 4
# Long against the scheduler's noise; their sum well within the deadline.
SLEEPS_MS = [300, 400]
DEADLINE_MS = 3000
# A request the deadline did not cut would still be waiting at this: a hang.
CLIENT_TIMEOUT_S = 5 * DEADLINE_MS / 1000


@pytest.fixture
def settings(upstreams: Upstreams) -> GatewaySettings:
    return upstreams.settings(threadpool_tokens=TOKENS, deadline_ms=DEADLINE_MS)


APPS = {"sync": sync_app.create_app, "async": async_app.create_app}


@pytest.fixture
def sync_url(settings: GatewaySettings) -> Iterator[str]:
    with LiveServer(APPS["sync"](settings)) as server:
        yield server.url


@pytest.fixture
def async_url(settings: GatewaySettings) -> Iterator[str]:
    with LiveServer(APPS["async"](settings)) as server:
        yield server.url


@pytest.fixture(params=list(APPS))
def either_url(request: pytest.FixtureRequest, settings: GatewaySettings) -> Iterator[str]:
    """Each gateway in turn: what both self-calls share."""
    with LiveServer(APPS[request.param](settings)) as server:
        yield server.url


def at_once(url: str, count: int, **params: Any) -> list[httpx.Response]:
    """`count` requests to /kkblogs sent together, each on its own connection."""
    barrier = Barrier(count)

    def one(_: int) -> httpx.Response:
        barrier.wait(timeout=30)
        return httpx.get(f"{url}/kkblogs", params=params, timeout=CLIENT_TIMEOUT_S)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_sync_self_call_runs_the_calls_one_after_another_on_its_own_worker(
    sync_url: str,
) -> None:
    answer = httpx.get(f"{sync_url}/kkblogs", params={"ms": SLEEPS_MS}, timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    calls = body["calls"]
    assert (body["gateway"], body["route"], body["mode"]) == ("sync", "/sync_func", "sequential")
    assert [call["slept_ms"] for call in calls] == SLEEPS_MS
    assert {call["worker_pid"] for call in calls} == {body["worker_pid"]}
    assert calls[1]["started_at"] >= calls[0]["ended_at"]


@pytest.mark.timing
def test_sync_self_call_answers_below_the_tokens(sync_url: str) -> None:
    # Half the tokens: one for each route, one for the call it waits on.
    answers = at_once(sync_url, TOKENS // 2, ms=SLEEPS_MS)
    assert [a.status_code for a in answers] == [200] * (TOKENS // 2)


@pytest.mark.timing
def test_sync_self_call_deadlocks_at_the_tokens_until_the_deadline(sync_url: str) -> None:
    answers = at_once(sync_url, TOKENS, ms=SLEEPS_MS)
    assert [a.status_code for a in answers] == [504] * TOKENS
    for answer in answers:
        detail = answer.json()["detail"]
        assert "threadpool exhausted" in detail and f"{TOKENS} threadpool tokens" in detail
    # The worker is whole again once the deadline freed the tokens.
    after = httpx.get(f"{sync_url}/kkblogs", params={"ms": SLEEPS_MS}, timeout=10)
    assert after.status_code == 200


@pytest.mark.timing
def test_async_self_call_overlaps_its_calls_past_any_token_count(async_url: str) -> None:
    answers = at_once(async_url, 2 * TOKENS, ms=SLEEPS_MS)
    assert [a.status_code for a in answers] == [200] * (2 * TOKENS)
    for answer in answers:
        body = answer.json()
        assert (body["route"], body["mode"]) == ("/right", "concurrent")
        first, second = body["calls"]
        # gather: each call started before the other ended.
        assert second["started_at"] < first["ended_at"] and first["started_at"] < second["ended_at"]


def test_the_deadline_ends_a_self_call_with_a_504(either_url: str) -> None:
    answer = httpx.get(
        f"{either_url}/kkblogs", params={"ms": [3000], "deadline_ms": 300}, timeout=CLIENT_TIMEOUT_S
    )
    assert answer.status_code == 504
    assert "deadline (300 ms)" in answer.json()["detail"]


def test_the_calls_go_to_the_socket_whatever_the_host_header_says(either_url: str) -> None:
    answer = httpx.get(
        f"{either_url}/kkblogs",
        params={"ms": [0]},
        headers={"Host": "elsewhere.invalid:1"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"ms": -1}, ["query", "ms", 0]),
        ({"ms": 10**9}, ["query", "ms", 0]),
        ({"ms": [1] * 11}, ["query", "ms"]),
        ({"deadline_ms": 0}, ["query", "deadline_ms"]),
        ({"ms": "soon"}, ["query", "ms", 0]),
    ],
)
def test_bad_input_is_a_422_that_names_the_field(
    params: dict[str, Any], field: list[object], either_url: str
) -> None:
    answer = httpx.get(f"{either_url}/kkblogs", params=params, timeout=10)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == field


@pytest.mark.parametrize("create_app", [sync_app.create_app, async_app.create_app])
def test_without_the_levers_there_is_no_self_call(create_app: object, upstreams: Upstreams) -> None:
    settings = upstreams.settings(lab_levers=False)
    with LiveServer(create_app(settings)) as server:  # type: ignore[operator]
        assert httpx.get(f"{server.url}/kkblogs", timeout=10).status_code == 404
