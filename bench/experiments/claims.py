"""``python -m bench claims``: every claim of the blog post, measured on the running compose
stack, each as a ratio against its own ideal from the same run, with a verdict.

The ideals come from this run's calibration: the sources' delays as the gateway sees them,
one sleep alone, one CPU job's cost at rest (core/theory.py draws the lines). It needs
one worker per gateway (the stack's default), and it restarts a gateway twice, for the
sync client and for gunicorn's timeout, putting each back as it found it.
"""

import asyncio
import http.client
import json
import os
import re
import statistics
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp
import httpx

from bench.experiments.plan import GatewayConfig
from bench.harness.load import LoadResult, LoadSpec
from bench.harness.probe import WindowCost, container_cpu_seconds
from bench.harness.stack import ComposeStack, GatewayName, get_json, git_commit, machine_description
from core.theory import burst_ideal, cpu_jobs_ideal, cpu_lanes

Verdict = Literal["holds", "holds with a limit", "does not hold", "not measured"]
Placement = Literal["inline", "def", "thread", "process"]
PLACEMENTS: tuple[Placement, ...] = ("inline", "def", "thread", "process")
SyncClient = Literal["requests", "httpx"]


@dataclass(frozen=True)
class ClaimsPreset:
    window_s: float  # each load's measured window
    warmup_s: float
    client_concurrency: tuple[int, ...]  # the per-call client against the shared one
    sync_concurrency: tuple[int, ...]  # requests against httpx
    at_once: tuple[int, ...]  # sleeps sent together
    cpu_clients: int  # CPU jobs kept running at once
    work_ms: float  # one CPU job
    fast_concurrency: int
    gunicorn_timeout_s: int


PRESETS = {
    "quick": ClaimsPreset(3, 1, (10, 100), (10, 100), (4, 40, 80), 4, 100, 20, 2),
    "full": ClaimsPreset(10, 2, (10, 100, 200), (10, 100), (4, 40, 80), 4, 100, 20, 2),
}
# /sync_func sleeps long against what 80 requests cost the worker besides; /wrong's queue
# in a row, so a short one keeps 80 of them to 8 s.
SYNC_FUNC_MS = 500
WRONG_MS = 100
# Fan-outs timed one at a time, after warm ones, for latencies at C=1.
ALONE_REPEATS = 7
HTTP2_WHY = (
    "not measured: the upstreams serve HTTP/1.1 only (uvicorn has no HTTP/2), and httpx"
    " speaks HTTP/2 over http:// only with prior knowledge (http1=False), which needs an h2c"
    " server such as hypercorn in their place"
)


@dataclass(frozen=True)
class Claim:
    """One row of the verdict table."""

    key: str  # a stable name, for the tests and the README
    quote: str  # the post's words, shortened
    section: str  # where the post says it
    where: str  # the route and mode that measure it
    ratio: str  # what `measured` and `ideal` are a ratio of
    measured: float | None
    ideal: float | None
    verdict: Verdict
    why: str  # the numbers behind the verdict
    command: str


@dataclass
class Claims:
    preset: str
    command: str
    started: str
    commit: str
    machine: str
    delays_ms: dict[str, float]
    rows: list[Claim] = field(default_factory=list)
    # Every figure the rows are drawn from, for the JSON file and the tests.
    figures: dict[str, Any] = field(default_factory=dict)

    def row(self, key: str) -> Claim:
        return next(row for row in self.rows if row.key == key)


@dataclass(frozen=True)
class Point:
    """One priced load: good answers per second, and what each answer cost the gateway."""

    throughput: float  # 200s per second
    cpu_ms: float | None  # the gateway workers' CPU per answer, failed ones included
    connections: float | None  # connections the upstreams accepted per answer
    failed_share: float  # answers that were errors (a 504 when every source timed out)
    partial_share: float  # good answers with a failed source
    p50_ms: float

    @classmethod
    def of(cls, result: LoadResult, cost: WindowCost | None, idle_opens_per_s: float) -> "Point":
        """`idle_opens_per_s`: connections the upstreams accept with no load at all (Docker's
        healthchecks), taken off the window's count."""
        failed = sum(result.errors.values())
        answers = max(result.ok + failed, 1)
        connections = None
        if result.ok + failed == 0:
            cost = None  # no answer to price: the window's CPU went to something else
        if cost is not None:
            opened = cost.upstream_connections - idle_opens_per_s * result.window_s
            connections = round(max(opened, 0.0) / answers, 3)
        return cls(
            throughput=round(result.throughput, 2),
            cpu_ms=None if cost is None else round(cost.gateway_cpu_s * 1000 / answers, 2),
            connections=connections,
            failed_share=round(failed / answers, 3),
            partial_share=round(result.partial / max(result.ok, 1), 3),
            p50_ms=round(result.latency.percentile_ms(50), 1),
        )


