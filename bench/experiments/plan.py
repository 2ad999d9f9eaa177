"""What the matrix runs: its presets, the points each one plans, and the load each point
sends. Nothing here touches the stack; bench/experiments/compare.py runs the plan against one.
"""

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import get_args

from bench.harness.load import LoadSpec
from bench.harness.stack import GatewayName
from core.theory import (
    TARGETS,
    TARGETS_BY_NAME,
    GatewayLimits,
    Ideal,
    Target,
    fan_out_cost,
    ideal,
    overload_ideal,
)
from gateway.config import AsyncClientName
from gateway.models import GatewayHealth
from serving.settings import SERVERS

ASYNC_CLIENTS: tuple[str, ...] = get_args(AsyncClientName)


@dataclass(frozen=True)
class GatewayConfig:
    """What the matrix may change on one gateway, by recreating its container."""

    gateway: GatewayName
    workers: int
    threadpool_tokens: int
    http_client: str
    max_connections: int
    max_keepalive_connections: int
    max_in_flight: int = 0  # the overload bound per worker; 0: none
    replicas: int = 1  # on a swarm: the gateway's replicas, each of `workers` workers
    server: str = "gunicorn"  # SERVER: what runs the workers (serving/serve.py)

    @classmethod
    def running(cls, info: GatewayHealth) -> "GatewayConfig":
        return cls(
            info.gateway,
            info.workers,
            info.threadpool_tokens,
            info.http_client,
            info.max_connections,
            info.max_keepalive_connections,
            info.max_in_flight,
            server=info.server,
        )

    def env(self) -> dict[str, str]:
        """The compose variables that start this gateway with this config."""
        if self.gateway == "sync":
            return {
                "SERVER": self.server,
                "SYNC_WORKERS": str(self.workers),
                "SYNC_THREADPOOL_TOKENS": str(self.threadpool_tokens),
                "SYNC_MAX_IN_FLIGHT": str(self.max_in_flight),
            }
        return {
            "SERVER": self.server,
            "ASYNC_WORKERS": str(self.workers),
            "ASYNC_HTTP_CLIENT": self.http_client,
            "ASYNC_MAX_CONNECTIONS": str(self.max_connections),
            "ASYNC_MAX_KEEPALIVE_CONNECTIONS": str(self.max_keepalive_connections),
            "ASYNC_MAX_IN_FLIGHT": str(self.max_in_flight),
        }

    def describe(self) -> str:
        bound = f", at most {self.max_in_flight} in flight" if self.max_in_flight else ""
        if self.gateway == "sync":
            tokens = f"{self.workers} worker(s), {self.threadpool_tokens} threadpool tokens"
            return tokens + bound
        return f"{self.workers} worker(s), {self.http_client}, {self.server}{bound}"


@dataclass(frozen=True)
class Preset:
    # Every target at each of these, with each worker count, as the stack is configured.
    concurrency: tuple[int, ...]
    workers: tuple[int, ...]
    duration_s: float
    warmup_s: float
    # One worker serves /news/blocking one request at a time: at C=100 it would need
    # minutes just to drain its queue, so the matrix stops that endpoint earlier.
    blocking_max_concurrency: int
    # The async target with each client, one worker, at these concurrencies.
    clients: tuple[str, ...] = ()
    client_concurrency: tuple[int, ...] = ()
    # The async target under each server (SERVER), one worker, at these concurrencies; and
    # the sync one, whose `def` routes run in a threadpool that a server might change.
    servers: tuple[str, ...] = ()
    server_concurrency: tuple[int, ...] = ()
    sync_server_concurrency: tuple[int, ...] = ()
    # The sync target with each threadpool size, one worker, at these concurrencies.
    threadpool_tokens: tuple[int, ...] = ()
    token_concurrency: tuple[int, ...] = ()
    # The overload pair: the sync target, one worker, in an open loop at this multiple of
    # its capacity, without a bound and with one (max_in_flight = its tokens). 0: none.
    overload: float = 0.0


# An overload point's client never caps what is in flight: the gateway's queue is the point.
OPEN_LOOP_IN_FLIGHT = 5000

# A server keeps working on requests the client stopped waiting for. Before the next point
# on the same gateway, the client waits for its last answers, up to this long.
MAX_DRAIN_S = 30.0

# Arrivals at 4x what the sync gateway can serve: a queue that only grows, without a bound.
OVERLOAD = 4.0

