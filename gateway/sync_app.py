"""The sync gateway: ``def`` routes and one shared ``requests.Session`` (or ``httpx.Client``).

Each call blocks its thread, so ``GET /news`` takes about the sum of the source delays.
``?mode=threads`` fans out on a thread pool instead: about the max, paid for in threads.

gunicorn loads it through the factory: ``gateway.sync_app:create_app()``.
"""

import dataclasses
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, closing
from typing import Annotated, Literal, TypedDict

import anyio.to_thread
from fastapi import Depends, FastAPI, Query, Request, Response

from gateway.archive_sync import SyncArchive, sync_archive
from gateway.callers import BlockingCaller
from gateway.calls import CallRules
from gateway.clients import build_blocking_client
from gateway.config import GatewaySettings
from gateway.models import FAN_OUT_RESPONSES, NewsResponse
from gateway.selfcall import SyncSelfCaller, self_call_router, sync_self_caller
from gateway.web import FanOutPlan, create_gateway_app, fan_out_plan_for
from serving.refusals import lever_refused

SyncMode = Literal["sequential", "threads"]
# pool: the worker's pool; new: a new connection for this query, closed after it.
ArchiveConnection = Literal["pool", "new"]


class SyncState(TypedDict):
    caller: BlockingCaller
    executor: ThreadPoolExecutor
    # /kkblogs's, when the lab's levers are on: it calls this server's own /sync_func.
    self_caller: SyncSelfCaller | None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[SyncState]:
    settings: GatewaySettings = app.state.settings
    # The limiter belongs to this worker's event loop, so it is set here, not at import.
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threadpool_tokens
    executor = ThreadPoolExecutor(
        max_workers=settings.executor_threads, thread_name_prefix="fanout"
    )
    try:
        with closing(build_blocking_client(settings)) as client, sync_archive(settings) as archive:
            async with sync_self_caller(settings) as self_caller:
                yield {
                    "caller": BlockingCaller(client, CallRules.of(settings), archive),
                    "executor": executor,
                    "self_caller": self_caller,
                }
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    app = create_gateway_app("sync", settings, lifespan, http_client=settings.sync_http_client)
    planned = Depends(fan_out_plan_for(settings))

    @app.get("/news", response_model=NewsResponse, responses=FAN_OUT_RESPONSES)
    def news(
        request: Request,
        plan: Annotated[FanOutPlan, planned],
        mode: Annotated[
            SyncMode, Query(description="sequential: one call after another; threads: a pool.")
        ] = "sequential",
        archive_connection: Annotated[
            ArchiveConnection,
            Query(
                description="pool: the worker's pool; new: a new connection per query.",
                include_in_schema=settings.lab_levers,
            ),
        ] = "pool",
    ) -> Response:
        """Fan out to every selected source from this worker thread."""
        # The lifespan's state, as on the async gateway.
        fan_out = plan.start()
        caller: BlockingCaller = request.state.caller
        if archive_connection != "pool":
            if not settings.lab_levers:
                raise lever_refused("archive_connection", archive_connection)
            if isinstance(caller.archive, SyncArchive):
                caller = dataclasses.replace(caller, archive=caller.archive.unpooled)
        if mode == "threads":
            # Each call keeps to the deadline itself, so every future ends by then.
            executor: ThreadPoolExecutor = request.state.executor
            futures = [executor.submit(caller.fetch, call, fan_out) for call in plan.calls]
            outcomes = [future.result() for future in futures]
        else:
            outcomes = [caller.fetch(call, fan_out) for call in plan.calls]
        return plan.respond(fan_out.assemble("sync", mode, outcomes))

    if settings.lab_levers:
        app.include_router(self_call_router(settings, "sync"))
    return app