@dataclass
class Lab:
    """The running stack, as the measurements reach it."""

    stack: ComposeStack
    preset: ClaimsPreset
    on_step: Callable[[str], None]
    idle_opens_per_s: float = 0.0

    @property
    def sync_base(self) -> str:
        return self.stack.sync_base

    @property
    def async_base(self) -> str:
        return self.stack.async_base

    def load(
        self, gateway: GatewayName, path: str, concurrency: int, **params: str
    ) -> tuple[LoadResult, Point]:
        wait_until_settled(self.stack.base(gateway))
        spec = LoadSpec(
            url=f"{self.stack.base(gateway)}{path}",
            params=params,
            concurrency=concurrency,
            duration_s=self.preset.window_s,
            warmup_s=self.preset.warmup_s,
            timeout_s=60,
            drain_s=15,
        )
        result, cost = self.stack.measure(gateway, spec)
        return result, Point.of(result, cost, self.idle_opens_per_s)

    def measure_idle_opens(self, seconds: float = 3.0) -> None:
        """The rate at which the upstreams accept connections with no load on them."""
        probe = self.stack.probe("async")
        if probe is None:
            return
        with probe.running():
            start = time.perf_counter()
            time.sleep(seconds)
            end = time.perf_counter()
        cost = probe.cost(start, end)
        self.idle_opens_per_s = 0.0 if cost is None else cost.upstream_connections / seconds

    def gateway_cpu_seconds(self, gateway: GatewayName) -> Callable[[], float] | None:
        """The whole gateway container's CPU so far, process pool included."""
        probe = self.stack.probe(gateway)
        if probe is None:
            return None
        (container,) = probe.gateways
        return lambda: container_cpu_seconds(container)

    def restart(self, gateway: GatewayName, **env: str) -> None:
        self.on_step(f"restarting the {gateway} gateway: {env or 'as found'}")
        as_running = GatewayConfig.running(self.stack.health(gateway)).env()
        self.stack.restart(gateway, {**as_running, **env})


def run_claims(
    preset_name: str,
    stack: ComposeStack,
    command: str,
    on_step: Callable[[str], None] = lambda _: None,
) -> Claims:
    preset = PRESETS[preset_name]
    lab = Lab(stack, preset, on_step)
    gateways: tuple[GatewayName, ...] = ("sync", "async")
    for gateway in gateways:
        workers = stack.health(gateway).workers
        if workers != 1:
            raise RuntimeError(
                f"bench claims measures one worker; {stack.base(gateway)} runs {workers}:"
                " SYNC_WORKERS=1 ASYNC_WORKERS=1 make up"
            )
    on_step("calibrating the sources' delays")
    delays = stack.calibrate()
    claims = Claims(
        preset=preset_name,
        command=command,
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        commit=git_commit(),
        machine=machine_description(),
        delays_ms={name: round(d * 1000, 1) for name, d in delays.items()},
    )
    fan_out_lessons(lab, claims, list(delays.values()))
    sleeps(lab, claims)
    client_per_call(lab, claims, max(delays.values()))
    fast_return(lab, claims)
    cpu_work(lab, claims, max(delays.values()))
    sync_clients(lab, claims)
    gunicorn_timeout(lab, claims)
    claims.rows.append(
        Claim(
            "http2",
            "httpx supports HTTP/2",
            "Modern HTTP Requests with httpx",
            "async gateway, its client with http2=True",
            "connections per source at C=200, HTTP/2 over HTTP/1.1",
            None,
            None,
            "not measured",
            HTTP2_WHY,
            "-",
        )
    )
    return claims


# --- the measurements ---------------------------------------------------------------------


