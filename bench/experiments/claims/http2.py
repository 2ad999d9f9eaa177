"""The post's "httpx supports HTTP/2", measured: the async gateway on httpx, against
upstreams that speak both (granian over TLS, UPSTREAM_HTTP2=true), with http2=False and
then True, at the claims' highest concurrency, in the same run. aiohttp, under the default
client, has no HTTP/2: the gateway refuses ASYNC_HTTP2 with it."""

import math
from dataclasses import asdict

from bench.experiments.claims.fan_out import priced
from bench.experiments.claims.lab import Lab
from bench.experiments.claims.model import Claim, Claims, Point
from gateway.config import NO_HTTP2

# The HTTP/2 client: the post's, on httpx's own pool (httpcore speaks HTTP/2).
CLIENT = "httpx"
# granian's SETTINGS_MAX_CONCURRENT_STREAMS: calls one HTTP/2 connection carries at once.
STREAMS_PER_CONNECTION = 200
# Each run: its name, the async client, and whether it asks for HTTP/2. The last is the
# default client over HTTP/1.1, to the same upstreams: httpx's own HTTP/1.1 pool grows
# dearer the more calls are in flight (encode/httpcore#1035), and this one does not.
REFERENCE = "HTTP/1.1, httpx-aiohttp"
RUNS = (
    ("HTTP/1.1", CLIENT, False),
    ("HTTP/2", CLIENT, True),
    (REFERENCE, "httpx-aiohttp", False),
)


def http2(lab: Lab, claims: Claims) -> None:
    concurrency = max(lab.preset.client_concurrency)
    health = lab.stack.health("async")
    client, deadline = health.http_client, str(health.max_deadline_ms)
    points: dict[str, Point] = {}
    lab.restart_stack(
        UPSTREAM_TLS="true", UPSTREAM_HTTP2="true", ASYNC_HTTP_CLIENT=CLIENT, ASYNC_HTTP2="false"
    )
    try:
        lab.measure_idle_opens()
        for name, run_client, run_http2 in RUNS:
            if name != RUNS[0][0]:
                lab.restart(
                    "async", ASYNC_HTTP_CLIENT=run_client, ASYNC_HTTP2=str(run_http2).lower()
                )
            running = lab.stack.health("async")
            if (running.http_client, running.http2, running.upstream_tls) != (
                run_client,
                run_http2,
                True,
            ):
                raise RuntimeError(f"the async gateway did not restart for {name}: {running}")
            lab.on_step(f"async /news C={concurrency} over {name}")
            _, points[name] = lab.load("async", "/news", concurrency, deadline_ms=deadline)
    finally:
        lab.restart_stack(
            UPSTREAM_TLS="false",
            UPSTREAM_HTTP2="false",
            ASYNC_HTTP_CLIENT=client,
            ASYNC_HTTP2="false",
        )
        lab.measure_idle_opens()
    claims.figures["http2"] = {
        "client": CLIENT,
        "concurrency": concurrency,
        "points": {protocol: asdict(point) for protocol, point in points.items()},
    }
    claims.rows += http2_rows(points, concurrency)


def _describe(name: str, point: Point) -> str:
    cpu = "unpriced" if point.cpu_ms is None else f"{point.cpu_ms} ms of CPU"
    return (
        f"{name}: {point.open_connections} connections per upstream at most,"
        f" {point.throughput:.1f} fan-outs/s, {cpu} each, p99 {point.p99_ms:.0f} ms,"
        f" {point.failed_share:.0%} failed"
    )


def beats(candidate: Point, other: Point) -> bool:
    """Less CPU per fan-out, no fewer fan-outs, no slower tail: 5% either way."""
    return (
        candidate.cpu_ms is not None
        and other.cpu_ms is not None
        and candidate.cpu_ms < 0.95 * other.cpu_ms
        and candidate.throughput >= 0.95 * other.throughput
        and (other.p99_ms or 0) * 1.05 >= (candidate.p99_ms or 0)
    )


def http2_rows(points: dict[str, Point], concurrency: int) -> list[Claim]:
    h1, h2 = points["HTTP/1.1"], points["HTTP/2"]
    text = "; ".join(_describe(name, point) for name, point in points.items())
    cannot = f" {' and '.join(sorted(NO_HTTP2))} cannot: aiohttp has no HTTP/2"
    ideal_connections = math.ceil(concurrency / STREAMS_PER_CONNECTION)
    multiplexed = (
        h1.open_connections is not None
        and h2.open_connections is not None
        and h2.open_connections <= 2 * ideal_connections < h1.open_connections
    )
    cpu_ratio = None
    if h1.cpu_ms and h2.cpu_ms:
        cpu_ratio = round(h2.cpu_ms / h1.cpu_ms, 2)
    # Better performance: cheaper per fan-out, and no fewer fan-outs nor a slower tail.
    reference = points.get(REFERENCE)
    better = cpu_ratio is not None and beats(h2, h1)
    # Against HTTP/1.1 on a pool that scales, too: else it holds only against httpx's own.
    verdict = priced(cpu_ratio, better)
    if verdict == "holds" and reference is not None and not beats(h2, reference):
        verdict = "holds with a limit"
    where = (
        f"async gateway, ASYNC_HTTP_CLIENT={CLIENT} with http2=True against False, upstreams"
        " under granian over TLS (UPSTREAM_HTTP2=true)"
    )
    return [
        Claim(
            "http2",
            "httpx supports HTTP/2",
            "Modern HTTP Requests with httpx",
            where,
            f"connections per source at C={concurrency} over HTTP/2 (ideal: ceil(C /"
            f" {STREAMS_PER_CONNECTION} streams))",
            None if h2.open_connections is None else float(h2.open_connections),
            float(ideal_connections),
            priced(h2.open_connections, multiplexed),
            f"{text}. One HTTP/2 connection carries up to {STREAMS_PER_CONNECTION} calls at"
            f" once, where HTTP/1.1 needs a connection per call in flight.{cannot}",
            "python -m bench claims",
        ),
        Claim(
            "http2_performance",
            "httpx: built-in HTTP/2 ... better performance",
            "Why Use httpx?",
            where,
            f"CPU per fan-out, HTTP/2 / HTTP/1.1, C={concurrency}",
            cpu_ratio,
            1.0,
            verdict,
            f"{text}. Better means less CPU per fan-out, no fewer fan-outs and no slower p99"
            " (5% either way). Against httpx over HTTP/1.1, whose pool costs more the more"
            " calls are in flight (encode/httpcore#1035), HTTP/2 keeps a source to a connection"
            " or two. It holds with a limit when httpx-aiohttp, HTTP/1.1 on a pool that"
            f" scales, still does better than httpx over HTTP/2.{cannot}",
            "python -m bench claims",
        ),
    ]
