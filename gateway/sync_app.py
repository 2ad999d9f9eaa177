"""The sync gateway: ``def`` routes and one shared ``requests.Session``.

Each call blocks its thread, so ``GET /news`` takes about the sum of the source delays.
``?mode=threads`` fans out on a thread pool instead: about the max, paid for in threads.
"""

import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated, Literal, TypedDict

import anyio.to_thread
import requests
from fastapi import Depends, FastAPI, Query, Request, Response
from requests.adapters import HTTPAdapter

from gateway.config import GatewaySettings
from gateway.fanout import FanOutClock, SourceOutcome
from gateway.models import NewsResponse
from gateway.sources import Source
from gateway.web import SelectedSources, create_gateway_app, news_response

SyncMode = Literal["sequential", "threads"]


class SyncState(TypedDict):
    session: requests.Session
    executor: ThreadPoolExecutor


def build_session(settings: GatewaySettings) -> requests.Session:
    """One pooled session for the whole worker."""
    session = requests.Session()
    # Up to `threadpool_tokens` requests run at once, and each holds at most one
    # connection per source, so the pool keeps tokens connections per source host:
    # tokens x fan-out in all. requests' default (pool_maxsize=10) would make every
    # thread past the tenth open and drop a fresh connection per call.
    adapter = HTTPAdapter(
        pool_connections=len(settings.sources), pool_maxsize=settings.threadpool_tokens
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def fetch_source(
    session: requests.Session, source: Source, clock: FanOutClock, settings: GatewaySettings
) -> SourceOutcome:
    """One blocking call to one source; never raises, a failure is part of the answer."""
    started = time.perf_counter()
    try:
        response = session.get(
            source.news_url,
            params={"limit": settings.articles_per_source},
            timeout=(settings.connect_timeout_s, settings.read_timeout_s),
        )
    except requests.Timeout as exc:
        return clock.failed(source, started, f"timeout: {type(exc).__name__}")
    except requests.RequestException as exc:
        return clock.failed(source, started, f"connection error: {type(exc).__name__}")
    return clock.answered(source, started, response.status_code, response.content)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[SyncState]:
    settings: GatewaySettings = app.state.settings
    # The limiter belongs to this worker's event loop, so it is set here, not at import.
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threadpool_tokens
    # threads mode: every request in flight may run one call per source at once.
    executor = ThreadPoolExecutor(
        max_workers=settings.threadpool_tokens * len(settings.sources),
        thread_name_prefix="fanout",
    )
    with build_session(settings) as session:
        yield {"session": session, "executor": executor}
    executor.shutdown(wait=False, cancel_futures=True)


async def sync_state(request: Request) -> SyncState:
    return SyncState(session=request.state.session, executor=request.state.executor)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    app = create_gateway_app("sync", settings, lifespan)

    @app.get("/news", response_model=NewsResponse)
    def news(
        sources: SelectedSources,
        state: Annotated[SyncState, Depends(sync_state)],
        mode: Annotated[
            SyncMode, Query(description="sequential: one call after another; threads: a pool.")
        ] = "sequential",
    ) -> Response:
        """Fan out to every selected source from this worker thread."""
        clock = FanOutClock()
        session = state["session"]
        if mode == "threads":
            futures = [
                state["executor"].submit(fetch_source, session, source, clock, settings)
                for source in sources
            ]
            outcomes = [future.result() for future in futures]
        else:
            outcomes = [fetch_source(session, source, clock, settings) for source in sources]
        return news_response(clock.assemble("sync", mode, outcomes))

    return app


app = create_app()
