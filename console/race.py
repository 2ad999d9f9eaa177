"""A race: K requests sent at once to each gateway, from inside the stack, every answer
streamed as it arrives, then each side's numbers beside its ideal (core/theory.py).

The console sends the load, not the browser: a browser opens at most 6 connections to a
host, which would queue the requests in the browser and hide what the gateways do.
"""

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from console.config import ConsoleSettings
from core.percentiles import percentile
from core.theory import TARGETS_BY_NAME, GatewayLimits, Target, ideal
from gateway.models import GatewayHealth

Side = Literal["sync", "async"]
SIDES: tuple[Side, ...] = ("sync", "async")
SyncRoute = Literal["sequential", "threads"]
AsyncRoute = Literal["concurrent", "sequential", "blocking", "per-call"]

# The blog post's fetch_data: a new client per call (the async gateway's ?client=per-call).
PER_CALL = Target(
    "async-per-call",
    "async",
    "/news",
    (("client", "per-call"),),
    True,
    "async def route, a new httpx.AsyncClient per call",
)
ROUTES: dict[tuple[Side, str], Target] = {
    ("sync", "sequential"): TARGETS_BY_NAME["sync"],
    ("sync", "threads"): TARGETS_BY_NAME["sync-threads"],
    ("async", "concurrent"): TARGETS_BY_NAME["async"],
    ("async", "sequential"): TARGETS_BY_NAME["async-sequential"],
    ("async", "blocking"): TARGETS_BY_NAME["blocking"],
    ("async", "per-call"): PER_CALL,
}
# Fan-outs whose median gives each source's delay at rest, before a race.
CALIBRATION_FAN_OUTS = 3
# The live gauges read from each gateway's /metrics during a race.
GAUGES = {
    "http_requests_in_flight": "in_flight",
    "threadpool_tokens_in_use": "tokens_in_use",
    "event_loop_lag_seconds_sum": "loop_lag_s",
}


@dataclass(frozen=True)
class RacePlan:
    """What one race sends: K requests per side, each side's route, the shared levers."""

    requests: int
    sync_route: SyncRoute
    async_route: AsyncRoute
    fault: str | None = None
    deadline_ms: int | None = None
    sources: str | None = None  # the gateways' ?sources=: the archive is opt-in there too

    def target(self, side: Side) -> Target:
        return ROUTES[(side, self.sync_route if side == "sync" else self.async_route)]

    def params(self, side: Side) -> dict[str, str]:
        params = dict(self.target(side).params)
        if self.sources:
            params["sources"] = self.sources
        if self.fault:
            params["fault"] = self.fault
        if self.deadline_ms:
            params["deadline_ms"] = str(self.deadline_ms)
        return params


class SourceBar(BaseModel):
    name: str
    ok: bool
    started_ms: float
    elapsed_ms: float
    error_kind: str | None


class Answer(BaseModel):
    """One request of the race, as the console saw it and as the gateway reported it."""

    side: Side
    index: int
    sent_ms: float  # from the race's start
    received_ms: float
    status: int | None  # None: no answer at all (the error says why)
    gateway_elapsed_ms: float | None  # the gateway's own fan-out time
    partial: bool
    worker_pid: int | None
    sources: list[SourceBar]
    error: str | None = None


class Gauges(BaseModel):
    side: Side
    at_ms: float
    in_flight: float | None
    tokens_in_use: float | None
    loop_lag_s: float | None


class RaceStart(BaseModel):
    requests: int
    routes: dict[Side, str]
    paths: dict[Side, str]
    gateways: dict[Side, GatewayHealth]
    # Each source's delay as the async gateway measured it at rest, just before the race.
    delays_ms: dict[str, float]
    # The last answer's wait at best, for each side (core/theory.py), and what sets it.
    ideal_ms: dict[Side, float]
    ideal_binding: dict[Side, str]


class SideSummary(BaseModel):
    side: Side
    answered: int  # 2xx answers
    failed: int  # anything else, no answer included
    wall_ms: float  # the race's start to this side's last answer
    throughput: float  # answered per second of wall time
    p50_ms: float
    p99_ms: float
    ideal_ms: float  # the last answer's wait at best (core/theory.py's ideal latency)
    ideal_binding: str  # the cap that sets it


class RaceSummary(BaseModel):
    sides: list[SideSummary]


def summarise(side: Side, answers: list[Answer], ideal_s: float, binding: str) -> SideSummary:
    answered = [a for a in answers if a.status is not None and 200 <= a.status < 300]
    latencies = [a.received_ms - a.sent_ms for a in answers if a.status is not None]
    wall_ms = max((a.received_ms for a in answers), default=0.0)
    return SideSummary(
        side=side,
        answered=len(answered),
        failed=len(answers) - len(answered),
        wall_ms=round(wall_ms, 1),
        throughput=round(len(answered) / (wall_ms / 1000), 2) if wall_ms else 0.0,
        p50_ms=round(percentile(latencies, 50), 1),
        p99_ms=round(percentile(latencies, 99), 1),
        ideal_ms=round(ideal_s * 1000, 1),
        ideal_binding=binding,
    )


def answer_of(
    side: Side,
    index: int,
    sent: float,
    t0: float,
    status: int | None,
    body: Any,
    error: str | None = None,
) -> Answer:
    """The answer's fields the page draws; a body that is not the contract draws nothing,
    and no answer at all (status None) says why in `error`."""
    received_ms = (time.perf_counter() - t0) * 1000
    fields = body if isinstance(body, dict) else {}
    sources = [
        SourceBar.model_validate(source)
        for source in fields.get("sources", [])
        if isinstance(source, dict)
    ]
    return Answer(
        side=side,
        index=index,
        sent_ms=round((sent - t0) * 1000, 1),
        received_ms=round(received_ms, 1),
        status=status,
        gateway_elapsed_ms=fields.get("elapsed_ms"),
        partial=bool(fields.get("partial", False)),
        worker_pid=fields.get("worker_pid"),
        sources=sources,
        error=error,
    )


