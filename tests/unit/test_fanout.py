import json
import os
import time
from datetime import UTC, datetime, timedelta

from gateway.fanout import FanOutClock, server_timing
from gateway.sources import Source

WIRE = Source("wire", "http://w")
GAZETTE = Source("gazette", "http://g")


def payload(source: str, minutes_ago: list[int]) -> bytes:
    base = datetime(2025, 5, 15, tzinfo=UTC)
    articles = [
        {
            "id": f"{source}-{i}",
            "title": "t",
            "summary": "s",
            "source": source,
            "published_at": (base - timedelta(minutes=m)).isoformat(),
        }
        for i, m in enumerate(minutes_ago)
    ]
    return json.dumps({"source": source, "delay_ms": 0, "articles": articles}).encode()


def test_offsets_are_measured_from_the_fan_out_start() -> None:
    clock = FanOutClock(start=time.perf_counter() - 0.050)
    outcome = clock.answered(WIRE, time.perf_counter() - 0.020, 200, payload("wire", [1]))
    assert 29 <= outcome.result.started_ms <= 31 + 5
    assert 20 <= outcome.result.elapsed_ms <= 20 + 5
    assert outcome.result.ok and outcome.result.articles == 1 and outcome.result.error is None


def test_articles_merge_newest_first_across_sources() -> None:
    clock = FanOutClock()
    wire = clock.answered(WIRE, clock.start, 200, payload("wire", [10, 30]))
    gazette = clock.answered(GAZETTE, clock.start, 200, payload("gazette", [5, 20]))
    news = clock.assemble("async", "concurrent", [wire, gazette])
    assert [a.id for a in news.articles] == ["gazette-0", "wire-0", "gazette-1", "wire-1"]
    assert news.worker_pid == os.getpid()
    assert [s.name for s in news.sources] == ["wire", "gazette"]


def test_an_http_error_is_a_failed_source_with_its_status() -> None:
    clock = FanOutClock()
    outcome = clock.answered(WIRE, clock.start, 503, b"busy")
    assert not outcome.result.ok
    assert outcome.result.status == 503
    assert outcome.result.error == "upstream answered HTTP 503"
    assert outcome.articles == []


def test_an_unreadable_payload_is_a_failed_source() -> None:
    clock = FanOutClock()
    outcome = clock.answered(WIRE, clock.start, 200, b'{"articles": "nope"}')
    assert not outcome.result.ok
    assert outcome.result.error is not None and outcome.result.error.startswith("invalid payload")


def test_server_timing_lists_every_source_then_the_fan_out() -> None:
    clock = FanOutClock()
    news = clock.assemble(
        "sync",
        "sequential",
        [
            clock.answered(WIRE, clock.start, 200, payload("wire", [1])),
            clock.failed(GAZETTE, clock.start, "timeout: ReadTimeout"),
        ],
    )
    header = server_timing(news)
    entries = [entry.split(";") for entry in header.split(", ")]
    assert [entry[0] for entry in entries] == ["wire", "gazette", "fanout"]
    assert entries[0][2] == 'desc="ok"' and entries[1][2] == 'desc="failed"'
    assert entries[2][1] == f"dur={news.elapsed_ms}"