PRESETS = {
    # About 3 minutes on 2 cores: every target at the three concurrencies the lesson turns
    # on, and the three async clients side by side.
    "quick": Preset(
        concurrency=(10, 100, 200),
        workers=(1,),
        duration_s=3,
        warmup_s=1,
        blocking_max_concurrency=10,
        clients=ASYNC_CLIENTS,
        client_concurrency=(10, 100, 200),
        servers=SERVERS,
        server_concurrency=(200,),
        sync_server_concurrency=(100,),
    ),
    "full": Preset(
        concurrency=(1, 10, 50, 100, 200),
        workers=(1, 2, 4),
        duration_s=10,
        warmup_s=3,
        blocking_max_concurrency=10,
        clients=ASYNC_CLIENTS,
        client_concurrency=(10, 100, 200, 400, 1000),
        servers=SERVERS,
        server_concurrency=(200, 400, 1000),
        sync_server_concurrency=(100, 200),
        threadpool_tokens=(40, 100, 200, 400),
        token_concurrency=(200, 400),
        overload=OVERLOAD,
    ),
    # Only the overload pair, about a minute: what a bound changes past capacity.
    "overload": Preset(
        concurrency=(),
        workers=(1,),
        duration_s=10,
        warmup_s=3,
        blocking_max_concurrency=0,
        overload=OVERLOAD,
    ),
}


@dataclass(frozen=True)
class Point:
    target: Target
    concurrency: int  # closed loop: clients; open loop: the most in flight at once
    config: GatewayConfig  # of the target's gateway
    # Open loop at this multiple of the target's capacity (an overload point); 0: closed.
    overload: float = 0.0


@dataclass(frozen=True)
class Axes:
    """The preset's axes as points, each gateway at its base configuration but the one
    setting the axis varies."""

    preset: Preset
    sync: GatewayConfig
    async_: GatewayConfig

    def base(self, gateway: GatewayName) -> GatewayConfig:
        return self.sync if gateway == "sync" else self.async_

    def targets_at(self, workers: int) -> Iterator[Point]:
        # The blocking endpoint goes last: its queue may outlive its window.
        preset = self.preset
        for target in TARGETS:
            config = replace(self.base(target.gateway), workers=workers)
            for concurrency in preset.concurrency:
                if target.name != "blocking" or concurrency <= preset.blocking_max_concurrency:
                    yield Point(target, concurrency, config)

    def clients(self) -> Iterator[Point]:
        for client in self.preset.clients:
            config = replace(self.async_, workers=1, http_client=client)
            for concurrency in self.preset.client_concurrency:
                yield Point(TARGETS_BY_NAME["async"], concurrency, config)

    def servers(self, gateway: GatewayName, concurrencies: tuple[int, ...]) -> Iterator[Point]:
        for server in self.preset.servers:
            config = replace(self.base(gateway), workers=1, server=server)
            for concurrency in concurrencies:
                yield Point(TARGETS_BY_NAME[gateway], concurrency, config)

    def threadpools(self) -> Iterator[Point]:
        for tokens in self.preset.threadpool_tokens:
            config = replace(self.sync, workers=1, threadpool_tokens=tokens)
            for concurrency in self.preset.token_concurrency:
                yield Point(TARGETS_BY_NAME["sync"], concurrency, config)

    def overload(self, bounded: bool) -> Iterator[Point]:
        if self.preset.overload <= 0:
            return
        bound = self.sync.threadpool_tokens if bounded else 0
        config = replace(self.sync, workers=1, max_in_flight=bound)
        yield Point(TARGETS_BY_NAME["sync"], OPEN_LOOP_IN_FLIGHT, config, self.preset.overload)


def plan(preset: Preset, sync: GatewayConfig, async_: GatewayConfig) -> list[Point]:
    """Every point, grouped so that each gateway restarts as rarely as possible.

    One worker first: every target, then the client axis and the async server axis, then the
    threadpool and sync server axes between the two overload points; then every target again
    with each further worker count.
    """
    axes = Axes(preset, sync, async_)
    ordered = [
        *(axes.targets_at(1) if 1 in preset.workers else ()),
        *axes.clients(),
        *axes.servers("async", preset.server_concurrency),
        # Unbounded while the sync gateway still runs as the stack does, bounded after the
        # threadpool sweep: one restart for the pair.
        *axes.overload(bounded=False),
        *axes.threadpools(),
        *axes.servers("sync", preset.sync_server_concurrency),
        *axes.overload(bounded=True),
        *(p for workers in preset.workers if workers != 1 for p in axes.targets_at(workers)),
    ]
    return list(dict.fromkeys(ordered))  # a point two axes share runs once


