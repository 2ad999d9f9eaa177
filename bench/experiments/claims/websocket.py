"""The post's "must use async def for WebSocket communication": the async gateway's
/ws/news, each source's result sent as it arrives, one stream alone and many at once."""

import asyncio
import statistics
import time
from dataclasses import dataclass

import aiohttp

from bench.experiments.claims.lab import Lab, wait_until_settled
from bench.experiments.claims.model import Claim, Claims

# Streams open at once on the one worker: well past the sync gateway's 40 tokens.
AT_ONCE = 100
REPEATS = 5


@dataclass(frozen=True)
class Stream:
    """One stream's arrivals, seconds from its opening: each source's, then the whole."""

    sources: dict[str, float]
    whole: float
    ok: bool


async def _stream(session: aiohttp.ClientSession, url: str) -> Stream:
    started = time.perf_counter()
    sources: dict[str, float] = {}
    whole, ok = float("nan"), False
    async with session.ws_connect(url) as websocket:
        async for message in websocket:
            body = message.json()
            if body.get("event") == "source":
                sources[body["result"]["name"]] = time.perf_counter() - started
            else:
                whole, ok = time.perf_counter() - started, not body["partial"]
    return Stream(sources, whole, ok and len(sources) > 0)


async def _streams(url: str, count: int) -> list[Stream]:
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        return list(await asyncio.gather(*(_stream(session, url) for _ in range(count))))


def streams(base: str, count: int) -> list[Stream]:
    wait_until_settled(base)
    return asyncio.run(_streams(f"{base.replace('http', 'ws', 1)}/ws/news", count))


def websocket(lab: Lab, claims: Claims, delays_s: dict[str, float]) -> None:
    lab.on_step(f"/ws/news: one stream, then {AT_ONCE} at once")
    alone = [streams(lab.async_base, 1)[0] for _ in range(REPEATS)]
    crowd = streams(lab.async_base, AT_ONCE)
    fastest, slowest = min(delays_s.values()), max(delays_s.values())
    first = statistics.median(min(s.sources.values()) for s in alone)
    whole = statistics.median(s.whole for s in alone)
    crowd_whole = statistics.median(s.whole for s in crowd)
    # The order a reader sees: fastest source first, as the delays say.
    in_order = all(list(s.sources) == sorted(delays_s, key=delays_s.__getitem__) for s in alone)
    answered = sum(s.ok for s in crowd)
    claims.figures["websocket"] = {
        "first_ms": round(first * 1000, 1),
        "whole_ms": round(whole * 1000, 1),
        "at_once": AT_ONCE,
        "at_once_answered": answered,
        "at_once_whole_ms": round(crowd_whole * 1000, 1),
        "in_order": in_order,
    }
    holds = (
        first / fastest < 1.5 and in_order and answered == AT_ONCE and crowd_whole / slowest < 1.5
    )
    claims.rows.append(
        Claim(
            "websocket",
            "use async def for WebSocket communication",
            "When You Must Use async def",
            "async gateway, async def /ws/news: each source's result as it arrives",
            "the first result's arrival / the fastest source's delay",
            round(first / fastest, 2),
            1.0,
            "holds" if holds else "does not hold",
            f"alone: the first source at {first * 1000:.0f} ms (fastest delay"
            f" {fastest * 1000:.0f} ms), the whole answer at {whole * 1000:.0f} ms (slowest"
            f" {slowest * 1000:.0f} ms), sources {'in' if in_order else 'out of'} the order"
            f" of their delays; {AT_ONCE} streams at once: {answered} of {AT_ONCE} whole, a"
            f" median {crowd_whole * 1000:.0f} ms. A stream waits on the loop, holding no"
            " thread; FastAPI awaits a WebSocket route, so a def one fails at its first"
            " connection",
            "python -m bench claims",
        )
    )
