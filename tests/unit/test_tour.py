"""The README's curl tour and the faults of docs/failure-modes.md (bench/experiments/tour.py):
recorded from real gateways, drawn as the console lines the docs show."""

from bench.experiments.tour import (
    FAULTED_SOURCE,
    FAULTS,
    SOURCE_FIELDS,
    record_faults,
    record_tour,
    render_all_failing,
    render_faults,
    render_tour,
)
from gateway import async_app, sync_app
from tests.unit.loopback import FAULT_DEADLINE_MS, LiveServer, Upstreams


def test_the_tour_records_each_gateways_fan_out_trimmed(upstreams: Upstreams) -> None:
    settings = upstreams.settings()
    with (
        LiveServer(sync_app.create_app(settings)) as sync,
        LiveServer(async_app.create_app(settings)) as async_,
    ):
        recorded = record_tour({"sync": sync.url, "async": async_.url}, "test", warm=1)
    assert recorded["meta"]["command"] == "test" and recorded["meta"]["commit"]
    sync_answer, async_answer = recorded["answers"]
    assert (sync_answer["gateway"], async_answer["gateway"]) == ("sync", "async")
    for answer in recorded["answers"]:
        assert all(set(source) == set(SOURCE_FIELDS) for source in answer["sources"])
        assert answer["articles"] > 0
    # The lesson itself: sync calls start one after another, async ones together.
    sync_calls, async_calls = sync_answer["sources"], async_answer["sources"]
    # Each time is rounded to 0.1 ms: three roundings put the sum at most 0.15 ms off.
    for before, after in zip(sync_calls, sync_calls[1:], strict=False):
        assert after["started_ms"] >= before["started_ms"] + before["elapsed_ms"] - 0.15
    ends = [s["started_ms"] + s["elapsed_ms"] for s in async_calls]
    assert max(s["started_ms"] for s in async_calls) < min(ends)  # all in flight at once
    drawn = render_tour(recorded, {"sync": 8001, "async": 8002})
    assert drawn.startswith("```console\n$ curl -s localhost:8001/news")
    assert "$ curl -s localhost:8002/news" in drawn and drawn.endswith("```")
    assert f'"elapsed_ms": {sync_answer["elapsed_ms"]}' in drawn


def test_the_faults_are_recorded_as_each_gateway_answered_them(upstreams: Upstreams) -> None:
    settings = upstreams.settings(deadline_ms=FAULT_DEADLINE_MS)
    with (
        LiveServer(sync_app.create_app(settings)) as sync,
        LiveServer(async_app.create_app(settings)) as async_,
    ):
        recorded = record_faults({"sync": sync.url, "async": async_.url})
    kinds = {}
    for shown in recorded["faults"]:
        (source,) = shown["answer"]["sources"]
        assert (shown["status"], source["name"], source["ok"]) == (200, FAULTED_SOURCE, False)
        assert shown["answer"]["partial"] is True
        kinds[shown["query"].rpartition(":")[2]] = source["error_kind"]
    assert list(kinds) == list(FAULTS)
    assert kinds["hang"] == kinds["slow-body"] == "timeout"
    assert kinds["error"] == "status" and kinds["malformed-json"] == "invalid_body"
    hung = next(s for s in recorded["faults"] if s["query"].endswith(":hang"))
    assert hung["seconds"] >= FAULT_DEADLINE_MS / 1000  # the deadline, as the client saw it
    # Every source failing: all out of time is a 504, some other failure a 502.
    assert [shown["status"] for shown in recorded["all_failing"]] == [504, 502]
    assert all(len(shown["answer"]["sources"]) == 3 for shown in recorded["all_failing"])
    refusals = [
        (shown["status"], shown["answer"]["detail"][0]["loc"]) for shown in recorded["refused"]
    ]
    assert refusals == [(422, ["query", "fault"]), (422, ["query", "deadline_ms"])]

    drawn = render_faults(recorded, {"sync": 8001, "async": 8002})
    assert drawn.count("$ curl -s 'localhost:8002/news?fault=gazette:") == len(FAULTS)
    assert f"HTTP 200 in {hung['seconds']:.3f}s" in drawn
    failing = render_all_failing(recorded, {"sync": 8001, "async": 8002})
    assert "HTTP 504 in" in failing and failing.count("HTTP 422\n") == 2
