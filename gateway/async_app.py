"""The async gateway: ``async def`` routes and one shared ``httpx.AsyncClient``.

``GET /news`` overlaps the calls with ``asyncio.gather``: about the max of the delays.
``?mode=sequential`` awaits them one by one: about the sum, because ``async def`` alone
gives no concurrency. ``GET /news/blocking`` is the blog's common mistake.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Literal, TypedDict

import httpx
import requests
from fastapi import Depends, FastAPI, Query, Request, Response

from gateway import sync_app
from gateway.config import GatewaySettings
from gateway.fanout import FanOutClock, SourceOutcome
from gateway.models import NewsResponse
from gateway.sources import Source
from gateway.web import SelectedSources, create_gateway_app, news_response

AsyncMode = Literal["concurrent", "sequential"]


class AsyncState(TypedDict):
    client: httpx.AsyncClient
    blocking_session: requests.Session


def build_client(settings: GatewaySettings) -> httpx.AsyncClient:
    """One pooled client for the whole worker, with every limit spelled out."""
    timeout = httpx.Timeout(
        connect=settings.connect_timeout_s,
        read=settings.read_timeout_s,
        write=settings.connect_timeout_s,
        # Waiting for a free pooled connection counts too, so a full pool cannot hang us.
        pool=settings.pool_timeout_s,
    )
    # max_connections caps sockets across all sources for this worker; a fan-out of N at
    # concurrency C wants N x C of them. Far past what the upstreams need, the pool's own
    # bookkeeping costs more than it saves (README: "Why async falls short";
    # `python -m bench pool-cost` measures it).
    limits = httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_keepalive_connections,
        keepalive_expiry=settings.keepalive_expiry_s,
    )
    return httpx.AsyncClient(timeout=timeout, limits=limits)


async def fetch_source(
    client: httpx.AsyncClient, source: Source, clock: FanOutClock, settings: GatewaySettings
) -> SourceOutcome:
    """One awaited call to one source; never raises, a failure is part of the answer."""
    started = time.perf_counter()
    try:
        response = await client.get(source.news_url, params={"limit": settings.articles_per_source})
    except httpx.TimeoutException as exc:
        return clock.failed(source, started, f"timeout: {type(exc).__name__}")
    except httpx.HTTPError as exc:
        return clock.failed(source, started, f"connection error: {type(exc).__name__}")
    return clock.answered(source, started, response.status_code, response.content)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[AsyncState]:
    settings: GatewaySettings = app.state.settings
    async with build_client(settings) as client:
        with sync_app.build_session(settings) as blocking_session:
            yield {"client": client, "blocking_session": blocking_session}


async def async_state(request: Request) -> AsyncState:
    return AsyncState(client=request.state.client, blocking_session=request.state.blocking_session)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    app = create_gateway_app("async", settings, lifespan)

    @app.get("/news", response_model=NewsResponse)
    async def news(
        sources: SelectedSources,
        state: Annotated[AsyncState, Depends(async_state)],
        mode: Annotated[
            AsyncMode, Query(description="concurrent: asyncio.gather; sequential: one by one.")
        ] = "concurrent",
    ) -> Response:
        """Fan out to every selected source on this worker's event loop."""
        clock = FanOutClock()
        client = state["client"]
        if mode == "concurrent":
            outcomes = await asyncio.gather(
                *(fetch_source(client, source, clock, settings) for source in sources)
            )
        else:
            outcomes = [await fetch_source(client, source, clock, settings) for source in sources]
        return news_response(clock.assemble("async", mode, outcomes))

    @app.get("/news/blocking", response_model=NewsResponse)
    async def news_blocking(
        sources: SelectedSources, state: Annotated[AsyncState, Depends(async_state)]
    ) -> Response:
        """The common mistake: blocking `requests` calls inside an `async def` route.

        Nothing here awaits, so the event loop is stuck for the whole fan-out: this worker
        serves no other request, not even /healthz, until it ends. Under K concurrent
        requests the last one waits about K times as long as one alone.
        """
        clock = FanOutClock()
        session = state["blocking_session"]
        outcomes = [sync_app.fetch_source(session, source, clock, settings) for source in sources]
        return news_response(clock.assemble("async", "blocking", outcomes))

    return app


app = create_app()
