"""The post's ``/kkblogs``: a route that calls its own server, on each gateway.

The post's ``/kkblogs`` gathers ``http://localhost:8000/test1`` and ``/test2``, two slow
routes of the same app. In ``async def`` that is harmless: the calls and the routes they
reach all wait on one event loop, so the answer comes in about the max of the sleeps.

The sync gateway's version is the same idea in ``def``: it calls its own ``def
/sync_func`` with ``requests``, one call after another. Each ``/kkblogs`` holds one of
the worker's threadpool tokens while it waits, and the route it waits on needs a token
too. Below the tokens it costs the sum of the sleeps. Once every token is held by a
``/kkblogs``, no ``/sync_func`` can start, and nothing ends until the deadline cuts the
waits: each answers 504, saying so.

The calls go to the socket the request came in on (``scope["server"]``), never to a
Host header: a caller cannot point them anywhere else. With one worker they reach the
same worker; with more, the kernel picks among them, which postpones the deadlock.
"""

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Literal

import httpx
import requests
from fastapi import APIRouter, HTTPException, Query, Request
from httpx_aiohttp import AiohttpTransport
from pydantic import BaseModel, Field
from requests.adapters import HTTPAdapter

from gateway.blog import Slept
from gateway.config import GatewaySettings

# The post's test1 and test2 sleep 3 s and 4 s; a tenth of that keeps a run short.
DEFAULT_SLEEPS_MS = [300, 400]
MAX_SELF_CALLS = 10


class SelfCalls(BaseModel):
    gateway: Literal["sync", "async"]
    # The route each call reached on this same server, and how the calls were made.
    route: str
    mode: Literal["sequential", "concurrent"]
    elapsed_ms: float
    worker_pid: int
    calls: list[Slept]


class SelfCallFailed(BaseModel):
    detail: str


SELF_CALL_RESPONSES: dict[int | str, dict[str, object]] = {
    502: {"model": SelfCallFailed, "description": "A self-call failed; the detail says how."},
    504: {
        "model": SelfCallFailed,
        "description": "The deadline cut the self-calls; the detail names the cause.",
    },
}


class SelfCallHolders:
    """How many sync ``/kkblogs`` hold a threadpool token now, and whether every token
    was held by one at some moment: the deadlock's cause, named in the 504.

    Counted under a lock: the routes run on the threadpool's threads.
    """

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.holding = 0
        # How many times the holders reached every token, ever: a request that saw it
        # change while it waited was caught in the deadlock.
        self.saturations = 0
        self._lock = threading.Lock()

    @contextmanager
    def holding_one(self) -> Iterator[Callable[[], bool]]:
        """Count this request in; yields whether it has been caught in a deadlock."""
        with self._lock:
            self.holding += 1
            mark = self.saturations
            if self.holding >= self.tokens:
                self.saturations += 1
        try:
            yield lambda: self.saturations > mark
        finally:
            with self._lock:
                self.holding -= 1


class SyncSelfCaller:
    """The sync route's state: a session of its own, and the count of its token holders.

    Its pool keeps a connection per token: every thread may be calling at once.
    """

    def __init__(self, tokens: int) -> None:
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.mount("http://", HTTPAdapter(pool_maxsize=tokens))
        self.holders = SelfCallHolders(tokens)

    def close(self) -> None:
        self.session.close()


def own_base_url(request: Request) -> str:
    """The socket the request arrived on, on loopback: the same server, whatever the
    Host header says."""
    server = request.scope.get("server")
    if not server or server[1] is None:
        raise HTTPException(501, "/kkblogs calls its own server, which needs a TCP socket")
    return f"http://127.0.0.1:{server[1]}"


