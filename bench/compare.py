"""The matrix, run against the compose stack: every target x concurrency x gunicorn workers,
plus two axes of one worker each: the async gateway's HTTP client, and the sync gateway's
threadpool. Each point is priced: the gateway workers' CPU and memory, the upstreams' CPU.

It restarts a gateway only when a point needs other settings than it runs, and at the end
puts both back exactly as their /healthz described them at the start.
"""

import functools
import json
import math
import os
import platform
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from pydantic import TypeAdapter

# pydantic validates a TypedDict from typing only on Python 3.12 and later.
from typing_extensions import TypedDict

from bench.load import LoadResult, LoadSpec, LoadSummary, run_load
from bench.probe import StackProbe, WindowCost, compose_probe
from bench.theory import (
    TARGETS,
    TARGETS_BY_NAME,
    GatewayLimits,
    Ideal,
    Target,
    cpu_line,
    fan_out_cost,
    ideal,
    machine_line,
)
from bench.topology import ROOT
from gateway.config import AsyncClientName
from serving.settings import SERVERS

GatewayName = Literal["sync", "async"]
GATEWAY_SERVICES: dict[GatewayName, str] = {"sync": "sync-gateway", "async": "async-gateway"}
UPSTREAM_SERVICES = ("upstream-wire", "upstream-gazette", "upstream-chronicle")
ASYNC_CLIENTS: tuple[str, ...] = get_args(AsyncClientName)


