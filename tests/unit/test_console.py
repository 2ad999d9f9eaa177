"""The console's API (console/main.py, console/race.py) against real gateways and upstreams
on loopback: a race streams every answer, then its numbers; bounds, 409 and 422."""

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from console.config import ConsoleSettings
from console.main import create_app
from gateway import async_app, sync_app
from tests.unit.loopback import LiveServer, Upstreams


def events_of(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """(event, data) from a text/event-stream, one block at a time."""
    event, data = "message", []
    for line in lines:
        if line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())
        elif not line and data:
            yield event, json.loads("\n".join(data))
            event, data = "message", []


@pytest.fixture(scope="module")
def console(upstreams: Upstreams) -> Iterator[TestClient]:
    with (
        LiveServer(sync_app.create_app(upstreams.settings())) as sync_gateway,
        LiveServer(async_app.create_app(upstreams.settings())) as async_gateway,
    ):
        settings = ConsoleSettings(
            sync_url=sync_gateway.url,
            async_url=async_gateway.url,
            max_requests=20,
            gauge_interval_s=0.05,
        )
        with TestClient(create_app(settings)) as client:
            yield client


def race(client: TestClient, **params: str) -> list[tuple[str, Any]]:
    with client.stream("GET", "/api/race", params=params) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(events_of(response.iter_lines()))


def test_a_race_streams_every_answer_then_its_numbers(console: TestClient) -> None:
    events = race(console, requests="4")
    kinds = [event for event, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "summary"
    start, answers = events[0][1], [data for event, data in events if event == "answer"]
    assert sorted((a["side"], a["index"]) for a in answers) == sorted(
        (side, i) for side in ("sync", "async") for i in range(4)
    )
    assert all(a["status"] == 200 and len(a["sources"]) == 3 for a in answers)
    assert all(a["sent_ms"] <= a["received_ms"] for a in answers)
    # The ideal lines are core/theory.py's: 4 requests fit the threadpool and the pool,
    # so each side's last answer waits one fan-out: sum(d) for sync, max(d) for async.
    delays = start["delays_ms"].values()
    assert start["ideal_ms"]["sync"] == pytest.approx(sum(delays), abs=0.1)
    assert start["ideal_ms"]["async"] == pytest.approx(max(delays), abs=0.1)
    assert "gauges" in kinds
    summary = {side["side"]: side for side in events[-1][1]["sides"]}
    assert summary["sync"]["answered"] == summary["async"]["answered"] == 4


def test_each_side_takes_its_own_route(console: TestClient) -> None:
    events = race(console, requests="2", sync_route="threads", async_route="blocking")
    start = events[0][1]
    assert start["paths"] == {"sync": "/news", "async": "/news/blocking"}
    assert start["routes"] == {"sync": "threads", "async": "blocking"}
    # One event loop serves the blocking route: 2 requests wait 2 fan-outs of sum(d).
    assert start["ideal_binding"]["async"] == "event loop"
    assert start["ideal_ms"]["async"] == pytest.approx(
        2 * sum(start["delays_ms"].values()), abs=0.2
    )


def test_a_fault_shows_as_a_failed_call_and_a_partial_answer(console: TestClient) -> None:
    answers = [d for e, d in race(console, requests="2", fault="gazette:error") if e == "answer"]
    for answer in answers:
        gazette = next(s for s in answer["sources"] if s["name"] == "gazette")
        assert answer["partial"] and not gazette["ok"] and gazette["error_kind"] == "status"


def test_a_race_over_chosen_sources_calibrates_and_draws_only_them(console: TestClient) -> None:
    events = race(console, requests="2", sources="wire,chronicle")
    start = events[0][1]
    assert list(start["delays_ms"]) == ["wire", "chronicle"]
    answers = [data for event, data in events if event == "answer"]
    assert all([s["name"] for s in a["sources"]] == ["wire", "chronicle"] for a in answers)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"requests": "0"}, "requests"),
        ({"requests": "21"}, "requests"),  # max_requests
        ({"sync_route": "blocking"}, "sync_route"),
        ({"async_route": "wrong"}, "async_route"),
        ({"fault": "reuters:hang"}, "fault"),
        ({"fault": "wire:explode"}, "fault"),
        ({"sources": "wire,ledger"}, "sources"),
        ({"deadline_ms": "0"}, "deadline_ms"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    console: TestClient, params: dict[str, str], name: str
) -> None:
    response = console.get("/api/race", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", name]


def test_one_race_at_a_time(console: TestClient) -> None:
    # The first race holds its slot while its fan-outs wait out a 1 s deadline on a hang.
    first_started = threading.Event()

    def first() -> None:
        params = {"requests": "1", "fault": "chronicle:hang", "deadline_ms": "1000"}
        with console.stream("GET", "/api/race", params=params) as response:
            for line in response.iter_lines():
                if line.startswith("event: start"):
                    first_started.set()

    runner = threading.Thread(target=first)
    runner.start()
    try:
        assert first_started.wait(10)
        second = console.get("/api/race", params={"requests": "1"})
        assert second.status_code == 409
        assert "one at a time" in second.json()["detail"]
    finally:
        runner.join(30)
    assert console.get("/api/race", params={"requests": "1"}).status_code == 200


def test_a_race_can_aim_only_at_the_configured_gateways(console: TestClient) -> None:
    operation = console.get("/openapi.json").json()["paths"]["/api/race"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert names == {"requests", "sync_route", "async_route", "fault", "deadline_ms", "sources"}


def test_the_page_and_its_script_are_served(console: TestClient) -> None:
    page = console.get("/")
    assert page.status_code == 200 and 'src="/static/console.js"' in page.text
    assert console.get("/static/console.js").status_code == 200


def test_with_the_levers_off_there_is_no_race() -> None:
    with TestClient(create_app(ConsoleSettings(lab_levers=False))) as client:
        assert client.get("/api/race").status_code == 404
        assert client.get("/").status_code == 200
