"""The upstream news service: ``GET /news`` answers after the source's delay, or with a fault.

gunicorn loads it through the factory: ``upstream.main:create_app()``.
"""

import asyncio
from typing import Annotated

from fastapi import FastAPI, Query, Response
from pydantic import BaseModel

from observability.metrics import (
    NO_OPENTELEMETRY,
    instrument,
    monitored,
    no_state,
    service_metrics,
)
from observability.requestid import add_request_ids
from upstream.articles import Article, generate_articles
from upstream.config import FaultKind, UpstreamSettings
from upstream.faults import Draws, faulty_response


class NewsPayload(BaseModel):
    source: str
    instance: str
    delay_ms: int
    articles: list[Article]


def create_app(settings: UpstreamSettings | None = None) -> FastAPI:
    settings = settings or UpstreamSettings()
    articles = generate_articles(settings.name, settings.article_count)
    draws = Draws(settings)
    service = service_metrics()
    app = FastAPI(
        title=f"upstream: {settings.name}",
        version="1.0.0",
        lifespan=monitored(no_state, service),
        telemetry=NO_OPENTELEMETRY,
    )
    app.state.settings = settings
    instrument(app, service)
    add_request_ids(app)

    @app.get("/news", response_model=NewsPayload)
    async def news(
        limit: Annotated[int, Query(ge=1, le=settings.article_count)] = 10,
        delay_ms: Annotated[
            int | None,
            Query(ge=0, le=settings.max_delay_ms, description="Override this request's delay."),
        ] = None,
        fault: Annotated[
            FaultKind | None, Query(description="Force this fault on this answer.")
        ] = None,
    ) -> Response:
        if delay_ms is None:
            delay_ms = draws.delay_ms()
        injected = draws.fault(fault)
        # asyncio.sleep parks the request on the event loop, so one worker holds
        # thousands of waiting requests: the upstream is slow, never saturated.
        await asyncio.sleep(delay_ms / 1000)
        payload = NewsPayload(
            source=settings.name,
            instance=settings.instance,
            delay_ms=delay_ms,
            articles=articles[:limit],
        )
        # Serialised here, once: returning the model would have FastAPI validate it again
        # before serialising it. The OpenAPI schema still comes from response_model.
        body, headers = (
            payload.model_dump_json().encode(),
            {"Server-Timing": f"delay;dur={delay_ms}"},
        )
        if injected is not None:
            return await faulty_response(injected, body, headers, draws)
        return Response(body, media_type="application/json", headers=headers)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "source": settings.name}

    return app
