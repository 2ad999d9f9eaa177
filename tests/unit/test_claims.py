"""bench claims' arithmetic and report, without a stack: what a point is worth, what the
table says."""

import asyncio
import json
import time
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench.experiments.claims.http2 import http2_rows
from bench.experiments.claims.lab import wait_until_settled
from bench.experiments.claims.model import Claim, Claims, Point
from bench.experiments.claims.report import render, write_claims
from bench.harness.load import LoadResult, LoadSpec
from bench.harness.probe import WindowCost
from tests.unit.loopback import LiveServer


def test_a_point_prices_each_answer_net_of_the_healthchecks() -> None:
    result = LoadResult(LoadSpec(url="http://127.0.0.1:9/news"), window_s=4.0, ok=40, partial=4)
    result.errors["status 504"] = 10
    # 130 connections in 4 s, of which 1 a second would have come with no load at all.
    cost = WindowCost(0.25, 80.0, 120.0, 0.2, 0.1, upstream_connections=130)
    point = Point.of(result, cost, idle_opens_per_s=1.0)
    # 40 good answers in 4 s; 50 answers in all shared the CPU and the connections.
    assert point.throughput == 10.0 and point.cpu_ms == 5.0
    assert point.connections == pytest.approx(126 / 50, abs=0.001)
    assert point.failed_share == 0.2 and point.partial_share == 0.1
    # Without the probe, nothing is made up.
    blind = Point.of(result, None, idle_opens_per_s=1.0)
    assert blind.cpu_ms is None and blind.connections is None


def claims() -> Claims:
    meta = {"command": "python -m bench claims", "started_at": "now", "commit": "abc123"}
    measured = Claims({**meta, "machine": "here"}, "quick", {"wire": 300.0})
    measured.rows += [
        Claim(
            "wrong",
            "/wrong blocks",
            "Mistake",
            "async /wrong",
            "K / 1",
            79.1,
            80.0,
            "holds",
            "80 at once: 79.1x",
            "python -m bench claims",
        ),
        Claim(
            "http2",
            "HTTP/2",
            "httpx",
            "async",
            "conns",
            None,
            None,
            "not measured",
            "no h2c upstream",
            "-",
        ),
    ]
    return measured


def test_the_report_has_a_row_and_a_reason_per_claim() -> None:
    text = render(claims())
    assert "| /wrong blocks | Mistake | async /wrong | K / 1 | 79.10 / 80.00 | **holds** |" in text
    assert "| - / - | **not measured** |" in text
    assert "- **wrong** (holds): 80 at once: 79.1x." in text
    assert "commit abc123" in text


def test_the_report_and_its_figures_are_written_side_by_side(tmp_path: Path) -> None:
    markdown, data = write_claims(claims(), tmp_path / "results")
    assert markdown.read_text() == render(claims())
    rows = json.loads(data.read_text())["rows"]
    assert [row["key"] for row in rows] == ["wrong", "http2"]


def test_a_window_with_no_answer_prices_nothing() -> None:
    """Its CPU went to something else (a backlog): dividing it by one made 7,678 ms."""
    result = LoadResult(LoadSpec(url="http://127.0.0.1:9/fast/def"), window_s=4.0)
    cost = WindowCost(7.68, 80.0, 120.0, 0.2, 0.1, upstream_connections=12)
    empty = Point.of(result, cost, idle_opens_per_s=0.0)
    assert empty.cpu_ms is None and empty.connections is None and empty.throughput == 0


def test_a_gateway_is_settled_once_its_healthz_answers_at_once() -> None:
    calls: list[float] = []

    async def healthz(request: Request) -> JSONResponse:
        calls.append(time.perf_counter())
        if len(calls) <= 3:  # a backlog ahead of it: each answer 0.2 s late
            await asyncio.sleep(0.2)
        return JSONResponse({"status": "ok"})

    with LiveServer(Starlette(routes=[Route("/healthz", healthz)])) as server:
        waited = wait_until_settled(server.url, within_s=60)
    assert len(calls) >= 4 and waited >= 0.6


def _point(cpu_ms: float, throughput: float, p99_ms: float, connections: int) -> Point:
    return Point(throughput, cpu_ms, 0.0, 0.0, 0.0, p99_ms / 2, connections, p99_ms)


@pytest.mark.parametrize(
    ("reference", "verdict"),
    [
        # HTTP/1.1 on a pool that scales still beats httpx over HTTP/2: a limit.
        (_point(2.6, 211.0, 1581, 200), "holds with a limit"),
        # It does not: HTTP/2 is simply better.
        (_point(9.0, 60.0, 4000, 200), "holds"),
    ],
)
def test_http2_is_better_than_httpx_over_http11_with_a_limit_where_a_pool_scales(
    reference: Point, verdict: str
) -> None:
    points = {
        "HTTP/1.1": _point(98.8, 9.4, 10944, 86),
        "HTTP/2": _point(6.2, 74.3, 3146, 2),
        "HTTP/1.1, httpx-aiohttp": reference,
    }
    connections, performance = http2_rows(points, 200)
    assert (connections.measured, connections.ideal, connections.verdict) == (2.0, 1.0, "holds")
    assert (performance.measured, performance.verdict) == (0.06, verdict)


def test_http2_that_costs_more_than_http11_does_not_hold() -> None:
    h1 = _point(5.0, 200.0, 1500, 200)
    points = {"HTTP/1.1": h1, "HTTP/2": _point(6.0, 150.0, 2000, 2), "HTTP/1.1, httpx-aiohttp": h1}
    assert http2_rows(points, 200)[1].verdict == "does not hold"