def alone_ms(url: str, repeats: int = ALONE_REPEATS, **params: str) -> float:
    """The median latency of `repeats` requests one at a time, after two warm ones."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    full = f"{url}?{query}" if query else url
    for _ in range(2):
        get_json(full, timeout=60)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        get_json(full, timeout=60)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def fan_out_lessons(lab: Lab, claims: Claims, delays_s: list[float]) -> None:
    lab.on_step("the first two lessons: sum and max")
    total, longest = sum(delays_s) * 1000, max(delays_s) * 1000
    sync_ms = alone_ms(f"{lab.sync_base}/news")
    async_ms = alone_ms(f"{lab.async_base}/news")
    claims.figures["fan_out"] = {"sync_ms": round(sync_ms, 1), "async_ms": round(async_ms, 1)}
    command = "python -m bench claims"
    claims.rows += [
        Claim(
            "sync_sum",
            "/sync-news: the calls run one after another, total = the sum",
            "Sync vs Async in FastAPI: Key Differences",
            "sync gateway, def /news, requests",
            "latency at C=1 / sum of the delays",
            round(sync_ms / total, 2),
            1.0,
            "holds",
            f"{sync_ms:.0f} ms against a sum of {total:.0f} ms",
            command,
        ),
        Claim(
            "async_max",
            "/async-news, /kkblogs: asyncio.gather, total ≈ the max",
            "Sync vs Async in FastAPI: Key Differences",
            "async gateway, async def /news, gather",
            "latency at C=1 / max of the delays",
            round(async_ms / longest, 2),
            1.0,
            "holds",
            f"{async_ms:.0f} ms against a max of {longest:.0f} ms",
            command,
        ),
    ]


async def _burst(url: str, at_once: int, timeout_s: float) -> float:
    """`at_once` requests sent together on their own connections; the whole burst's wall."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> None:
            async with session.get(url) as response:
                await response.read()
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(at_once)))
        return time.perf_counter() - started


def burst_ratios(url: str, at_once: tuple[int, ...]) -> dict[int, float]:
    """Each burst's wall time over one request alone (the median of three)."""
    alone = statistics.median(asyncio.run(_burst(url, 1, 60)) for _ in range(3))
    return {k: round(asyncio.run(_burst(url, k, 120)) / alone, 2) for k in at_once}


def sleeps(lab: Lab, claims: Claims) -> None:
    lab.on_step("/sync_func and /wrong: sleeps sent together")
    tokens = lab.stack.health("sync").threadpool_tokens
    at_once = lab.preset.at_once
    def_ratios = burst_ratios(f"{lab.sync_base}/sync_func?ms={SYNC_FUNC_MS}", at_once)
    loop_ratios = burst_ratios(f"{lab.async_base}/wrong?ms={WRONG_MS}", at_once)
    claims.figures["sleeps"] = {
        "tokens": tokens,
        "sync_func": {str(k): v for k, v in def_ratios.items()},
        "sync_func_ideal": {str(k): burst_ideal(k, tokens) for k in at_once},
        "wrong": {str(k): v for k, v in loop_ratios.items()},
        "wrong_ideal": {str(k): burst_ideal(k, 1) for k in at_once},
    }
    biggest = max(at_once)
    within = [k for k in at_once if k <= tokens]
    past = [k for k in at_once if k > tokens]
    def_text = "; ".join(f"{k} at once: {r:.2f}x one alone" for k, r in def_ratios.items())
    loop_text = "; ".join(f"{k} at once: {r:.2f}x" for k, r in loop_ratios.items())
    overlapped = all(def_ratios[k] < 1.5 for k in within)
    queued = all(def_ratios[k] >= 1.5 for k in past)
    claims.rows += [
        Claim(
            "sync_func",
            "/sync_func: time.sleep in a def route blocks the worker; no other request"
            " can be processed",
            "Examples: Synchronous Endpoint",
            f"sync gateway, def /sync_func?ms={SYNC_FUNC_MS}, one worker",
            f"{biggest} at once / one alone (ideal: ceil(K / {tokens} tokens))",
            def_ratios[biggest],
            burst_ideal(biggest, tokens),
            "holds with a limit" if overlapped and queued else "does not hold",
            f"{def_text}. A def route runs on Starlette's threadpool: up to its {tokens}"
            " tokens the sleeps overlap, so the claim is false; past them requests queue"
            " for a token, and there it holds",
            "python -m bench claims",
        ),
        Claim(
            "wrong",
            "/wrong: time.sleep in async def blocks the entire event loop",
            "Common Mistake: Blocking Calls",
            f"async gateway, async def /wrong?ms={WRONG_MS}, one worker",
            f"{biggest} at once / one alone (ideal: K)",
            loop_ratios[biggest],
            burst_ideal(biggest, 1),
            "holds" if all(loop_ratios[k] >= 0.8 * k for k in at_once) else "does not hold",
            f"{loop_text}: one at a time, whatever the count",
            "python -m bench claims",
        ),
    ]


