"""The upstream news service: ``GET /news`` answers after the source's delay, or with a fault.

gunicorn loads it through the factory: ``upstream.main:create_app()``.
"""

import asyncio
import functools
from collections.abc import Coroutine
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, Response
from pydantic import BaseModel

from core.news import Article, FaultKind
from observability.metrics import (
    NO_OPENTELEMETRY,
    instrument,
    monitored,
    no_state,
    service_metrics,
)
from observability.requestid import add_request_ids
from serving.admission import AdmissionLimit, AdmissionPolicy, Overloaded
from serving.heap import with_frozen_heap
from serving.refusals import lever_refused
from upstream.articles import generate_articles
from upstream.config import UpstreamSettings
from upstream.faults import Draws, faulty_response


class NewsPayload(BaseModel):
    source: str
    instance: str
    node: str | None = None
    delay_ms: int
    articles: list[Article]


# nginx's status for a caller that hung up first. Nobody receives it: it is for the logs.
CALLER_LEFT = 499
# Bodies kept per worker, by (delay, limit): 3 KB for the 10 articles a gateway asks for,
# 20 MB at worst (UPSTREAM_ARTICLE_COUNT=1000, every answer at its limit). A latency model
# that draws a new delay each time only misses.
NEWS_BODIES_CACHED = 64
NEWS_RESPONSES: dict[int | str, dict[str, object]] = {
    503: {"model": Overloaded, "description": "Past UPSTREAM_MAX_IN_FLIGHT: see Retry-After."}
}


async def _hung_up(request: Request) -> None:
    """Returns once the caller has hung up; a GET's empty body is read on the way."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def sleep_unless_caller_leaves(request: Request, seconds: float) -> bool:
    """Sleep `seconds`, unless the caller hangs up first: False then.

    uvicorn does not cancel a request whose caller left. Waiting for the hang-up with the
    delay as its timeout makes the sleep itself the watch: no task per request.
    """
    try:
        async with asyncio.timeout(seconds):
            await _hung_up(request)
    except TimeoutError:
        return True
    return False


async def unless_caller_leaves(request: Request, work: Coroutine[Any, Any, Response]) -> Response:
    """`work`, cancelled as soon as the caller hangs up: for a fault's answer, which may
    hang for 30 s or drip for 3 (the normal answer's sleep watches on its own).

    The answer's body, once it streams, ends at its next write to the closed connection.
    """
    answering, leaving = asyncio.ensure_future(work), asyncio.ensure_future(_hung_up(request))
    try:
        await asyncio.wait((answering, leaving), return_when=asyncio.FIRST_COMPLETED)
    finally:
        answering.cancel()
        leaving.cancel()
    if answering.done() and not answering.cancelled():
        return answering.result()
    return Response(status_code=CALLER_LEFT)


def create_app(settings: UpstreamSettings | None = None) -> FastAPI:
    settings = settings or UpstreamSettings()
    articles = generate_articles(settings.name, settings.article_count)
    draws = Draws(settings)
    service = service_metrics()
    app = FastAPI(
        title=f"upstream: {settings.name}",
        version="1.0.0",
        lifespan=with_frozen_heap(monitored(no_state, service)),
        telemetry=NO_OPENTELEMETRY,
    )
    app.state.settings = settings
    # The metrics count the 503s of the bound, and the request id sees everything.
    app.add_middleware(
        AdmissionLimit,
        policy=AdmissionPolicy(settings.max_in_flight, 0, settings.retry_after_s, "answers"),
    )
    instrument(app, service)
    add_request_ids(app)

    @app.get("/news", response_model=NewsPayload, responses=NEWS_RESPONSES)
    async def news(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=settings.article_count)] = 10,
        delay_ms: Annotated[
            int | None,
            Query(
                ge=0,
                le=settings.max_delay_ms,
                description="Override this request's delay.",
                include_in_schema=settings.lab_levers,
            ),
        ] = None,
        fault: Annotated[
            FaultKind | None,
            Query(
                description="Force this fault on this answer.",
                include_in_schema=settings.lab_levers,
            ),
        ] = None,
    ) -> Response:
        if not settings.lab_levers:
            for name, value in (("delay_ms", delay_ms), ("fault", fault)):
                if value is not None:
                    raise lever_refused(name, value)
        if delay_ms is None:
            delay_ms = draws.delay_ms()
        injected = draws.fault(fault)
        # Parked on the event loop, so one worker holds thousands of waiting requests: the
        # upstream is slow, never saturated.
        if not await sleep_unless_caller_leaves(request, delay_ms / 1000):
            return Response(status_code=CALLER_LEFT)
        body, headers = news_body(delay_ms, limit), {"Server-Timing": f"delay;dur={delay_ms}"}
        if injected is not None:
            return await unless_caller_leaves(
                request, faulty_response(injected, body, headers, draws)
            )
        return Response(body, media_type="application/json", headers=headers)

    @functools.lru_cache(maxsize=NEWS_BODIES_CACHED)
    def news_body(delay_ms: int, limit: int) -> bytes:
        """The answer's body, serialised once per delay and limit: the articles never change.

        Serialised here, not returned as a model, which FastAPI would validate again before
        serialising it. The OpenAPI schema still comes from response_model.
        """
        payload = NewsPayload(
            source=settings.name,
            instance=settings.instance,
            node=settings.node,
            delay_ms=delay_ms,
            articles=articles[:limit],
        )
        return payload.model_dump_json().encode()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "source": settings.name}

    return app
