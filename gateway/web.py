"""FastAPI pieces both gateways share: the app factory, ``?sources=``, and the response."""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from gateway.config import GatewaySettings
from gateway.fanout import server_timing
from gateway.models import NewsResponse
from gateway.sources import Source, UnknownSourcesError, select_sources

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]

# Returned when every selected source failed: the body still says what happened to each.
ALL_SOURCES_FAILED = 502


def create_gateway_app(
    gateway: str, settings: GatewaySettings, lifespan: Lifespan, http_client: str
) -> FastAPI:
    app = FastAPI(title=f"fanout-lab {gateway} gateway", version="1.0.0", lifespan=lifespan)
    app.state.settings = settings

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        """Liveness, plus every limit a benchmark needs to draw its ideal lines."""
        return {
            "status": "ok",
            "gateway": gateway,
            "sources": [source.name for source in settings.source_list],
            "http_client": http_client,
            "workers": settings.workers,
            "threadpool_tokens": settings.threadpool_tokens,
            "executor_threads": settings.executor_threads,
            "requests_pool_maxsize": settings.requests_pool_maxsize,
            "max_connections": settings.max_connections,
            "max_keepalive_connections": settings.max_keepalive_connections,
        }

    return app


def settings_of(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


# An async dependency runs on the event loop; a `def` one would take a threadpool token.
async def selected_sources(
    request: Request,
    sources: Annotated[
        str | None,
        Query(description="Comma-separated source names; all configured sources by default."),
    ] = None,
) -> list[Source]:
    try:
        return select_sources(settings_of(request).source_list, sources)
    except UnknownSourcesError as exc:
        error = {
            "type": "value_error",
            "loc": ("query", "sources"),
            "msg": str(exc),
            "input": sources,
        }
        raise RequestValidationError([error]) from exc


SelectedSources = Annotated[list[Source], Depends(selected_sources)]


def news_response(news: NewsResponse) -> Response:
    """Serialise once, with the Server-Timing header; 502 only when no source answered."""
    status = 200 if any(source.ok for source in news.sources) else ALL_SOURCES_FAILED
    return Response(
        content=news.model_dump_json(),
        status_code=status,
        media_type="application/json",
        headers={"Server-Timing": server_timing(news)},
    )