class Healthz(TypedDict):
    """A gateway's /healthz: the settings every ideal line is drawn from."""

    status: str
    gateway: GatewayName
    sources: list[str]
    http_client: str
    workers: int
    server: str
    threadpool_tokens: int
    executor_threads: int
    requests_pool_maxsize: int
    max_connections: int
    max_keepalive_connections: int
    max_in_flight: int


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
    def running(cls, info: Healthz) -> "GatewayConfig":
        return cls(
            info["gateway"],
            info["workers"],
            info["threadpool_tokens"],
            info["http_client"],
            info["max_connections"],
            info["max_keepalive_connections"],
            info["max_in_flight"],
            server=info["server"],
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


def plan(preset: Preset, sync: GatewayConfig, async_: GatewayConfig) -> list[Point]:
    """Every point, grouped so that each gateway restarts as rarely as possible.

    One worker first: every target, then the client axis and the async server axis, then the
    threadpool and sync server axes between the two overload points; then every target again
    with each further worker count.
    """
    base: dict[GatewayName, GatewayConfig] = {"sync": sync, "async": async_}

    def targets_at(workers: int) -> Iterator[Point]:
        # The blocking endpoint goes last: its queue may outlive its window.
        for target in TARGETS:
            config = replace(base[target.gateway], workers=workers)
            for concurrency in preset.concurrency:
                if target.name != "blocking" or concurrency <= preset.blocking_max_concurrency:
                    yield Point(target, concurrency, config)

    def clients() -> Iterator[Point]:
        for client in preset.clients:
            config = replace(async_, workers=1, http_client=client)
            for concurrency in preset.client_concurrency:
                yield Point(TARGETS_BY_NAME["async"], concurrency, config)

    def servers(target: GatewayName, concurrencies: tuple[int, ...]) -> Iterator[Point]:
        for server in preset.servers:
            config = replace(base[target], workers=1, server=server)
            for concurrency in concurrencies:
                yield Point(TARGETS_BY_NAME[target], concurrency, config)

    def threadpools() -> Iterator[Point]:
        for tokens in preset.threadpool_tokens:
            config = replace(sync, workers=1, threadpool_tokens=tokens)
            for concurrency in preset.token_concurrency:
                yield Point(TARGETS_BY_NAME["sync"], concurrency, config)

    def overload(bounded: bool) -> Iterator[Point]:
        if preset.overload <= 0:
            return
        bound = sync.threadpool_tokens if bounded else 0
        config = replace(sync, workers=1, max_in_flight=bound)
        yield Point(TARGETS_BY_NAME["sync"], OPEN_LOOP_IN_FLIGHT, config, preset.overload)

    ordered = [
        *(targets_at(1) if 1 in preset.workers else ()),
        *clients(),
        *servers("async", preset.server_concurrency),
        # Unbounded while the sync gateway still runs as the stack does, bounded after the
        # threadpool sweep: one restart for the pair.
        *overload(bounded=False),
        *threadpools(),
        *servers("sync", preset.sync_server_concurrency),
        *overload(bounded=True),
        *(p for workers in preset.workers if workers != 1 for p in targets_at(workers)),
    ]
    return list(dict.fromkeys(ordered))  # a point two axes share runs once


@dataclass
class Row:
    point: Point
    series: str  # what the plots and tables call it: see `label`
    limits: GatewayLimits
    result: LoadResult
    ideal: Ideal
    cost: WindowCost | None
    host_cores: int

    @property
    def target(self) -> Target:
        return self.point.target

    @property
    def workers(self) -> int:
        return self.point.config.workers

    @property
    def processes(self) -> int:
        """Worker processes serving the gateway: replicas x workers."""
        return self.point.config.replicas * self.workers

    @property
    def concurrency(self) -> int:
        return self.point.concurrency

    @property
    def client(self) -> str:
        return self.point.config.http_client if self.target.gateway == "async" else "requests"

    @property
    def sent(self) -> int:
        """Requests that ended in the window, answered or not."""
        return self.result.ok + sum(self.result.errors.values())

    @property
    def cpu_ms_per_request(self) -> float | None:
        if self.cost is None or self.result.ok == 0:
            return None
        return self.cost.gateway_cpu_s / self.result.ok * 1000

    @property
    def cpu_line(self) -> float:
        per_request = self.cpu_ms_per_request
        seconds = None if per_request is None else per_request / 1000
        return cpu_line(self.processes, self.host_cores, seconds)

    @property
    def machine_cpu_ms_per_request(self) -> float | None:
        """What one answer cost the machine: the gateway, the upstreams, the load client."""
        if self.cost is None or self.result.ok == 0 or self.result.window_s <= 0:
            return None
        window_s, cost = self.result.window_s, self.cost
        spent = cost.gateway_cpu_s + (cost.upstream_cpu_cores + self.result.client_cpu) * window_s
        return spent / self.result.ok * 1000

    @property
    def others_cpu_cores(self) -> float | None:
        """The cores busy in the window with anything but the gateway's workers, the
        upstreams and the load client: Docker's port proxy, the daemons, other tenants."""
        cost = self.cost
        if cost is None or cost.machine_busy_cores <= 0 or self.result.window_s <= 0:
            return None
        ours = cost.gateway_cpu_s / self.result.window_s + cost.upstream_cpu_cores
        return max(cost.machine_busy_cores - ours - self.result.client_cpu, 0.0)

    @property
    def machine_line(self) -> float:
        per_request, others = self.machine_cpu_ms_per_request, self.others_cpu_cores
        if per_request is None or others is None:
            return math.inf
        return machine_line(self.host_cores, others, per_request / 1000)

    @property
    def cpu_limit(self) -> str | None:
        """Which CPU ran out first, when one did: the gateway's workers or the machine."""
        lowest = min(self.cpu_line, self.machine_line)
        if lowest >= self.ideal.throughput:
            return None
        return "gateway CPU" if self.cpu_line <= self.machine_line else "machine CPU"

    @property
    def cpu_bound(self) -> bool:
        return self.cpu_limit is not None

    def record(self) -> "RowRecord":
        summary = self.result.summary()
        per_request, cost = self.cpu_ms_per_request, self.cost
        return {
            "target": self.target.name,
            "series": self.series,
            # A closed loop's clients, or an open loop's arrival rate.
            "load": f"{self.result.spec.rate:.0f}/s"
            if self.point.overload
            else str(self.concurrency),
            "client": self.client,
            "server": self.point.config.server,
            "replicas": self.point.config.replicas,
            "workers": self.workers,
            "threadpool_tokens": self.point.config.threadpool_tokens,
            "max_connections": self.point.config.max_connections,
            "max_in_flight": self.point.config.max_in_flight,
            **summary,
            "refused_share": round(summary["refused"] / max(1, self.sent), 3),
            "ideal_throughput": round(self.ideal.throughput, 2),
            "ideal_latency_ms": round(self.ideal.latency_s * 1000, 1),
            "ideal_cap": self.ideal.binding,
            "throughput_vs_ideal": round(self.result.throughput / self.ideal.throughput, 3),
            "p50_vs_ideal": round(summary["latency_p50_ms"] / (self.ideal.latency_s * 1000), 3),
            "gateway_cpu_ms_per_request": None if per_request is None else round(per_request, 2),
            "gateway_cpu_cores": None
            if cost is None
            else round(cost.gateway_cpu_s / self.result.window_s, 3),
            "peak_worker_rss_mib": None if cost is None else round(cost.peak_worker_rss_mib, 1),
            "peak_gateway_rss_mib": None if cost is None else round(cost.peak_gateway_rss_mib, 1),
            "upstream_cpu_cores": None if cost is None else round(cost.upstream_cpu_cores, 3),
            "busiest_upstream_cores": None
            if cost is None
            else round(cost.busiest_upstream_cores, 3),
            "cpu_line_throughput": None if per_request is None else round(self.cpu_line, 1),
            "machine_cpu_ms_per_request": _rounded(self.machine_cpu_ms_per_request, 2),
            "others_cpu_cores": _rounded(self.others_cpu_cores, 3),
            "machine_line_throughput": None
            if math.isinf(self.machine_line)
            else round(self.machine_line, 1),
            "cpu_limit": self.cpu_limit,
            # The cap column: the designed cap, and the CPU that ran out first, if one did.
            "cap": self.ideal.binding
            if self.cpu_limit is None
            else f"{self.ideal.binding}; {self.cpu_limit}",
            "cpu_bound": self.cpu_bound,
        }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class RowRecord(LoadSummary):
    """One matrix row, flat: its load run, the point, the ideal, and the cost."""

    target: str
    series: str
    load: str
    client: str
    server: str
    replicas: int
    workers: int
    threadpool_tokens: int
    max_connections: int
    max_in_flight: int
    refused_share: float
    ideal_throughput: float
    ideal_latency_ms: float
    ideal_cap: str
    throughput_vs_ideal: float
    p50_vs_ideal: float
    gateway_cpu_ms_per_request: float | None
    gateway_cpu_cores: float | None
    peak_worker_rss_mib: float | None
    peak_gateway_rss_mib: float | None
    upstream_cpu_cores: float | None
    busiest_upstream_cores: float | None
    cpu_line_throughput: float | None
    machine_cpu_ms_per_request: float | None
    others_cpu_cores: float | None
    machine_line_throughput: float | None
    cpu_limit: str | None
    cap: str
    cpu_bound: bool


@dataclass
class Comparison:
    preset_name: str
    delays_s: dict[str, float]
    stack: dict[GatewayName, GatewayConfig]
    rows: list[Row] = field(default_factory=list)
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)
    started_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    commit: str = field(default_factory=lambda: git_commit())
    probe_note: str | None = None  # why costs are missing, when they are

    def meta(self, command: str) -> "ReportMeta":
        sync, async_ = self.stack["sync"], self.stack["async"]
        return {
            "command": command,
            "preset": self.preset_name,
            "started_at": self.started_at,
            "commit": self.commit,
            "machine": machine_description(),
            "source_delays_ms": {k: round(v * 1000, 1) for k, v in self.delays_s.items()},
            "sync_workers": sync.workers,
            "threadpool_tokens": sync.threadpool_tokens,
            "async_workers": async_.workers,
            "async_http_client": async_.http_client,
            "server": async_.server,
            "async_max_connections": async_.max_connections,
            "probe": self.probe_note or "gateway workers' CPU and RSS, upstream containers' CPU",
        }