def client_construction_ms(repeats: int = 20) -> float:
    """CPU to build and close one httpx.AsyncClient, in this process (the bench's host)."""

    async def build_and_close() -> None:
        async with httpx.AsyncClient():
            pass

    started = time.process_time()
    for _ in range(repeats):
        asyncio.run(build_and_close())
    return (time.process_time() - started) * 1000 / repeats


def client_per_call(lab: Lab, claims: Claims, longest_s: float) -> None:
    lab.on_step("the per-call client against the shared one")
    lab.measure_idle_opens()
    deadline = str(lab.stack.health("async").max_deadline_ms)
    url = f"{lab.async_base}/news"
    alone = {mode: alone_ms(url, client=mode) for mode in ("shared", "per-call")}
    points: dict[str, dict[str, Point]] = {"shared": {}, "per-call": {}}
    for concurrency in lab.preset.client_concurrency:
        for mode in ("shared", "per-call"):
            lab.on_step(f"async /news?client={mode} C={concurrency}")
            # The longest deadline, so that the cost shows as latency, not as cut calls.
            _, point = lab.load("async", "/news", concurrency, client=mode, deadline_ms=deadline)
            points[mode][str(concurrency)] = point
    build_ms = client_construction_ms()
    claims.figures["per_call"] = {
        "alone_ms": {mode: round(ms, 1) for mode, ms in alone.items()},
        "points": {mode: {c: asdict(p) for c, p in by_c.items()} for mode, by_c in points.items()},
        "construction_cpu_ms": round(build_ms, 2),
    }
    low = str(min(lab.preset.client_concurrency))
    shared, per_call = points["shared"][low], points["per-call"][low]
    cpu_ratio = None
    if shared.cpu_ms and per_call.cpu_ms:
        cpu_ratio = round(per_call.cpu_ms / shared.cpu_ms, 2)
    per_c = "; ".join(
        f"C={c}: {points['per-call'][c].throughput:.1f} against"
        f" {points['shared'][c].throughput:.1f} fan-outs/s, {points['per-call'][c].cpu_ms} against"
        f" {points['shared'][c].cpu_ms} ms of CPU each, {points['per-call'][c].failed_share:.0%}"
        f" against {points['shared'][c].failed_share:.0%} failed"
        for c in points["shared"]
    )
    claims.rows += [
        Claim(
            "per_call_cpu",
            "use a client instance: connection reuse, better performance (while the post's"
            " own fetch_data opens a new AsyncClient per call)",
            "Recommended: Use a Client Instance; Concurrent External API Calls",
            "async gateway, /news?client=per-call against ?client=shared",
            f"CPU per fan-out, per-call / shared, C={low}",
            cpu_ratio,
            1.0,
            "holds" if cpu_ratio is not None and cpu_ratio > 1.5 else "does not hold",
            f"{per_c}. At C=1: {alone['per-call']:.0f} ms against {alone['shared']:.0f} ms"
            f" (max of the delays: {longest_s * 1000:.0f} ms). Building and closing one"
            f" httpx.AsyncClient costs {build_ms:.1f} ms of CPU on the bench's host (its TLS"
            " context loads the CA bundle), three per fan-out",
            "python -m bench claims",
        ),
        Claim(
            "per_call_connections",
            "use connection pools with httpx.AsyncClient",
            "Performance Optimization Tips",
            "async gateway, /news?client=per-call against ?client=shared",
            f"connections the upstreams accepted per fan-out, per-call, C={low} (ideal: 3)",
            per_call.connections,
            3.0,
            "holds"
            if per_call.connections is not None
            and shared.connections is not None
            and per_call.connections > 2 > shared.connections
            else "does not hold",
            f"per-call: {per_call.connections} per fan-out, one per call; shared:"
            f" {shared.connections}: its pool keeps them open (the upstreams' Docker"
            " healthchecks add about one every 3 s to each)",
            "python -m bench claims",
        ),
    ]