def whole_cycles(duration_s: float, target: Target, delays_s: list[float]) -> float:
    """The window nearest `duration_s` that holds a whole number of fan-outs, at least two.

    A closed loop at a steady delay answers in rounds, one per fan-out per busy slot. A
    window that cuts a round in two counts it whole or not at all: at 1.6 s a fan-out, a
    4 s window was up to 15% off. A window of whole rounds counts every round exactly.
    """
    cycle = fan_out_cost(delays_s, target.overlapped)
    return cycle * max(2, round(duration_s / cycle))


def load_spec(
    point: Point,
    urls: list[str],
    best: Ideal,
    preset: Preset,
    delays: list[float],
    drain: bool,
) -> LoadSpec:
    """A closed loop of C clients, or an overload point's open loop at its multiple of
    the capacity, against the target on every URL given (a gateway's replicas)."""
    url, *replica_urls = (base + point.target.path for base in urls)
    drain_s = MAX_DRAIN_S if drain else 0.0
    params = dict(point.target.params)
    if point.overload > 0:
        return LoadSpec(
            url=url,
            replica_urls=tuple(replica_urls),
            params=params,
            loop="open",
            concurrency=point.concurrency,
            rate=point.overload * best.throughput,
            duration_s=preset.duration_s,
            warmup_s=preset.warmup_s,
            drain_s=drain_s,
        )
    return LoadSpec(
        url=url,
        replica_urls=tuple(replica_urls),
        params=params,
        concurrency=point.concurrency,
        duration_s=whole_cycles(preset.duration_s, point.target, delays),
        # Long enough for a queue to fill, where there is one (up to a window).
        warmup_s=min(max(preset.warmup_s, best.latency_s), preset.duration_s),
        drain_s=drain_s,
    )


def needs_drain(point: Point, following: Point | None) -> bool:
    """Whether to wait for this point's last answers before the next point starts.

    Both gateways share the machine's cores: a queue left on one would slow the other's
    next point. Only a restart of this same gateway ends that work sooner.
    """
    if following is None:
        return False
    restarts_this_gateway = (
        following.target.gateway == point.target.gateway and following.config != point.config
    )
    return not restarts_this_gateway


def label(point: Point, stack_tokens: int, stack_server: str = "gunicorn") -> str:
    """The point's series: the target, with the client of the async target, the threadpool
    size of a sync point that runs another one than the stack, and the server when another
    one than the stack's."""
    server = point.config.server
    series = _series(point, stack_tokens)
    return series if server == stack_server else f"{series} · {server}"


def _series(point: Point, stack_tokens: int) -> str:
    if point.target.name == "async":
        return f"async · {point.config.http_client}"
    if point.overload > 0:
        bound = point.config.max_in_flight
        capacity = f"sync · {point.overload:g}x capacity"
        return f"{capacity}, bound {bound}" if bound else f"{capacity}, no bound"
    if point.target.name == "sync" and point.config.threadpool_tokens != stack_tokens:
        return f"sync · {point.config.threadpool_tokens} tokens"
    return point.target.name


@dataclass(frozen=True)
class PointRun:
    """What one point runs with: its gateway's caps, the best it can do, and its load."""

    limits: GatewayLimits
    best: Ideal
    spec: LoadSpec


def prepare(
    point: Point,
    health: GatewayHealth,
    preset: Preset,
    delays: list[float],
    urls: list[str],
    drain: bool,
    processes: int | None = None,
) -> PointRun:
    """The point's caps as its gateway reports them (every per-worker cap once per process,
    when `processes` says how many a swarm's replicas run), its ideal, and its load."""
    limits = GatewayLimits.reported(health)
    if processes is not None:
        limits = replace(limits, workers=processes)
    if point.overload > 0:
        best = overload_ideal(point.target, limits, delays, OPEN_LOOP_IN_FLIGHT)
    else:
        best = ideal(point.target, point.concurrency, limits, delays)
    return PointRun(limits, best, load_spec(point, urls, best, preset, delays, drain))