def self_call_router(settings: GatewaySettings, gateway: Literal["sync", "async"]) -> APIRouter:
    """The gateway's own `/kkblogs`: `def` on the sync one, `async def` on the async one."""
    router = APIRouter(tags=["the blog post's examples"])
    # One ?ms= per self-call, each bounded, so a bad value is a 422 that names it.
    Sleeps = Annotated[
        list[Annotated[int, Field(ge=0, le=settings.max_hold_ms)]] | None,
        Query(
            min_length=1,
            max_length=MAX_SELF_CALLS,
            description="One self-call per value, each sleeping that many ms on this server"
            f" (at most {MAX_SELF_CALLS} calls of {settings.max_hold_ms} ms); by default"
            f" {DEFAULT_SLEEPS_MS}.",
        ),
    ]
    Deadline = Annotated[
        int | None,
        Query(
            ge=1,
            le=settings.max_deadline_ms,
            description=f"When the route gives up, at most {settings.max_deadline_ms} ms.",
        ),
    ]
    if gateway == "sync":

        @router.get("/kkblogs", responses=SELF_CALL_RESPONSES)
        def kkblogs_def(
            request: Request, ms: Sleeps = None, deadline_ms: Deadline = None
        ) -> SelfCalls:
            """The post's `/kkblogs` in `def`: calls this server's `def /sync_func`, one after
            another. Once every threadpool token is held by one of these, it deadlocks until
            the deadline, then answers 504."""
            started = time.perf_counter()
            deadline_s = (deadline_ms or settings.deadline_ms) / 1000
            base, caller = own_base_url(request), request.state.self_caller
            calls: list[Slept] = []
            with caller.holders.holding_one() as caught:
                for sleep_ms in ms or DEFAULT_SLEEPS_MS:
                    left = started + deadline_s - time.perf_counter()
                    try:
                        if left <= 0:
                            raise requests.Timeout
                        answer = caller.session.get(
                            f"{base}/sync_func", params={"ms": sleep_ms}, timeout=left
                        )
                        answer.raise_for_status()
                    except requests.Timeout as exc:
                        cause = sync_timeout_cause(caught(), caller.holders, deadline_s)
                        raise HTTPException(504, cause) from exc
                    except requests.RequestException as exc:
                        raise HTTPException(
                            502, f"the self-call to /sync_func failed: {exc!r}"
                        ) from exc
                    calls.append(Slept.model_validate_json(answer.content))
            return _self_calls("sync", "/sync_func", "sequential", started, calls)

        return router

    @router.get("/kkblogs", responses=SELF_CALL_RESPONSES)
    async def kkblogs_async(
        request: Request, ms: Sleeps = None, deadline_ms: Deadline = None
    ) -> SelfCalls:
        """The post's `/kkblogs`: `asyncio.gather` over calls to this server's `/right`.
        The calls and the routes they reach share one event loop: about the max."""
        started = time.perf_counter()
        deadline_s = (deadline_ms or settings.deadline_ms) / 1000
        base, client = own_base_url(request), request.state.self_client

        async def call(sleep_ms: int) -> Slept:
            answer = await client.get(f"{base}/right", params={"ms": sleep_ms})
            answer.raise_for_status()
            return Slept.model_validate_json(answer.content)

        try:
            async with asyncio.timeout(deadline_s):
                calls = await asyncio.gather(*map(call, ms or DEFAULT_SLEEPS_MS))
        except TimeoutError as exc:
            raise HTTPException(
                504,
                f"deadline ({deadline_s * 1000:.0f} ms): the self-calls to /right did not"
                " all answer in time",
            ) from exc
        except httpx.HTTPError as exc:
            raise HTTPException(502, f"a self-call to /right failed: {exc!r}") from exc
        return _self_calls("async", "/right", "concurrent", started, calls)

    return router


def sync_timeout_cause(caught: bool, holders: SelfCallHolders, deadline_s: float) -> str:
    deadline = f"deadline ({deadline_s * 1000:.0f} ms)"
    if caught:
        return (
            f"{deadline}: threadpool exhausted. Every one of this worker's {holders.tokens}"
            " threadpool tokens was held by a /kkblogs waiting on its own worker's"
            " /sync_func, which needs a token too: a deadlock only the deadline ends"
        )
    return (
        f"{deadline}: a self-call to /sync_func did not answer in time"
        f" ({holders.holding} of {holders.tokens} threadpool tokens held by /kkblogs)"
    )


@asynccontextmanager
async def sync_self_caller(settings: GatewaySettings) -> AsyncIterator[SyncSelfCaller | None]:
    """The sync route's session and counts, with the lab's levers on; closed on shutdown."""
    if not settings.lab_levers:
        yield None
        return
    caller = SyncSelfCaller(settings.threadpool_tokens)
    try:
        yield caller
    finally:
        caller.close()


@asynccontextmanager
async def async_self_client(settings: GatewaySettings) -> AsyncIterator[httpx.AsyncClient | None]:
    """The async route's client, with the lab's levers on: the post's `httpx.AsyncClient`,
    one per worker, over aiohttp's connector as the gateway's default client is. httpx's
    own pool re-scans its connections for every request it queues: with 80 of these at
    once (160 calls) in process, the 2.5 s deadline cut 61; over aiohttp's connector all
    80 answered within 0.53 s. No timeout of its own: the route's deadline bounds it."""
    if not settings.lab_levers:
        yield None
        return
    limits = httpx.Limits(max_connections=settings.max_connections)
    transport = AiohttpTransport(limits=limits)
    async with httpx.AsyncClient(
        transport=transport, limits=limits, trust_env=False, timeout=None
    ) as client:
        yield client


def _self_calls(
    gateway: Literal["sync", "async"],
    route: str,
    mode: Literal["sequential", "concurrent"],
    started: float,
    calls: list[Slept],
) -> SelfCalls:
    return SelfCalls(
        gateway=gateway,
        route=route,
        mode=mode,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
        worker_pid=os.getpid(),
        calls=calls,
    )
