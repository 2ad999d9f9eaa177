"""The console service: the page, and ``GET /api/race``, which runs one race at a time and
streams it as server-sent events.

gunicorn loads it through the factory: ``console.main:create_app()``.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict

import aiohttp
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse
from fastapi.sse import EventSourceResponse, format_sse_event
from fastapi.staticfiles import StaticFiles

from console.config import ConsoleSettings
from console.race import AsyncRoute, Race, RacePlan, SyncRoute
from gateway.sources import ARCHIVE, Source, UnknownSourcesError, select_sources
from gateway.web import parse_faults
from observability.metrics import NO_OPENTELEMETRY, instrument, monitored, service_metrics
from observability.requestid import add_request_ids
from serving.heap import with_frozen_heap
from serving.refusals import invalid_query

STATIC = Path(__file__).parent / "static"
RACE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The race, as server-sent events: start, answer, gauges, summary.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    409: {"description": "A race is running: one at a time."},
}


class ConsoleState(TypedDict):
    session: aiohttp.ClientSession
    one_race: asyncio.Lock


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()
    service = service_metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[ConsoleState]:
        # No connection cap: a race of K per side must send all 2K at once. Each request
        # is bounded by the race's own timeout.
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        timeout = aiohttp.ClientTimeout(total=settings.race_timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            yield {"session": session, "one_race": asyncio.Lock()}

    app = FastAPI(
        title="fanout-lab console",
        version="1.0.0",
        lifespan=with_frozen_heap(monitored(lifespan, service)),
        telemetry=NO_OPENTELEMETRY,
    )
    instrument(app, service)
    add_request_ids(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        return {"status": "ok", "max_requests": settings.max_requests}

    if not settings.lab_levers:
        return app

    # The route returns its stream itself (a 409 or 422 must come before it starts), so the
    # schema is told what it is, rather than FastAPI making one of a generator.
    @app.get("/api/race", responses=RACE_RESPONSES)
    async def race(
        request: Request,
        requests: Annotated[
            int,
            Query(
                ge=1,
                le=settings.max_requests,
                description="K: requests sent at once to each gateway.",
            ),
        ] = 10,
        sync_route: Annotated[SyncRoute, Query(description="The sync gateway's mode.")] = (
            "sequential"
        ),
        async_route: Annotated[
            AsyncRoute, Query(description="The async gateway's route or mode.")
        ] = "concurrent",
        fault: Annotated[
            str | None,
            Query(max_length=512, description="The gateways' ?fault=, e.g. gazette:error."),
        ] = None,
        deadline_ms: Annotated[
            int | None, Query(ge=1, le=600_000, description="The gateways' ?deadline_ms=.")
        ] = None,
        sources: Annotated[
            str | None,
            Query(
                max_length=512,
                description="The gateways' ?sources=, e.g. wire,archive: the archive's lane.",
            ),
        ] = None,
    ) -> EventSourceResponse:
        """Run one race and stream it: `start`, then `answer` and `gauges` events as they
        come, then `summary`. A second race while one runs gets a 409."""
        session: aiohttp.ClientSession = request.state.session
        lock: asyncio.Lock = request.state.one_race
        if fault is not None or sources is not None:
            # The gateways' own parsers, against the names they serve: a clear 422 here,
            # not 2K of them from the gateways.
            async with session.get(f"{str(settings.sync_url).rstrip('/')}/healthz") as healthz:
                names = (await healthz.json())["sources"]
            check_levers(names, fault, sources)
        if lock.locked():
            raise HTTPException(409, "a race is running: one at a time; try again when it ends")
        await lock.acquire()
        plan = RacePlan(requests, sync_route, async_route, fault, deadline_ms, sources)

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for event, payload in Race(plan, settings, session).events():
                    yield format_sse_event(data_str=payload.model_dump_json(), event=event)
            finally:
                lock.release()

        return EventSourceResponse(stream())

    return app


def check_levers(names: list[str], fault: str | None, sources: str | None) -> None:
    """The race's ?fault= and ?sources=, checked as the gateways check them: faults are the
    HTTP sources' alone (the archive takes none)."""
    configured = [Source(name, "", kind="archive" if name == ARCHIVE else "http") for name in names]
    if sources is not None:
        try:
            select_sources(configured, sources)
        except UnknownSourcesError as exc:
            raise invalid_query("sources", str(exc), sources) from exc
    if fault is not None:
        try:
            parse_faults([source for source in configured if source.kind == "http"], fault)
        except ValueError as exc:
            raise invalid_query("fault", str(exc), fault) from exc
