"""Overload as a decision: at most N requests to ``/news`` in flight per worker, and a
bounded wait for a slot. A request that finds none in time gets a fast 503 with
``Retry-After``, instead of joining a queue that makes every answer slow.

On the gateways, the requests are fan-outs. Without a bound (their default,
``GATEWAY_MAX_IN_FLIGHT=0``) the sync gateway queues past its threadpool without limit, and
the async gateway takes every request and shares the CPU among them: both are accidents the
lab keeps visible, and this is the decision. On the upstreams, it keeps a flood of hung
callers from holding a source (``UPSTREAM_MAX_IN_FLIGHT``).
"""

import asyncio
import os
from dataclasses import dataclass

from pydantic import BaseModel
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

# Only /news is admitted: /healthz must answer while the service is full.
ADMITTED_PREFIX = "/news"


class Overloaded(BaseModel):
    """The 503 a worker answers past its overload bound."""

    detail: str
    worker_pid: int


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    max_in_flight: int  # per worker; 0: no bound
    queue_timeout_s: float  # how long a request may wait for a slot
    retry_after_s: int  # what the 503 tells the client
    admitted: str = "fan-outs"  # what a slot holds, for the 503's detail


class AdmissionLimit:
    """Pure ASGI middleware: a semaphore of ``max_in_flight`` slots around every fan-out."""

    def __init__(self, app: ASGIApp, policy: AdmissionPolicy) -> None:
        self.app = app
        self.policy = policy
        self.slots = asyncio.Semaphore(policy.max_in_flight)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        admitted = scope["type"] == "http" and scope["path"].startswith(ADMITTED_PREFIX)
        if not admitted or self.policy.max_in_flight == 0:
            await self.app(scope, receive, send)
            return
        if not await self._acquire():
            await self._refuse(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.slots.release()

    async def _acquire(self) -> bool:
        # A free slot is taken without awaiting, so a zero wait still admits it.
        if not self.slots.locked():
            return await self.slots.acquire()
        try:
            async with asyncio.timeout(self.policy.queue_timeout_s):
                return await self.slots.acquire()
        except TimeoutError:
            return False

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        policy = self.policy
        detail = (
            f"overloaded: {policy.max_in_flight} {policy.admitted} in flight on this worker and no "
            f"slot freed within {policy.queue_timeout_s * 1000:g} ms; "
            f"retry after {policy.retry_after_s} s"
        )
        response = JSONResponse(
            Overloaded(detail=detail, worker_pid=os.getpid()).model_dump(),
            status_code=503,
            headers={"Retry-After": str(policy.retry_after_s)},
        )
        await response(scope, receive, send)
