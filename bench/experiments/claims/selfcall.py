"""The post's ``/kkblogs``, which calls its own server: harmless in ``async def``, a
deadlock in ``def`` once every threadpool token waits on the worker itself."""

import asyncio
import statistics
import time
from dataclasses import dataclass

import aiohttp

from bench.experiments.claims.lab import Lab, wait_until_settled
from bench.experiments.claims.model import Claim, Claims

# The post's test1 and test2 sleep 3 s and 4 s; a tenth as long here.
SELF_CALL_MS = (300, 400)
# What the sync gateway's 504 says when the deadlock is the cause (gateway/selfcall.py).
EXHAUSTED = "threadpool exhausted"


@dataclass(frozen=True)
class Burst:
    """K requests sent together: how each ended."""

    at_once: int
    ok: int
    exhausted: int  # 504s that name the threadpool
    other_failures: int
    median_s: float
    fastest_s: float
    slowest_s: float

    @property
    def figures(self) -> dict[str, float]:
        return {
            "at_once": self.at_once,
            "ok": self.ok,
            "exhausted": self.exhausted,
            "other_failures": self.other_failures,
            "median_s": round(self.median_s, 3),
            "fastest_s": round(self.fastest_s, 3),
            "slowest_s": round(self.slowest_s, 3),
        }


async def _burst(url: str, at_once: int, timeout_s: float) -> Burst:
    """`at_once` requests on their own connections, sent together."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> tuple[int, float, str]:
            started = time.perf_counter()
            async with session.get(url) as response:
                body = await response.text()
                return response.status, time.perf_counter() - started, body

        ended = await asyncio.gather(*(one() for _ in range(at_once)))
    times = [seconds for _, seconds, _ in ended]
    ok = sum(status == 200 for status, _, _ in ended)
    exhausted = sum(status == 504 and EXHAUSTED in body for status, _, body in ended)
    return Burst(
        at_once,
        ok,
        exhausted,
        at_once - ok - exhausted,
        statistics.median(times),
        min(times),
        max(times),
    )


def burst(base: str, at_once: int, timeout_s: float) -> Burst:
    wait_until_settled(base)
    query = "&".join(f"ms={ms}" for ms in SELF_CALL_MS)
    return asyncio.run(_burst(f"{base}/kkblogs?{query}", at_once, timeout_s))


def self_call(lab: Lab, claims: Claims) -> None:
    lab.on_step("/kkblogs: a route that calls its own server, below and above the tokens")
    health = lab.stack.health("sync")
    tokens, deadline_s = health.threadpool_tokens, health.deadline_ms / 1000
    # A request the deadline did not cut would outlast this by far: a hang, not a 504.
    timeout_s = 5 * deadline_s
    # Twice the tokens: the first ones to arrive may finish before the rest take every
    # token (a /kkblogs whose calls got theirs first), but the rest cannot.
    below, above = max(1, tokens // 2), 2 * tokens
    sync = {k: burst(lab.sync_base, k, timeout_s) for k in (below, above)}
    # The async route holds no token: as many at once change nothing.
    async_ = {k: burst(lab.async_base, k, timeout_s) for k in (below, tokens, above)}
    total_s, longest_s = sum(SELF_CALL_MS) / 1000, max(SELF_CALL_MS) / 1000
    claims.figures["self_call"] = {
        "sleeps_ms": list(SELF_CALL_MS),
        "tokens": tokens,
        "deadline_s": deadline_s,
        "sync": [b.figures for b in sync.values()],
        "async": [b.figures for b in async_.values()],
    }
    claims.rows += [
        async_row(list(async_.values()), longest_s),
        sync_row(sync[below], sync[above], tokens, total_s, deadline_s),
    ]


def async_row(bursts: list[Burst], longest_s: float) -> Claim:
    biggest = bursts[-1]
    text = "; ".join(
        f"{b.at_once} at once: {b.ok} of {b.at_once} answered, median {b.median_s * 1000:.0f} ms"
        for b in bursts
    )
    all_ok = all(b.ok == b.at_once for b in bursts)
    near_max = all(b.median_s / longest_s < 1.5 for b in bursts)
    return Claim(
        "kkblogs",
        "/kkblogs: asyncio.gather over calls to its own server (localhost:8000/test1, /test2)",
        "Concurrent External API Calls in FastAPI",
        f"async gateway, async def /kkblogs?ms={SELF_CALL_MS[0]}&ms={SELF_CALL_MS[1]}"
        " calling its own /right, one worker",
        f"median latency, {biggest.at_once} at once / max of the sleeps",
        round(biggest.median_s / longest_s, 2),
        1.0,
        "holds" if all_ok and near_max else "does not hold",
        f"{text}; max of the sleeps: {longest_s * 1000:.0f} ms. The calls and the routes"
        " they reach wait on one event loop, so no count of them runs out of anything",
        "python -m bench claims",
    )


def sync_row(below: Burst, above: Burst, tokens: int, total_s: float, deadline_s: float) -> Claim:
    answered = below.ok == below.at_once and below.median_s / total_s < 1.5
    # At least a token's worth cut by the deadline and said so, nothing else failed, and
    # none past three deadlines (those that queued for a token deadlock in turn): no hang.
    cut = (
        above.exhausted >= tokens and above.other_failures == 0 and above.slowest_s < 3 * deadline_s
    )
    return Claim(
        "kkblogs_def",
        "(not in the post) the same self-call from a def route: it deadlocks once every"
        " threadpool token waits on its own worker",
        "Concurrent External API Calls in FastAPI",
        f"sync gateway, def /kkblogs calling its own def /sync_func, one worker, {tokens} tokens",
        f"{above.at_once} at once: the first 504 / the deadline",
        round(above.fastest_s / deadline_s, 2),
        1.0,
        "holds" if answered and cut else "does not hold",
        f"{below.at_once} at once: {below.ok} of {below.at_once} answered, median"
        f" {below.median_s * 1000:.0f} ms (the sum of the sleeps: {total_s * 1000:.0f} ms);"
        f' {above.at_once} at once: {above.exhausted} answered 504 "{EXHAUSTED}", the first'
        f" at {above.fastest_s:.2f} s and the last at {above.slowest_s:.2f} s (deadline"
        f" {deadline_s:g} s: those that queued for a token deadlock in turn), {above.ok}"
        f" answered 200, {above.other_failures} failed otherwise. Each /kkblogs holds a token"
        " while its /sync_func waits for one: once every token is held by one, it breaks,"
        " and only the deadline ends it",
        "python -m bench claims",
    )
