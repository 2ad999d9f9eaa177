"""What each gateway and mode could do at best: the ideal lines every plot is drawn against.

With per-source delays d, a fan-out costs sum(d) done one after another, max(d) overlapped.
A gateway holds at most `slots` fan-outs in flight; past that, requests queue. So at
concurrency C: throughput = min(C, slots) / cost (Little's law), and a closed-loop client
waits cost x max(1, C / slots).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One gateway endpoint and mode, as the benchmark drives it."""

    name: str
    gateway: str  # "sync" or "async"
    path: str
    params: tuple[tuple[str, str], ...]
    overlapped: bool  # True: a fan-out costs max(d); False: sum(d)
    description: str

    def slots(self, workers: int, threadpool_tokens: int) -> float:
        """How many fan-outs the gateway can hold in flight at once."""
        if self.gateway == "sync":
            return workers * threadpool_tokens  # one threadpool token per request
        if self.name == "blocking":
            return workers  # the event loop is stuck: one request per worker
        return math.inf  # awaiting costs no thread; only the CPU limits it


TARGETS = (
    Target("sync", "sync", "/news", (), False, "def route, requests, one call after another"),
    Target("sync-threads", "sync", "/news", (("mode", "threads"),), True, "def route, thread pool"),
    Target("async", "async", "/news", (), True, "async def route, httpx, asyncio.gather"),
    Target(
        "async-sequential",
        "async",
        "/news",
        (("mode", "sequential"),),
        False,
        "async def route, awaited one by one",
    ),
    Target("blocking", "async", "/news/blocking", (), False, "async def route, blocking requests"),
)
TARGETS_BY_NAME = {target.name: target for target in TARGETS}


@dataclass(frozen=True)
class Ideal:
    throughput: float  # requests per second
    latency_s: float  # what a closed-loop client waits, queueing included


def fan_out_cost(delays_s: Sequence[float], overlapped: bool) -> float:
    if not delays_s:
        raise ValueError("at least one source delay is needed")
    return max(delays_s) if overlapped else sum(delays_s)


def ideal(
    target: Target,
    concurrency: int,
    workers: int,
    delays_s: Sequence[float],
    threadpool_tokens: int,
) -> Ideal:
    """The best a closed loop of `concurrency` clients can see from this target."""
    if concurrency < 1 or workers < 1:
        raise ValueError("concurrency and workers must be at least 1")
    cost = fan_out_cost(delays_s, target.overlapped)
    slots = target.slots(workers, threadpool_tokens)
    in_flight = min(concurrency, slots)
    return Ideal(throughput=in_flight / cost, latency_s=cost * max(1.0, concurrency / slots))
