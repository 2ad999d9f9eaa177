"""One fan-out's bookkeeping: offsets, verdicts, the merge, the status, Server-Timing."""

import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from gateway.fanout import FanOut, server_timing, status_of
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
    return json.dumps(
        {"source": source, "instance": f"{source}-1", "delay_ms": 0, "articles": articles}
    ).encode()


@pytest.mark.timing
def test_offsets_are_measured_from_the_fan_out_start() -> None:
    # Fixed instants for the starts; the end is read inside answered(), between two readings
    # of the same clock here, so the test brackets it instead of allowing a slack.
    now = time.perf_counter()
    clock = FanOut(2.5, start=now - 0.050)
    called = time.perf_counter()
    outcome = clock.answered(WIRE, now - 0.020, 200, payload("wire", [1]), 10)
    returned = time.perf_counter()
    assert outcome.result.started_ms == 30.0
    since_started = [round((instant - (now - 0.020)) * 1000, 1) for instant in (called, returned)]
    assert since_started[0] <= outcome.result.elapsed_ms <= since_started[1]
    assert outcome.result.ok and outcome.result.articles == 1 and outcome.result.error is None


def test_articles_merge_newest_first_across_sources() -> None:
    clock = FanOut(2.5)
    wire = clock.answered(WIRE, clock.start, 200, payload("wire", [10, 30]), 10)
    gazette = clock.answered(GAZETTE, clock.start, 200, payload("gazette", [5, 20]), 10)
    news = clock.assemble("async", "concurrent", [wire, gazette])
    assert [a.id for a in news.articles] == ["gazette-0", "wire-0", "gazette-1", "wire-1"]
    assert news.worker_pid == os.getpid()
    assert [s.name for s in news.sources] == ["wire", "gazette"]


def test_each_answer_names_the_node_of_the_gateway_and_of_each_source() -> None:
    clock = FanOut(2.5, node="node-1")
    body = json.loads(payload("wire", [1]))
    wire = clock.answered(
        WIRE, clock.start, 200, json.dumps({**body, "node": "node-2"}).encode(), 10
    )
    # Off a swarm a source names no node: null, not a guess.
    gazette = clock.answered(GAZETTE, clock.start, 200, payload("gazette", [1]), 10)
    news = clock.assemble("async", "concurrent", [wire, gazette])
    assert news.node == "node-1"
    assert [(s.instance, s.node) for s in news.sources] == [
        ("wire-1", "node-2"),
        ("gazette-1", None),
    ]


def test_an_http_error_is_a_failed_source_with_its_status() -> None:
    clock = FanOut(2.5)
    outcome = clock.answered(WIRE, clock.start, 503, b"busy", 10)
    assert not outcome.result.ok
    assert outcome.result.status == 503 and outcome.result.error_kind == "status"
    assert outcome.result.error == "upstream answered HTTP 503"
    assert outcome.articles == []


def test_more_articles_than_asked_for_is_too_large() -> None:
    clock = FanOut(2.5)
    outcome = clock.answered(WIRE, clock.start, 200, payload("wire", [1, 2, 3]), 2)
    assert not outcome.result.ok and outcome.articles == []
    assert outcome.result.error_kind == "too_large"
    assert outcome.result.error == "3 articles, when 2 were asked for"


def test_an_unreadable_payload_is_a_failed_source() -> None:
    clock = FanOut(2.5)
    outcome = clock.answered(WIRE, clock.start, 200, b'{"articles": "nope"}', 10)
    assert not outcome.result.ok
    assert outcome.result.error_kind == "invalid_body"
    assert outcome.result.error is not None and outcome.result.error.startswith("invalid payload")


def test_a_time_without_its_offset_fails_its_source_not_the_merge() -> None:
    # A naive time cannot be ordered against an aware one: merged, it raised a TypeError.
    clock = FanOut(2.5)
    naive = payload("gazette", [5]).replace(b"+00:00", b"")
    gazette = clock.answered(GAZETTE, clock.start, 200, naive, 10)
    assert gazette.result.error_kind == "invalid_body" and gazette.articles == []
    wire = clock.answered(WIRE, clock.start, 200, payload("wire", [10, 30]), 10)
    news = clock.assemble("async", "concurrent", [wire, gazette])
    assert [a.id for a in news.articles] == ["wire-0", "wire-1"] and news.partial


def test_articles_merge_by_instant_whatever_offset_each_source_writes() -> None:
    clock = FanOut(2.5)
    late = payload("wire", [10]).replace(b"14T23:50:00+00:00", b"15T00:50:00+01:00")
    assert late != payload("wire", [10])
    wire = clock.answered(WIRE, clock.start, 200, late, 10)
    gazette = clock.answered(GAZETTE, clock.start, 200, payload("gazette", [5, 20]), 10)
    news = clock.assemble("async", "concurrent", [wire, gazette])
    assert [a.id for a in news.articles] == ["gazette-0", "wire-0", "gazette-1"]


def test_server_timing_lists_every_source_then_the_fan_out_and_its_wait() -> None:
    clock = FanOut(2.5, queued_s=0.0421)
    news = clock.assemble(
        "sync",
        "sequential",
        [
            clock.answered(WIRE, clock.start, 200, payload("wire", [1]), 10),
            clock.failed(GAZETTE, clock.start, "timeout", "timeout: ReadTimeout"),
        ],
    )
    header = server_timing(news)
    entries = [entry.split(";") for entry in header.split(", ")]
    assert [entry[0] for entry in entries] == ["wire", "gazette", "fanout", "queue"]
    assert entries[0][2] == 'desc="ok"' and entries[1][2] == 'desc="failed"'
    assert entries[2][1] == f"dur={news.elapsed_ms}"
    assert news.queued_ms == 42.1 and entries[3][1] == "dur=42.1"


@pytest.mark.timing
def test_remaining_counts_down_to_the_deadline() -> None:
    start = time.perf_counter() - 0.2
    fan_out = FanOut(0.5, start=start)
    before = time.perf_counter()
    remaining = fan_out.remaining()
    after = time.perf_counter()
    assert start + 0.5 - after <= remaining <= start + 0.5 - before
    assert FanOut(0.1, start=time.perf_counter() - 0.2).remaining() < 0


def test_a_source_cut_by_the_deadline_says_so() -> None:
    fan_out = FanOut(0.25)
    outcome = fan_out.timed_out(WIRE, fan_out.start)
    assert outcome.result.error_kind == "timeout"
    assert outcome.result.error == "timeout: the fan-out's 250 ms deadline passed"


def test_partial_and_status_follow_what_the_sources_did() -> None:
    fan_out = FanOut(2.5)
    good = fan_out.answered(WIRE, fan_out.start, 200, payload("wire", [1]), 10)
    late = fan_out.timed_out(GAZETTE, fan_out.start)
    broken = fan_out.failed(GAZETTE, fan_out.start, "connect", "connection error: X")
    cases = [
        ([good, late], True, 200),
        ([good], False, 200),
        ([late, late], False, 504),
        ([late, broken], False, 502),
    ]
    for outcomes, partial, status in cases:
        news = fan_out.assemble("async", "concurrent", outcomes)
        assert (news.partial, status_of(news)) == (partial, status)
