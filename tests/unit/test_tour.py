"""The README's curl tour (bench/tour.py): recorded from real gateways, drawn as the
console lines the README shows."""

from bench.tour import SOURCE_FIELDS, record_tour, render_tour
from gateway import async_app, sync_app
from tests.unit.loopback import LiveServer, Upstreams


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
    for before, after in zip(sync_calls, sync_calls[1:], strict=False):
        assert after["started_ms"] >= before["started_ms"] + before["elapsed_ms"]
    ends = [s["started_ms"] + s["elapsed_ms"] for s in async_calls]
    assert max(s["started_ms"] for s in async_calls) < min(ends)  # all in flight at once
    drawn = render_tour(recorded, {"sync": 8001, "async": 8002})
    assert drawn.startswith("```console\n$ curl -s localhost:8001/news")
    assert "$ curl -s localhost:8002/news" in drawn and drawn.endswith("```")
    assert f'"elapsed_ms": {sync_answer["elapsed_ms"]}' in drawn