def fast_return(lab: Lab, claims: Claims) -> None:
    concurrency = lab.preset.fast_concurrency
    points: dict[str, Point] = {}
    for route in ("def", "async"):
        lab.on_step(f"/fast/{route} C={concurrency}")
        _, points[route] = lab.load("async", f"/fast/{route}", concurrency)
    claims.figures["fast"] = {route: asdict(point) for route, point in points.items()}
    ratio = None
    if points["def"].cpu_ms and points["async"].cpu_ms:
        ratio = round(points["def"].cpu_ms / points["async"].cpu_ms, 2)
    verdict: Verdict = (
        "not measured" if ratio is None else "holds" if ratio < 0.9 else "does not hold"
    )
    claims.rows.append(
        Claim(
            "fast_def",
            "use def for fast-return endpoints; async unnecessarily can slow things down",
            "When It's Better to Use def",
            f"async gateway, /fast/def against /fast/async, one worker, C={concurrency}",
            "CPU per request, def / async def",
            ratio,
            1.0,
            verdict,
            f"def: {points['def'].throughput:.0f} req/s, {points['def'].cpu_ms} ms of CPU"
            f" each; async def: {points['async'].throughput:.0f} req/s,"
            f" {points['async'].cpu_ms} ms. A def route pays a trip to the threadpool and"
            " back; the async one runs on the loop",
            "python -m bench claims",
        ),
    )