@dataclass
class Race:
    """One race's requests and gauges, on the console's shared HTTP session."""

    plan: RacePlan
    settings: ConsoleSettings
    session: aiohttp.ClientSession

    def base(self, side: Side) -> str:
        url = self.settings.sync_url if side == "sync" else self.settings.async_url
        return str(url).rstrip("/")

    async def get_json(self, url: str, params: dict[str, str] | None = None) -> Any:
        async with self.session.get(url, params=params) as response:
            response.raise_for_status()
            return await response.json()

    async def view(self, side: Side) -> GatewayHealth:
        return GatewayHealth.model_validate(await self.get_json(f"{self.base(side)}/healthz"))

    async def delays_ms(self) -> dict[str, float]:
        """Each source's delay at rest, as the async gateway measures it: the median of
        CALIBRATION_FAN_OUTS overlapped fan-outs, after one that warms the connections (a
        cold one also counts the connects, and made the ideal lines too long)."""
        url = f"{self.base('async')}/news"
        # The race's own sources, the archive among them when it asks for it.
        params = {"sources": self.plan.sources} if self.plan.sources else None
        await self.get_json(url, params)
        bodies = await asyncio.gather(
            *(self.get_json(url, params) for _ in range(CALIBRATION_FAN_OUTS))
        )
        timings: dict[str, list[float]] = {}
        for body in bodies:
            for source in body["sources"]:
                timings.setdefault(source["name"], []).append(source["elapsed_ms"])
        return {name: statistics.median(values) for name, values in timings.items()}

    async def one(self, side: Side, index: int, t0: float, queue: asyncio.Queue[Any]) -> None:
        target, sent = self.plan.target(side), time.perf_counter()
        try:
            # A new connection per request, so each gateway worker may take any of them.
            async with self.session.get(
                f"{self.base(side)}{target.path}",
                params=self.plan.params(side),
                headers={"Connection": "close"},
            ) as response:
                body = await response.json(content_type=None)
                await queue.put(answer_of(side, index, sent, t0, response.status, body))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
            await queue.put(answer_of(side, index, sent, t0, None, None, error))

    async def gauges(self, t0: float, queue: asyncio.Queue[Any]) -> None:
        """Both gateways' live gauges, every interval, until cancelled."""
        while True:
            for side in SIDES:
                found: dict[str, float | None] = dict.fromkeys(GAUGES.values())
                try:
                    async with self.session.get(f"{self.base(side)}/metrics") as response:
                        text = await response.text() if response.status == 200 else ""
                except (aiohttp.ClientError, TimeoutError):
                    text = ""
                for family in text_string_to_metric_families(text):
                    for sample in family.samples:
                        if sample.name in GAUGES:
                            key = GAUGES[sample.name]
                            found[key] = (found[key] or 0.0) + sample.value
                at_ms = round((time.perf_counter() - t0) * 1000, 1)
                await queue.put(Gauges(side=side, at_ms=at_ms, **found))
            await asyncio.sleep(self.settings.gauge_interval_s)

    async def events(self) -> AsyncIterator[tuple[str, BaseModel]]:
        """("start", RaceStart), then ("answer", Answer) and ("gauges", Gauges) as they come,
        then ("summary", RaceSummary). Every request is sent at once, within the bound."""
        views = {side: await self.view(side) for side in SIDES}
        delays = await self.delays_ms()
        plan, delays_s = self.plan, [ms / 1000 for ms in delays.values()]
        best = {
            side: ideal(
                plan.target(side), plan.requests, GatewayLimits.reported(views[side]), delays_s
            )
            for side in SIDES
        }
        start = RaceStart(
            requests=plan.requests,
            routes={"sync": plan.sync_route, "async": plan.async_route},
            paths={side: plan.target(side).path for side in SIDES},
            gateways=views,
            delays_ms=delays,
            ideal_ms={side: round(best[side].latency_s * 1000, 1) for side in SIDES},
            ideal_binding={side: best[side].binding for side in SIDES},
        )
        yield "start", start
        queue: asyncio.Queue[Any] = asyncio.Queue()
        t0 = time.perf_counter()
        sends = [
            asyncio.ensure_future(self.one(side, i, t0, queue))
            for side in SIDES
            for i in range(plan.requests)
        ]
        watcher = asyncio.ensure_future(self.gauges(t0, queue))
        answers: dict[Side, list[Answer]] = {side: [] for side in SIDES}
        try:
            async with asyncio.timeout(self.settings.race_timeout_s):
                while sum(map(len, answers.values())) < len(sends):
                    event = await queue.get()
                    if isinstance(event, Answer):
                        answers[event.side].append(event)
                        yield "answer", event
                    else:
                        yield "gauges", event
        except TimeoutError:
            pass  # the bound: what did not answer by then is counted as failed below
        finally:
            watcher.cancel()
            for send in sends:
                send.cancel()
        summaries = []
        for side in SIDES:
            lost = plan.requests - len(answers[side])
            summary = summarise(side, answers[side], best[side].latency_s, best[side].binding)
            summary.failed += lost
            summaries.append(summary)
        yield "summary", RaceSummary(sides=summaries)
