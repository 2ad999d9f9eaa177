"""Faults an upstream can inject, and the latency it draws: every kind a gateway must survive.

Each instance has a fault and a rate from its settings; a request can force one with
``?fault=``. Durations (a hang, a dripping body) come only from the instance's bounded
settings, never from a request. One seeded generator per worker draws every delay and
every fault, so a run is reproducible request by request.
"""

import asyncio
import math
import random
from collections.abc import AsyncIterator

from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from core.news import FaultKind
from upstream.config import UpstreamSettings

ERROR_STATUSES = (500, 503)
DRIP_CHUNKS = 10


class Draws:
    """The one seeded source of chance for an upstream worker."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        # Seeded by name too, so sources sharing a seed still draw their own sequences.
        self.rng = random.Random(f"{settings.seed}:{settings.name}")

    def delay_ms(self) -> int:
        """The base delay, shaped by the latency model, a rare spike, then jitter."""
        s, rng = self.settings, self.rng
        delay = float(s.delay_ms)
        if s.latency == "lognormal":
            # Median delay_ms: half the answers come faster, and the tail is long.
            delay *= math.exp(s.latency_sigma * rng.gauss(0.0, 1.0))
        if s.spike_rate and rng.random() < s.spike_rate:
            delay *= s.spike_factor
        delay += rng.randint(0, s.jitter_ms)
        return min(round(delay), s.max_delay_ms)

    def fault(self, forced: FaultKind | None) -> FaultKind | None:
        if forced is not None:
            return forced
        s = self.settings
        if s.fault is not None and s.fault_rate and self.rng.random() < s.fault_rate:
            return s.fault
        return None

    def error_status(self) -> int:
        return self.rng.choice(ERROR_STATUSES)


class ResetResponse(Response):
    """Headers and half the body, then the connection closes: a reset mid-response.

    ASGI has no message to drop a connection, so the app raises once it has sent part of
    the promised body, and the server closes the socket.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        raise ConnectionResetError("injected fault: connection reset mid-response")


async def drip(body: bytes, seconds: float) -> AsyncIterator[bytes]:
    """The body in equal chunks, spread over `seconds`: headers first, then a trickle."""
    size = math.ceil(len(body) / DRIP_CHUNKS)
    for start in range(0, len(body), size):
        await asyncio.sleep(seconds / DRIP_CHUNKS)
        yield body[start : start + size]


async def faulty_response(
    fault: FaultKind, body: bytes, headers: dict[str, str], draws: Draws
) -> Response:
    """The answer `fault` makes of a good body, once the normal delay has passed."""
    settings = draws.settings
    if fault == "error":
        status = draws.error_status()
        return JSONResponse({"error": f"injected fault: HTTP {status}"}, status, headers)
    if fault == "hang":
        await asyncio.sleep(settings.hang_ms / 1000)
        return Response(body, media_type="application/json", headers=headers)
    if fault == "slow-body":
        stream = drip(body, settings.drip_ms / 1000)
        return StreamingResponse(stream, media_type="application/json", headers=headers)
    if fault == "malformed-json":
        return Response(body[: len(body) // 2], media_type="application/json", headers=headers)
    if fault == "wrong-shape":
        return JSONResponse({"items": [], "note": "injected fault: wrong shape"}, 200, headers)
    return ResetResponse(body, media_type="application/json", headers=headers)