def loop_lag(base: str) -> tuple[float, float]:
    """The worker's event-loop lag so far: (sum of seconds, count of probes)."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
        text = response.read().decode()
    found = dict(re.findall(r"^event_loop_lag_seconds_(sum|count) (\S+)$", text, re.M))
    return float(found.get("sum", 0)), float(found.get("count", 0))


@dataclass(frozen=True)
class CpuRun:
    jobs_per_s: float
    fan_out_ms: float  # the median concurrent fan-out
    lag_ms: float  # the mean event-loop lag during the run
    failed_calls: float  # the fan-outs' source calls that failed, a share
    cores: float | None  # the gateway container's CPU time over the run's wall time


async def _cpu_under_load(
    base: str, placement: str, work_ms: float, clients: int, window_s: float, deadline_ms: int
) -> tuple[int, list[float], float]:
    """`clients` loops of CPU jobs and one loop of fan-outs, together for `window_s`."""
    stop = time.perf_counter() + window_s
    jobs, fan_outs, failed, calls = 0, [], 0, 0
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def worker() -> None:
            nonlocal jobs
            while time.perf_counter() < stop:
                async with session.get(f"{base}/cpu/{placement}?work_ms={work_ms}") as r:
                    await r.read()
                    r.raise_for_status()
                jobs += time.perf_counter() < stop

        async def fan_out() -> None:
            nonlocal failed, calls
            await asyncio.sleep(min(0.5, window_s / 4))  # once the jobs are running
            while time.perf_counter() < stop:
                started = time.perf_counter()
                # The longest deadline: the delay shows as latency, not as a cut fan-out.
                async with session.get(f"{base}/news?deadline_ms={deadline_ms}") as r:
                    body = await r.json()
                fan_outs.append((time.perf_counter() - started) * 1000)
                # The gateway's own timeouts run on its loop's clock, so a stalled loop
                # can fail a source that answered in time.
                failed += sum(not source["ok"] for source in body["sources"])
                calls += len(body["sources"])

        await asyncio.gather(fan_out(), *(worker() for _ in range(clients)))
    return jobs, fan_outs, failed / max(calls, 1)


def cpu_run(
    base: str,
    placement: str,
    work_ms: float,
    clients: int,
    window_s: float,
    deadline_ms: int,
    cpu_seconds: Callable[[], float] | None,
) -> CpuRun:
    lag_before = loop_lag(base)
    cpu_before = cpu_seconds() if cpu_seconds else 0.0
    started = time.perf_counter()
    jobs, fan_outs, failed_share = asyncio.run(
        _cpu_under_load(base, placement, work_ms, clients, window_s, deadline_ms)
    )
    took = time.perf_counter() - started
    cpu_after = cpu_seconds() if cpu_seconds else None
    lag_after = loop_lag(base)
    probes = max(lag_after[1] - lag_before[1], 1)
    return CpuRun(
        jobs_per_s=round(jobs / min(took, window_s), 2),
        fan_out_ms=round(statistics.median(fan_outs), 1) if fan_outs else float("nan"),
        lag_ms=round((lag_after[0] - lag_before[0]) * 1000 / probes, 1),
        failed_calls=round(failed_share, 3),
        cores=None if cpu_after is None else round((cpu_after - cpu_before) / took, 2),
    )


def cpu_work(lab: Lab, claims: Claims, longest_s: float) -> None:
    preset, base = lab.preset, lab.async_base
    lab.on_step("CPU work: one job's cost at rest")
    info = lab.stack.health("async")
    cores = min(float(os.cpu_count() or 1), float(info.cpu_processes))
    for _ in range(2):  # start the pool's processes
        get_json(f"{base}/cpu/process?work_ms={preset.work_ms}", timeout=60)
    job_ms = statistics.median(
        get_json(f"{base}/cpu/inline?work_ms={preset.work_ms}")["elapsed_ms"] for _ in range(5)
    )
    runs = {}
    for placement in PLACEMENTS:
        lab.on_step(f"/cpu/{placement}: {preset.cpu_clients} jobs at once, and a fan-out")
        runs[placement] = cpu_run(
            base,
            placement,
            preset.work_ms,
            preset.cpu_clients,
            2 * preset.window_s,
            info.max_deadline_ms,
            lab.gateway_cpu_seconds("async"),
        )
    longest_ms = longest_s * 1000
    # The container's own CPU time where the host can read it; else the jobs' calibrated cost.
    used = {
        p: r.cores if r.cores is not None else round(r.jobs_per_s * job_ms / 1000, 2)
        for p, r in runs.items()
    }
    lanes = {p: cpu_lanes(p, info.cpu_processes, cores) for p in PLACEMENTS}
    claims.figures["cpu"] = {
        "job_ms": job_ms,
        "cores": cores,
        "runs": {p: asdict(r) for p, r in runs.items()},
        "cores_used": used,
        "lanes": lanes,
        "ideal_jobs_per_s": {
            p: round(cpu_jobs_ideal(job_ms / 1000, lanes[p]), 2) for p in PLACEMENTS
        },
    }

    def seen(p: Placement) -> str:
        r = runs[p]
        return (
            f"{r.jobs_per_s:.1f} jobs/s of an ideal"
            f" {cpu_jobs_ideal(job_ms / 1000, lanes[p]):.1f}, the gateway busy on"
            f" {used[p]:.2f} of {lanes[p]:g} core(s); a fan-out"
            f" beside them took {r.fan_out_ms:.0f} ms (max of the delays: {longest_ms:.0f}),"
            f" loop lag {r.lag_ms:.1f} ms, {r.failed_calls:.0%} of its calls failed"
        )

    inline_delay = runs["inline"].fan_out_ms - longest_ms
    process_delay = runs["process"].fan_out_ms - longest_ms
    work = f"{preset.cpu_clients} jobs of {job_ms:.0f} ms at once"
    claims.rows += [
        Claim(
            "cpu_inline",
            "keep async def routes lightweight: avoid CPU-heavy work inside async routes",
            "Performance Optimization Tips",
            f"async gateway, /cpu/inline, {work}",
            "a concurrent fan-out's latency / max of the delays",
            round(runs["inline"].fan_out_ms / longest_ms, 2),
            1.0,
            "holds"
            if inline_delay > job_ms / 2 and inline_delay > process_delay
            else "does not hold",
            f"{seen('inline')}: the loop runs nothing else while a job runs",
            "python -m bench claims",
        ),
        Claim(
            "cpu_def",
            "use def for pure CPU-bound computations",
            "When It's Better to Use def",
            f"async gateway, def /cpu/def, {work}",
            "cores the jobs used / one core (the GIL)",
            used["def"],
            lanes["def"],
            "holds with a limit",
            f"{seen('def')}. The loop stays free, but one worker's threads share one GIL:"
            f" one core at most, of the {cores:g} the container may use",
            "python -m bench claims",
        ),
        Claim(
            "cpu_thread",
            "offload long-running CPU tasks to threads",
            "Performance Optimization Tips",
            f"async gateway, /cpu/thread (run_in_threadpool), {work}",
            "cores the jobs used / one core (the GIL)",
            used["thread"],
            lanes["thread"],
            "holds with a limit",
            f"{seen('thread')}. The same as a def route: one core at most",
            "python -m bench claims",
        ),
        Claim(
            "cpu_process",
            "offload long-running CPU tasks to process pools",
            "Performance Optimization Tips",
            f"async gateway, /cpu/process (a pool of {info.cpu_processes}), {work}",
            f"cores the jobs used / {lanes['process']:g} (the pool and the container's cores)",
            used["process"],
            lanes["process"],
            "holds"
            if used["process"] > 1.2 * max(used["def"], used["thread"])
            else "does not hold",
            f"{seen('process')}. Every core, for the price of a process per core and of"
            " sending each job and its answer between processes",
            "python -m bench claims",
        ),
    ]


def sync_clients(lab: Lab, claims: Claims) -> None:
    found: SyncClient = "httpx" if lab.stack.health("sync").http_client == "httpx" else "requests"
    points: dict[str, Point] = {}
    try:
        for client in ("requests", "httpx"):
            if lab.stack.health("sync").http_client != client:
                lab.restart("sync", SYNC_HTTP_CLIENT=client)
            for mode in ("sequential", "threads"):
                for concurrency in lab.preset.sync_concurrency:
                    lab.on_step(f"sync /news?mode={mode} with {client}, C={concurrency}")
                    _, point = lab.load("sync", "/news", concurrency, mode=mode)
                    points[f"{client} {mode} C={concurrency}"] = point
    finally:
        if lab.stack.health("sync").http_client != found:
            lab.restart("sync", SYNC_HTTP_CLIENT=found)
    claims.figures["sync_clients"] = {name: asdict(p) for name, p in points.items()}
    ratios = {}
    for mode in ("sequential", "threads"):
        for concurrency in lab.preset.sync_concurrency:
            req = points[f"requests {mode} C={concurrency}"].cpu_ms
            hx = points[f"httpx {mode} C={concurrency}"].cpu_ms
            if req and hx:
                ratios[f"{mode} C={concurrency}"] = round(hx / req, 2)
    claims.figures["sync_client_cpu_ratio"] = ratios
    cheaper = [name for name, r in ratios.items() if r < 0.9]
    dearer = [name for name, r in ratios.items() if r > 1.1]
    verdict: Verdict = "holds with a limit"
    if ratios and len(cheaper) == len(ratios):
        verdict = "holds"
    elif not cheaper:
        verdict = "does not hold"
    low = min(lab.preset.sync_concurrency)
    detail = "; ".join(
        f"{name}: {points[f'httpx {name}'].cpu_ms} against {points[f'requests {name}'].cpu_ms}"
        f" ms, {points[f'httpx {name}'].throughput:.1f} against"
        f" {points[f'requests {name}'].throughput:.1f} fan-outs/s"
        for name in ratios
    )
    where_better = f"; cheaper at {', '.join(cheaper)}" if cheaper else ""
    where_worse = f"; dearer at {', '.join(dearer)}" if dearer else ""
    claims.rows.append(
        Claim(
            "sync_httpx",
            "httpx: just like requests, but with better performance",
            "Why Use httpx?",
            "sync gateway, SYNC_HTTP_CLIENT=httpx against requests, both modes",
            f"CPU per fan-out, httpx / requests, sequential C={low}",
            ratios.get(f"sequential C={low}"),
            1.0,
            verdict,
            f"httpx against requests, CPU per fan-out: {detail}{where_better}{where_worse}",
            "python -m bench claims",
        )
    )


def _blocked_past_timeout(base: str, hold_ms: int) -> tuple[str, float]:
    """What a client sees from /wrong held past the timeout, and after how long.

    One plain request, never repeated: aiohttp, for one, sends a GET again when the
    connection drops, and the repeat blocks (and kills) the next worker too.
    """
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(f"{base}/wrong?ms={hold_ms}", timeout=hold_ms / 1000 + 30):
            seen = "an answer"
    except (OSError, http.client.HTTPException) as exc:
        seen = f"the connection dropped ({type(exc).__name__})"
    return seen, time.perf_counter() - started


def gunicorn_timeout(lab: Lab, claims: Claims) -> None:
    timeout_s = lab.preset.gunicorn_timeout_s
    lab.restart("async", GATEWAY_GUNICORN_TIMEOUT=str(timeout_s))
    try:
        before = get_json(f"{lab.async_base}/wrong?ms=0")["worker_pid"]
        hold_ms = (timeout_s + 6) * 1000
        lab.on_step(f"/wrong?ms={hold_ms} with GUNICORN_TIMEOUT={timeout_s}")
        seen, failed_after = _blocked_past_timeout(lab.async_base, hold_ms)
        back_after = _answers_again(f"{lab.async_base}/wrong?ms=0", within_s=60)
        after = get_json(f"{lab.async_base}/wrong?ms=0")["worker_pid"]
    finally:
        lab.restart("async")
    claims.figures["gunicorn_timeout"] = {
        "timeout_s": timeout_s,
        "held_ms": hold_ms,
        "client_saw": seen,
        "failed_after_s": round(failed_after, 2),
        "back_after_s": round(back_after, 2),
        "worker_replaced": before != after,
    }
    # A worker's heartbeat comes every half timeout, and the arbiter checks it every second:
    # a loop blocked right after a heartbeat is killed half a timeout later at the earliest.
    killed = before != after and failed_after < hold_ms / 1000
    claims.rows.append(
        Claim(
            "gunicorn_timeout",
            "(not in the post) /wrong blocked past GUNICORN_TIMEOUT",
            "Common Mistake: Blocking Calls",
            f"async gateway, /wrong?ms={hold_ms}, GATEWAY_GUNICORN_TIMEOUT={timeout_s}",
            "when the request failed / GUNICORN_TIMEOUT (expected: from half the timeout to"
            " the timeout plus the arbiter's 1 s check)",
            round(failed_after / timeout_s, 2),
            1.0,
            "holds" if killed else "does not hold",
            f"the arbiter killed the worker (pid {before} became {after}): the client saw"
            f" {seen} after {failed_after:.1f} s of a {hold_ms / 1000:.0f} s sleep, and a new"
            f" worker answered {back_after:.1f} s later. Every request on that worker is lost",
            "python -m bench claims",
        )
    )


# A gateway with nothing left to do answers /healthz in a few ms, on a busy machine too.
SETTLED_MS = 50.0


def wait_until_settled(base: str, within_s: float = 120.0) -> float:
    """Seconds until the gateway's /healthz answers within SETTLED_MS, polled every 0.2 s.

    A point's clients stop waiting at its window's end, but the gateway goes on with what
    they sent: after the per-call client's C=200, a backlog of fan-outs that outlasted the
    drain took the next point's CPU, and its window got no answer at all.
    """
    started = time.perf_counter()
    while time.perf_counter() - started < within_s:
        asked = time.perf_counter()
        get_json(f"{base}/healthz", timeout=within_s)
        if (time.perf_counter() - asked) * 1000 < SETTLED_MS:
            return time.perf_counter() - started
        time.sleep(0.2)
    raise RuntimeError(f"{base} was still busy after {within_s:g} s")


def _answers_again(url: str, within_s: float) -> float:
    """Seconds until `url` answers again, polled every 0.1 s."""
    started = time.perf_counter()
    while time.perf_counter() - started < within_s:
        try:
            get_json(url, timeout=5)
            return time.perf_counter() - started
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {within_s:g} s")


# --- the report ---------------------------------------------------------------------------


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render(claims: Claims) -> str:
    lines = [
        "# The blog post's claims, measured",
        "",
        f"`{claims.command}` (preset {claims.preset}), {claims.started}, commit"
        f" {claims.commit}, {claims.machine}. Sources' delays as the gateway saw them:"
        f" {', '.join(f'{name} {ms:g} ms' for name, ms in claims.delays_ms.items())}.",
        "Each ratio comes from this run, over an ideal from this run's own calibration."
        " The post: ../shared/seed/sync-vs-async-in-fastapi.md; how each example maps to"
        " a route: docs/how-it-works.md.",
        "",
        "| the post says | section | where it runs | ratio | measured / ideal | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in claims.rows:
        ratio = f"{_number(row.measured)} / {_number(row.ideal)}"
        lines.append(
            f"| {row.quote} | {row.section} | {row.where} | {row.ratio} | {ratio} |"
            f" **{row.verdict}** |"
        )
    lines += ["", "## Why each verdict", ""]
    for row in claims.rows:
        lines.append(f"- **{row.key}** ({row.verdict}): {row.why}. Measured by `{row.command}`.")
    lines.append("")
    return "\n".join(lines)


def write_claims(claims: Claims, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    markdown, data = out / "claims.md", out / "claims.json"
    markdown.write_text(render(claims))
    data.write_text(json.dumps(asdict(claims), indent=2) + "\n")
    return [markdown, data]
