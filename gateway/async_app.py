"""The async gateway: ``async def`` routes and one shared httpx-style ``AsyncClient``.

``GET /news`` overlaps the calls with ``asyncio.gather``: about the max of the delays.
``?mode=sequential`` awaits them one by one: about the sum, because ``async def`` alone
gives no concurrency. ``GET /news/blocking`` is the blog's common mistake. ``/ws/news``
streams the same fan-out over a WebSocket, each source's result as it arrives.

gunicorn loads it through the factory: ``gateway.async_app:create_app()``.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, closing
from typing import Annotated, Literal, TypedDict

import httpx
from fastapi import Depends, FastAPI, Query, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import WebSocketRequestValidationError
from starlette.responses import JSONResponse

from gateway.archive_async import async_archive
from gateway.archive_sync import sync_archive
from gateway.blocking_clients import RequestsClient
from gateway.callers import AsyncCaller, BlockingCaller
from gateway.calls import CallRules
from gateway.clients import async_upstream_client, build_session
from gateway.config import GatewaySettings
from gateway.models import FAN_OUT_RESPONSES, NewsResponse, SourceArrived
from gateway.selfcall import async_self_client, self_call_router
from gateway.web import FanOutPlan, create_gateway_app, fan_out_plan_for
from serving.refusals import lever_refused

AsyncMode = Literal["concurrent", "sequential"]
# shared: the worker's pooled client; per-call: a new httpx.AsyncClient for every source
# call, as the blog post's own fetch_data does.
ClientChoice = Literal["shared", "per-call"]


class AsyncState(TypedDict):
    caller: AsyncCaller
    # /news/blocking's, when the lab's levers are on: a requests.Session, called from the
    # event loop (the mistake).
    blocking_caller: BlockingCaller | None
    # /kkblogs's, when the lab's levers are on: the post's httpx.AsyncClient, which calls
    # this server's own /right.
    self_client: httpx.AsyncClient | None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[AsyncState]:
    settings: GatewaySettings = app.state.settings
    rules = CallRules.of(settings)
    async with (
        async_upstream_client(settings) as client,
        async_self_client(settings) as self_client,
        async_archive(settings) as archive,
        AsyncExitStack() as stack,
    ):
        blocking = None
        if settings.lab_levers:
            session = stack.enter_context(closing(RequestsClient(build_session(settings))))
            # The database form of the mistake: psycopg's blocking queries, on the loop,
            # through a pool that connects only when /news/blocking asks it to.
            blocking_archive = stack.enter_context(
                sync_archive(settings, "async-blocking", eager=False)
            )
            blocking = BlockingCaller(session, rules, blocking_archive)
        yield {
            "caller": AsyncCaller(client, rules, archive),
            "blocking_caller": blocking,
            "self_client": self_client,
        }


async def refuse_websocket(websocket: WebSocket, exc: Exception) -> None:
    """Bad input on the WebSocket is refused before it opens, with the 422 that GET /news
    gives: FastAPI's own answer is a 1008 close, which the handshake turns into a bare 403
    and whose reason, naming the field, a browser never sees."""
    assert isinstance(exc, WebSocketRequestValidationError)
    body = {"detail": jsonable_encoder(exc.errors())}
    await websocket.send_denial_response(JSONResponse(body, status_code=422))


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    app = create_gateway_app("async", settings, lifespan, http_client=settings.async_http_client)
    planned = Depends(fan_out_plan_for(settings))

    @app.get("/news", response_model=NewsResponse, responses=FAN_OUT_RESPONSES)
    async def news(
        request: Request,
        plan: Annotated[FanOutPlan, planned],
        mode: Annotated[
            AsyncMode, Query(description="concurrent: asyncio.gather; sequential: one by one.")
        ] = "concurrent",
        client: Annotated[
            ClientChoice,
            Query(
                description="shared: the worker's pool; per-call: a new client per call.",
                include_in_schema=settings.lab_levers,
            ),
        ] = "shared",
    ) -> Response:
        """Fan out to every selected source on this worker's event loop."""
        if client != "shared" and not settings.lab_levers:
            raise lever_refused("client", client)
        # The lifespan's state, as on the sync gateway.
        fan_out = plan.start()
        caller: AsyncCaller = request.state.caller
        fetch = caller.fetch if client == "shared" else caller.fetch_with_own_client
        if mode == "concurrent":
            outcomes = await asyncio.gather(*(fetch(call, fan_out) for call in plan.calls))
        else:
            outcomes = [await fetch(call, fan_out) for call in plan.calls]
        label = mode if client == "shared" else f"{mode}, per-call client"
        return plan.respond(fan_out.assemble("async", label, outcomes))

    app.add_exception_handler(WebSocketRequestValidationError, refuse_websocket)

    @app.websocket("/ws/news")
    async def news_stream(websocket: WebSocket, plan: Annotated[FanOutPlan, planned]) -> None:
        """The post's "must use async def for WebSocket communication": the fan-out over a
        WebSocket, each source's result sent as it arrives, then the whole answer as
        `GET /news` gives it. FastAPI awaits a WebSocket route, so a `def` one fails at the
        first connection: the sync gateway has none."""
        await websocket.accept()
        fan_out, caller = plan.start(), websocket.state.caller
        pending = [asyncio.ensure_future(caller.fetch(call, fan_out)) for call in plan.calls]
        try:
            outcomes = []
            for arrived in asyncio.as_completed(pending):
                outcome = await arrived
                outcomes.append(outcome)
                message = SourceArrived(result=outcome.result, articles=outcome.articles)
                await websocket.send_text(message.model_dump_json())
            news = fan_out.assemble("async", "websocket", outcomes)
            plan.metrics.observe(news)
            await websocket.send_text(news.model_dump_json())
            await websocket.close()
        except WebSocketDisconnect:
            pass  # the client left: nothing to send, and its calls are cancelled below
        finally:
            for task in pending:
                task.cancel()

    if not settings.lab_levers:
        return app
    app.include_router(self_call_router(settings, "async"))

    @app.get("/news/blocking", response_model=NewsResponse, responses=FAN_OUT_RESPONSES)
    async def news_blocking(request: Request, plan: Annotated[FanOutPlan, planned]) -> Response:
        """The common mistake: blocking `requests` calls inside an `async def` route.

        Nothing here awaits, so the event loop is stuck for the whole fan-out: this worker
        serves no other request, not even /healthz, until it ends. Under K concurrent
        requests the last one waits about K times as long as one alone.
        """
        fan_out, caller = plan.start(), request.state.blocking_caller
        outcomes = [caller.fetch(call, fan_out) for call in plan.calls]
        return plan.respond(fan_out.assemble("async", "blocking", outcomes))

    return app
