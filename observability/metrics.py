"""Prometheus metrics for every service, right under gunicorn's worker processes.

Each worker is its own process. With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn.conf.py
sets it before the workers start), prometheus-client keeps every value in a file there, and
``/metrics`` on any worker adds up all of them. Without it (one process, as in the unit
tests) the app's own registry answers.

Every service exposes:
- ``http_requests_total`` and ``http_request_duration_seconds``, per route and status;
- ``http_requests_in_flight``;
- ``event_loop_lag_seconds``: how late the worker's event loop wakes a sleeper, the best
  sign of something blocking it (the blog's ``/wrong`` route: ``/news/blocking``);
- ``threadpool_tokens_in_use`` and ``threadpool_tokens``, where ``def`` routes run.
"""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Response
from fastapi.telemetry import TelemetryConfig
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_fastapi_instrumentator import Instrumentator, metrics
from starlette.types import ASGIApp, Receive, Scope, Send

from core.environment import METRICS_DIR_ENV
from observability.multiprocess import RecyclingSafeCollector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
METRICS_PATH = "/metrics"
# FastAPI's native OpenTelemetry asks the global providers on every request whether any is
# configured; the lab configures none, and that question alone was 7% of a worker's CPU.
NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]
# How often the loop monitor wakes: its own cost is one wake-up per interval.
LOOP_PROBE_INTERVAL_S = 0.1


@dataclass(frozen=True)
class ServiceMetrics:
    registry: CollectorRegistry
    in_flight: Gauge
    loop_lag: Histogram
    tokens_in_use: Gauge
    tokens: Gauge


def service_metrics() -> ServiceMetrics:
    """This app's registry, with the worker-level metrics in it.

    One registry per app, not the global one: the tests build many apps in one process.
    """
    registry = CollectorRegistry()
    return ServiceMetrics(
        registry=registry,
        in_flight=Gauge(
            "http_requests_in_flight",
            "HTTP requests being served, /metrics aside.",
            multiprocess_mode="livesum",
            registry=registry,
        ),
        loop_lag=Histogram(
            "event_loop_lag_seconds",
            "How late the event loop woke a sleeping probe: time it spent blocked.",
            buckets=LAG_BUCKETS,
            registry=registry,
        ),
        tokens_in_use=Gauge(
            "threadpool_tokens_in_use",
            "Threadpool tokens held by def routes and dependencies, per worker.",
            multiprocess_mode="livesum",
            registry=registry,
        ),
        tokens=Gauge(
            "threadpool_tokens",
            "Threadpool tokens a worker has for def routes.",
            multiprocess_mode="livesum",
            registry=registry,
        ),
    )


def instrument(app: FastAPI, service: ServiceMetrics) -> None:
    """HTTP metrics on every route but /metrics itself, and /metrics to read them all."""
    registry = service.registry
    instrumentator = Instrumentator(
        should_group_status_codes=False,  # a 503 is not a 502: each status counts
        excluded_handlers=[METRICS_PATH],
        registry=registry,
    )
    instrumentator.add(metrics.requests(registry=registry))
    instrumentator.add(metrics.latency(buckets=LATENCY_BUCKETS, registry=registry))
    instrumentator.instrument(app)
    # /metrics is this module's, not the instrumentator's: its collector would fail a scrape
    # that meets a recycled worker's file as the master archives it (observability/
    # multiprocess.py).
    app.add_api_route(
        METRICS_PATH, metrics_endpoint(registry), methods=["GET"], include_in_schema=False
    )
    # The instrumentator's own in-progress gauge always lands in the global registry, which
    # a second app in one process (the tests) cannot share: this one uses the app's.
    app.add_middleware(InFlight, gauge=service.in_flight)


def metrics_endpoint(registry: CollectorRegistry) -> Callable[[], Response]:
    """Every worker's metrics when gunicorn keeps them in files, else this app's registry."""

    def metrics() -> Response:
        directory = os.environ.get(METRICS_DIR_ENV)
        source = registry
        if directory:
            source = CollectorRegistry()
            RecyclingSafeCollector(source, path=directory)
        return Response(generate_latest(source), media_type=CONTENT_TYPE_LATEST)

    return metrics


class InFlight:
    """Pure ASGI middleware: HTTP requests this worker is serving, /metrics aside."""

    def __init__(self, app: ASGIApp, gauge: Gauge) -> None:
        self.app = app
        self.gauge = gauge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == METRICS_PATH:
            await self.app(scope, receive, send)
            return
        self.gauge.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.gauge.dec()


async def _probe_loop(service: ServiceMetrics, interval_s: float) -> None:
    loop = asyncio.get_running_loop()
    limiter = anyio.to_thread.current_default_thread_limiter()
    while True:  # for the worker's lifetime; cancelled at shutdown
        due = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        service.loop_lag.observe(max(0.0, loop.time() - due))
        service.tokens_in_use.set(limiter.borrowed_tokens)
        service.tokens.set(limiter.total_tokens)


@contextlib.asynccontextmanager
async def loop_monitor(
    service: ServiceMetrics, interval_s: float = LOOP_PROBE_INTERVAL_S
) -> AsyncIterator[None]:
    """Probe the event loop's lag and the threadpool, in the background, while open."""
    task = asyncio.create_task(_probe_loop(service, interval_s))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def monitored(lifespan: Lifespan, service: ServiceMetrics) -> Lifespan:
    """The app's lifespan, with the loop monitor running for as long as it does."""

    @contextlib.asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[Any]:
        async with loop_monitor(service), lifespan(app) as state:
            yield state

    return run


@contextlib.asynccontextmanager
async def no_state(app: FastAPI) -> AsyncIterator[None]:
    """A lifespan with nothing to set up."""
    yield