class ReportMeta(TypedDict):
    """What a report says about its run: the command, when, where, and the stack as found."""

    command: str
    preset: str
    started_at: str
    commit: str
    machine: str
    source_delays_ms: dict[str, float]
    sync_workers: int
    threadpool_tokens: int
    async_workers: int
    async_http_client: str
    server: str
    async_max_connections: int
    probe: str


def machine_description() -> str:
    cpus = os.cpu_count() or 0
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.system()} {platform.machine()}, {cpus} cores, {memory_gib:.0f} GiB"


def git_commit() -> str:
    result = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def get_json(url: str, timeout: float = 30) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: dict[str, Any] = json.load(response)
        return body


@functools.cache
def _healthz_schema() -> TypeAdapter[Healthz]:
    return TypeAdapter(Healthz)


def healthz(base: str) -> Healthz:
    """The gateway's /healthz, checked against the fields the matrix relies on."""
    return _healthz_schema().validate_python(get_json(f"{base}/healthz"))


def restart_gateway(config: GatewayConfig, **extra: str) -> None:
    """Recreate one gateway with this config (and any other compose variables), and wait
    until the stack is healthy."""
    env = {**os.environ, **config.env(), **extra}
    # -t 2: a worker stuck in /news/blocking is killed after 2 s instead of draining.
    # --no-deps: SERVER is every service's variable, and only this gateway may change.
    subprocess.run(
        [
            str(ROOT / "scripts" / "up.sh"),
            "--no-build",
            "-t",
            "2",
            "--no-deps",
            GATEWAY_SERVICES[config.gateway],
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )


def calibrate(async_base: str, repeats: int = 5) -> dict[str, float]:
    """Each source's delay as the gateway sees it at rest: the input to every ideal line."""
    get_json(f"{async_base}/news")  # warm the connections
    timings: dict[str, list[float]] = {}
    for _ in range(repeats):
        for source in get_json(f"{async_base}/news")["sources"]:
            timings.setdefault(source["name"], []).append(source["elapsed_ms"] / 1000)
    return {name: statistics.median(values) for name, values in timings.items()}


def whole_cycles(duration_s: float, target: Target, delays_s: list[float]) -> float:
    """The window nearest `duration_s` that holds a whole number of fan-outs, at least two.

    A closed loop at a steady delay answers in rounds, one per fan-out per busy slot. A
    window that cuts a round in two counts it whole or not at all: at 1.6 s a fan-out, a
    4 s window was up to 15% off. A window of whole rounds counts every round exactly.
    """
    cycle = fan_out_cost(delays_s, target.overlapped)
    return cycle * max(2, round(duration_s / cycle))


def limits_of(info: Healthz) -> GatewayLimits:
    return GatewayLimits(
        workers=info["workers"],
        threadpool_tokens=info["threadpool_tokens"],
        executor_threads=info["executor_threads"],
        max_connections=info["max_connections"],
        max_in_flight=info["max_in_flight"],
    )


def overload_ideal(target: Target, limits: GatewayLimits, delays_s: list[float]) -> Ideal:
    """What an open loop past capacity can get at best: the capacity, each admitted request
    served in one fan-out. The capacity is the lowest cap with every client admitted."""
    unlimited = ideal(target, OPEN_LOOP_IN_FLIGHT, limits, delays_s)
    return Ideal(unlimited.throughput, fan_out_cost(delays_s, target.overlapped), unlimited.binding)


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


def run_matrix(
    preset_name: str,
    sync_base: str,
    async_base: str,
    restart: bool = True,
    on_point: Callable[[str], None] = lambda _: None,
    project: str | None = None,
    on_plan: Callable[[int], None] = lambda _: None,
) -> Comparison:
    preset = PRESETS[preset_name]
    bases: dict[GatewayName, str] = {"sync": sync_base, "async": async_base}
    info = {gateway: healthz(base) for gateway, base in bases.items()}
    as_started = {gateway: GatewayConfig.running(i) for gateway, i in info.items()}
    running = dict(as_started)
    comparison = Comparison(preset_name, delays_s=calibrate(async_base), stack=as_started)
    delays = list(comparison.delays_s.values())
    points = plan(preset, as_started["sync"], as_started["async"])
    if not restart:
        points = [p for p in points if p.config == running[p.target.gateway]]
    on_plan(len(points))
    project = project or os.environ.get("COMPOSE_PROJECT_NAME", "fanout-lab")
    probes: dict[GatewayName, StackProbe | None] = {}
    try:
        for index, point in enumerate(points):
            gateway = point.target.gateway
            if point.config != running[gateway]:
                on_point(f"restarting the {gateway} gateway: {describe(point.config)}")
                restart_gateway(point.config)
                running[gateway] = point.config
                info[gateway] = healthz(bases[gateway])
                probes.pop(gateway, None)
            if gateway not in probes:
                probes[gateway] = compose_probe(
                    project, GATEWAY_SERVICES[gateway], UPSTREAM_SERVICES
                )
            stack = as_started[gateway]
            series = label(point, as_started["sync"].threadpool_tokens, stack.server)
            on_point(f"{series} workers={point.config.workers} C={point.concurrency}")
            following = points[index + 1] if index + 1 < len(points) else None
            drain = needs_drain(point, following)
            limits = limits_of(info[gateway])
            if point.overload > 0:
                best = overload_ideal(point.target, limits, delays)
            else:
                best = ideal(point.target, point.concurrency, limits, delays)
            spec = load_spec(point, [bases[gateway]], best, preset, delays, drain)
            result, cost = measure(spec, probes[gateway])
            if probes[gateway] is None:
                comparison.probe_note = "unavailable: this host cannot read the containers' cgroups"
            row = Row(point, series, limits, result, best, cost, os.cpu_count() or 1)
            comparison.rows.append(row)
            # The waterfall: one answer from the lightest load, untouched by queueing.
            lightest = min(preset.concurrency, default=None)
            if point.concurrency == lightest and result.sample is not None:
                comparison.samples.setdefault(point.target.name, result.sample)
    finally:
        for gateway, config in as_started.items():
            if restart and running[gateway] != config:
                on_point(f"restoring the {gateway} gateway: {describe(config)}")
                restart_gateway(config)
    return comparison


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


def measure(spec: LoadSpec, probe: StackProbe | None) -> tuple[LoadResult, WindowCost | None]:
    if probe is None:
        return run_load(spec), None
    with probe.running():
        result = run_load(spec)
    return result, probe.cost(result.window_start, result.window_end)


def describe(config: GatewayConfig) -> str:
    bound = f", at most {config.max_in_flight} in flight" if config.max_in_flight else ""
    if config.gateway == "sync":
        tokens = f"{config.workers} worker(s), {config.threadpool_tokens} threadpool tokens"
        return tokens + bound
    return f"{config.workers} worker(s), {config.http_client}, {config.server}{bound}"


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
