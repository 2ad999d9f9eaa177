"""The blog post's example routes, in process: who overlaps whom, where the work runs."""

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from gateway import async_app, sync_app
from gateway.blog import burn, calibrate
from tests.unit.loopback import LiveServer, Upstreams

# Each sleep is long against the scheduler's noise: the tests read orderings, not times.
SLEEP_MS = 400
AT_ONCE = 3


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest, upstreams: Upstreams) -> Iterator[TestClient]:
    create_app = sync_app.create_app if request.param == "sync" else async_app.create_app
    with TestClient(create_app(upstreams.settings(max_hold_ms=5000))) as client:
        yield client


def at_once(client: TestClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """`AT_ONCE` requests sent together; their answers."""
    barrier = Barrier(AT_ONCE)

    def one(_: int) -> dict[str, Any]:
        barrier.wait(timeout=30)
        response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    with ThreadPoolExecutor(AT_ONCE) as pool:
        return list(pool.map(one, range(AT_ONCE)))


def overlapped(answers: list[dict[str, Any]]) -> bool:
    """Every sleep started before any one ended."""
    latest_start: float = max(a["started_at"] for a in answers)
    earliest_end: float = min(a["ended_at"] for a in answers)
    return latest_start < earliest_end


def one_after_another(answers: list[dict[str, Any]]) -> bool:
    """No two sleeps overlapped: each started once the one before it had ended."""
    spans = sorted((a["started_at"], a["ended_at"]) for a in answers)
    return all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))


@pytest.mark.timing
def test_sync_func_sleeps_on_the_threadpool_so_sleeps_overlap(client: TestClient) -> None:
    """The post says /sync_func blocks the worker; its sleeps run side by side."""
    answers = at_once(client, "/sync_func", ms=SLEEP_MS)
    assert {a["route"] for a in answers} == {"sync_func"} and overlapped(answers)


@pytest.mark.timing
def test_wrong_sleeps_on_the_event_loop_so_sleeps_queue(client: TestClient) -> None:
    answers = at_once(client, "/wrong", ms=SLEEP_MS)
    assert {a["route"] for a in answers} == {"wrong"} and one_after_another(answers)


@pytest.mark.timing
def test_right_awaits_so_sleeps_overlap(client: TestClient) -> None:
    answers = at_once(client, "/right", ms=SLEEP_MS)
    assert {a["route"] for a in answers} == {"right"} and overlapped(answers)


@pytest.mark.parametrize("path", ["/fast/def", "/fast/async"])
def test_fast_routes_answer_the_same(client: TestClient, path: str) -> None:
    assert client.get(path).json() == {"ok": True}


@pytest.mark.parametrize(
    ("placement", "elsewhere"),
    [("inline", False), ("def", False), ("thread", False), ("process", True)],
)
def test_cpu_work_runs_where_its_placement_says(
    client: TestClient, placement: str, elsewhere: bool
) -> None:
    rate = client.get("/healthz").json()["cpu_rounds_per_ms"]
    body = client.get(f"/cpu/{placement}", params={"work_ms": 2}).json()
    assert body["placement"] == placement and abs(body["rounds"] - 2 * rate) <= 1
    assert body["worker_pid"] == os.getpid()
    # Only the process pool runs the work outside the worker.
    assert (body["ran_in_pid"] != os.getpid()) is elsewhere


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("/cpu/inline", "work_ms", "0"),
        ("/cpu/process", "work_ms", "5001"),
        ("/cpu/def", "work_ms", "lots"),
        ("/wrong", "ms", "5001"),
        ("/sync_func", "ms", "-1"),
        ("/background", "job", "later"),
        ("/background", "ms", "5001"),
    ],
)
def test_a_bad_amount_is_a_422_naming_it(
    client: TestClient, path: str, field: str, value: str
) -> None:
    params = {"job": "async", field: value} if path == "/background" else {field: value}
    response = client.get(path, params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


def test_calibration_measures_rounds_per_ms_of_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake CPU clock: every sample of 1,000 rounds takes 4 ms, except one that takes 2.
    ticks = iter([0.0, 0.004, 1.0, 1.002, 2.0, 2.004])
    monkeypatch.setattr("time.process_time", lambda: next(ticks))
    # The fastest sample counts: 1,000 rounds in 2 ms.
    assert calibrate(samples=3, rounds=1000) == pytest.approx(500)


def test_burn_reports_the_process_it_ran_in() -> None:
    assert burn(10) == os.getpid()


# A background job's sleep: long against a busy machine's scheduling noise.
JOB_MS = 2000


def queue_jobs(url: str, job: str, count: int) -> None:
    """`count` jobs queued together; each answer comes before its job runs."""
    with ThreadPoolExecutor(count) as pool:
        answers = list(
            pool.map(
                lambda _: httpx.get(f"{url}/background?job={job}&ms={JOB_MS}", timeout=10),
                range(count),
            )
        )
    assert [a.json()["job"] for a in answers] == [job] * count


def seconds_for(url: str) -> float:
    started = time.perf_counter()
    httpx.get(url, timeout=30).raise_for_status()
    return time.perf_counter() - started


@pytest.mark.timing
@pytest.mark.parametrize(("job", "held"), [("def", True), ("async", False)])
def test_a_def_background_job_holds_a_threadpool_token_after_the_answer(
    upstreams: Upstreams, job: str, held: bool
) -> None:
    # Two tokens, both taken by jobs: a def route waits for one to end, an async one not.
    app = sync_app.create_app(upstreams.settings(threadpool_tokens=2, max_hold_ms=5000))
    with LiveServer(app) as server:
        queue_jobs(server.url, job, 2)
        with ThreadPoolExecutor(2) as pool:
            def_route = pool.submit(seconds_for, f"{server.url}/fast/def")
            async_route = pool.submit(seconds_for, f"{server.url}/fast/async")
            waited, free = def_route.result(), async_route.result()
    assert free < JOB_MS / 2000
    assert (waited > JOB_MS / 2000) is held


@pytest.mark.timing
@pytest.mark.parametrize(("job", "stalls"), [("blocking", True), ("async", False)])
def test_a_blocking_call_in_an_async_background_job_stops_the_loop(
    upstreams: Upstreams, job: str, stalls: bool
) -> None:
    app = async_app.create_app(upstreams.settings(max_hold_ms=5000))
    with LiveServer(app) as server:
        queue_jobs(server.url, job, 1)
        took = seconds_for(f"{server.url}/healthz")
    assert (took > JOB_MS / 2000) is stalls
