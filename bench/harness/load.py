"""The load generator: a closed or open loop against one URL (or the same endpoint on each
of a gateway's replicas), recorded in HDR histograms.

Closed loop: C clients, each sending its next request when the last one answers.
Open loop: requests are *scheduled* at a rate, evenly or as Poisson arrivals (seeded), and
each latency is measured from its intended send time, so a stalled server cannot hide its
queue (coordinated omission).
"""

import asyncio
import contextlib
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, cast

import aiohttp
import uvloop

from bench.harness.histogram import LatencyHistogram
from core.theory import poisson_arrivals

# What an overloaded gateway answers when its bound refuses a request.
REFUSED = "status 503"
# The client is "near saturation" past this share of one core: it is single-threaded.
CLIENT_CPU_WARNING = 0.7


@dataclass(frozen=True)
class LoadSpec:
    url: str
    params: dict[str, str] = field(default_factory=dict)
    loop: Literal["closed", "open"] = "closed"
    # Closed loop: the number of clients. Open loop: the most requests in flight at once.
    concurrency: int = 10
    rate: float = 0.0  # open loop: requests per second
    duration_s: float = 10.0  # the measured window, after warm-up
    warmup_s: float = 2.0
    max_requests: int | None = None  # closed loop: stop after this many measured answers
    timeout_s: float = 30.0
    # After the window, wait up to this long for requests still in flight (not counted),
    # so the server is idle again before whatever runs next.
    drain_s: float = 0.0
    # The same endpoint on the gateway's other replicas (a swarm's, on their own ports):
    # closed-loop client i keeps the i-th of `urls` in turn, open-loop requests take turns.
    replica_urls: tuple[str, ...] = ()
    # Open loop: evenly spaced sends, or Poisson arrivals (exponential gaps) from this seed.
    arrivals: Literal["even", "poisson"] = "even"
    seed: int = 0
    # Keep every answer's timing (Answer), for measures a histogram cannot give.
    keep_answers: bool = False

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.url, *self.replica_urls)


@dataclass(frozen=True, slots=True)
class Answer:
    """One good answer's timing: when it was due and came back (perf_counter), and the
    gateway's own fan-out time and wait before it (`elapsed_ms`, `queued_ms`)."""

    intended: float
    done: float
    fan_out_s: float
    queued_s: float
    # Within the fan-out: the archive's wait for a pooled connection (`waited_ms`), if any.
    pool_wait_s: float = 0.0


@dataclass
class LoadResult:
    spec: LoadSpec
    window_s: float = 0.0
    # The window on time.perf_counter(), so other measurements can price the same span.
    window_start: float = 0.0
    window_end: float = 0.0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    unfinished: int = 0  # sent or due, but unanswered when the window closed
    # How long the oldest of those had waited. Past a percentile, that percentile is only a
    # lower bound: the answers the window saw were the lucky ones.
    oldest_unfinished_ms: float = 0.0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    gateway_elapsed: LatencyHistogram = field(default_factory=LatencyHistogram)
    # 503s: the gateway refused the request (its overload bound). How fast they came back
    # is the point of a bound, so they have a histogram of their own.
    refused: LatencyHistogram = field(default_factory=LatencyHistogram)
    client_cpu: float = 0.0  # share of one core the client used in the window
    max_schedule_lag_ms: float = 0.0  # open loop: how late the client sent
    # Answers per gateway replica (its hostname), and per worker ("hostname/pid").
    instances: Counter[str] = field(default_factory=Counter)
    workers: Counter[str] = field(default_factory=Counter)
    sample: dict[str, Any] | None = None  # one answer, for the waterfall plot
    partial: int = 0  # answers in the window that said some source failed
    # With spec.keep_answers: every good answer, in the window or not, in arrival order.
    answers: list[Answer] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.ok / self.window_s if self.window_s > 0 else 0.0

    @property
    def warnings(self) -> list[str]:
        warnings = []
        if self.client_cpu >= CLIENT_CPU_WARNING:
            warnings.append(
                f"client used {self.client_cpu:.0%} of a core: these numbers may describe"
                " the load generator, not the gateway"
            )
        if self.spec.loop == "open" and self.max_schedule_lag_ms > 50:
            warnings.append(f"client sent up to {self.max_schedule_lag_ms:.0f} ms late")
        if self.ok == 0:
            warnings.append("no request completed in the measured window")
        return warnings

    def summary(self) -> "LoadSummary":
        """A flat record for tables, JSON and CSV: LoadSummary's keys, the histograms'
        generated from their names."""
        record = {
            "url": self.spec.url,
            "params": "&".join(f"{k}={v}" for k, v in self.spec.params.items()),
            "loop": self.spec.loop,
            "concurrency": self.spec.concurrency,
            "rate": self.spec.rate,
            "window_s": round(self.window_s, 3),
            "ok": self.ok,
            "throughput": round(self.throughput, 2),
            "unfinished": self.unfinished,
            "oldest_unfinished_ms": round(self.oldest_unfinished_ms, 1),
            "errors": sum(self.errors.values()),
            "errors_by_kind": dict(self.errors),
            "refused": self.refused.count,
            "refused_p99_ms": round(self.refused.percentile_ms(99.0), 2)
            if self.refused.count
            else None,
            "client_cpu": round(self.client_cpu, 3),
            "max_schedule_lag_ms": round(self.max_schedule_lag_ms, 1),
            "workers_seen": len(self.workers),
            "instances_seen": len(self.instances),
            **self.latency.summary_keys("latency"),
            **self.gateway_elapsed.summary_keys("gateway"),
        }
        return cast(LoadSummary, record)


# One load run, flat: the JSON and CSV row of `bench run`, and the start of a matrix row.
# Functional syntax: some keys hold a dot (p99.9).
LoadSummary = TypedDict(
    "LoadSummary",
    {
        "url": str,
        "params": str,
        "loop": str,
        "concurrency": int,
        "rate": float,
        "window_s": float,
        "ok": int,
        "throughput": float,
        "unfinished": int,
        "oldest_unfinished_ms": float,
        "errors": int,
        "errors_by_kind": dict[str, int],
        "refused": int,
        "refused_p99_ms": float | None,
        "client_cpu": float,
        "max_schedule_lag_ms": float,
        "workers_seen": int,
        "instances_seen": int,
        "latency_p50_ms": float,
        "latency_p90_ms": float,
        "latency_p99_ms": float,
        "latency_p99.9_ms": float,
        "latency_max_ms": float,
        "latency_mean_ms": float,
        "gateway_p50_ms": float,
        "gateway_p90_ms": float,
        "gateway_p99_ms": float,
        "gateway_p99.9_ms": float,
        "gateway_max_ms": float,
        "gateway_mean_ms": float,
    },
)


def open_loop_schedule(
    rate: float, duration_s: float, arrivals: Literal["even", "poisson"] = "even", seed: int = 0
) -> list[float]:
    """Intended send times, in seconds from the start: evenly spaced at `rate`, or Poisson
    arrivals at `rate` (independent exponential gaps, reproducible from `seed`)."""
    if rate <= 0 or duration_s <= 0:
        raise ValueError("rate and duration must be positive")
    if arrivals == "even":
        return [index / rate for index in range(int(rate * duration_s))]
    return poisson_arrivals(rate, duration_s, seed)


class _Recorder:
    """Counts only answers that arrive inside the measured window."""

    def __init__(self, result: LoadResult, window_start: float, window_end: float) -> None:
        self.result = result
        self.window_start = window_start
        self.window_end = window_end
        # Intended send time of every request not yet answered, queued ones included.
        self.pending: dict[int, float] = {}
        self._tickets = itertools.count()

    def register(self, intended: float) -> int:
        """Count a request as unanswered from now on; its ticket ends that."""
        ticket = next(self._tickets)
        self.pending[ticket] = intended
        return ticket

    def in_window(self, now: float) -> bool:
        return self.window_start <= now <= self.window_end

    async def send(
        self,
        session: aiohttp.ClientSession,
        url: str,
        intended: float,
        ticket: int | None = None,
    ) -> None:
        spec, result = self.result.spec, self.result
        kind: str | None = None
        body: bytes = b""
        ticket = self.register(intended) if ticket is None else ticket
        try:
            async with session.get(url, params=spec.params) as response:
                body = await response.read()
                if response.status >= 400:
                    kind = f"status {response.status}"
        except TimeoutError:
            kind = "timeout"
        except (aiohttp.ClientConnectionError, OSError):
            kind = "connection"
        except aiohttp.ClientError as exc:
            kind = f"client {type(exc).__name__}"
        finally:
            del self.pending[ticket]
        done = time.perf_counter()
        payload = _contract(body) if kind is None else None
        if payload is not None and spec.keep_answers:
            queued_ms = payload.get("queued_ms")
            fan_out_s, queued_s = payload["elapsed_ms"] / 1000, (queued_ms or 0) / 1000
            pool_wait_s = sum(s.get("waited_ms") or 0 for s in payload["sources"]) / 1000
            result.answers.append(Answer(intended, done, fan_out_s, queued_s, pool_wait_s))
        if not self.in_window(done):
            return
        if kind is not None:
            result.errors[kind] += 1
            if kind == REFUSED:
                result.refused.record_seconds(done - intended)
            return
        result.ok += 1
        result.latency.record_seconds(done - intended)
        if payload is not None:
            self._read_contract(payload)

    def _read_contract(self, payload: dict[str, Any]) -> None:
        """The gateway's own view: its fan-out time and which worker answered."""
        self.result.gateway_elapsed.record_seconds(payload["elapsed_ms"] / 1000)
        self.result.partial += payload.get("partial") is True
        instance = str(payload.get("instance", "?"))
        self.result.instances[instance] += 1
        self.result.workers[f"{instance}/{payload.get('worker_pid', 0)}"] += 1
        if self.result.sample is None:
            self.result.sample = payload


def _contract(body: bytes) -> dict[str, Any] | None:
    """A gateway's answer, if the body is one (it has `elapsed_ms`)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) and "elapsed_ms" in payload else None


async def _closed_loop(session: aiohttp.ClientSession, recorder: _Recorder, start: float) -> None:
    spec = recorder.result.spec

    async def client(index: int) -> None:
        url = spec.urls[index % len(spec.urls)]
        # Clients join one by one across the warm-up, so they do not move in lockstep.
        await asyncio.sleep(index * spec.warmup_s / spec.concurrency)
        while time.perf_counter() < recorder.window_end:
            if spec.max_requests is not None and recorder.result.ok >= spec.max_requests:
                return
            await recorder.send(session, url, time.perf_counter())

    await asyncio.gather(*(client(index) for index in range(spec.concurrency)))


async def _open_loop(session: aiohttp.ClientSession, recorder: _Recorder, start: float) -> None:
    spec, result = recorder.result.spec, recorder.result
    slots = asyncio.Semaphore(spec.concurrency)
    tasks: set[asyncio.Task[None]] = set()
    urls = itertools.cycle(spec.urls)

    async def scheduled(url: str, intended: float) -> None:
        # Waiting here for a free slot still counts: latency runs from `intended`.
        ticket = recorder.register(intended)
        try:
            await slots.acquire()
        except asyncio.CancelledError:
            del recorder.pending[ticket]
            raise
        try:
            await recorder.send(session, url, intended, ticket)
        finally:
            slots.release()

    try:
        schedule = open_loop_schedule(
            spec.rate, spec.warmup_s + spec.duration_s, spec.arrivals, spec.seed
        )
        for offset in schedule:
            intended = start + offset
            delay = intended - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif recorder.in_window(intended):
                result.max_schedule_lag_ms = max(result.max_schedule_lag_ms, -delay * 1000)
            task = asyncio.create_task(scheduled(next(urls), intended))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(set(tasks))
    finally:
        for task in tasks:
            task.cancel()


async def _run(spec: LoadSpec) -> LoadResult:
    result = LoadResult(spec)
    # One keep-alive connection per client; the open loop may hold `concurrency` at once.
    connector = aiohttp.TCPConnector(limit=spec.concurrency, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        recorder = _Recorder(result, start + spec.warmup_s, start + spec.warmup_s + spec.duration_s)
        driver = _closed_loop if spec.loop == "closed" else _open_loop
        task = asyncio.create_task(driver(session, recorder, start))
        await asyncio.sleep(spec.warmup_s)
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        # The window ends on time, or earlier once a closed loop has its max_requests.
        await asyncio.wait({task}, timeout=max(0.0, recorder.window_end - wall_start))
        now = time.perf_counter()
        # Answers count from the window's start, even if this task woke a little off it.
        result.window_start = recorder.window_start
        result.window_end = min(now, recorder.window_end)
        result.window_s = result.window_end - result.window_start
        result.client_cpu = (time.process_time() - cpu_start) / max(now - wall_start, 1e-9)
        # Requests still waiting were cut off by the window's end: queueing made visible.
        result.unfinished = len(recorder.pending)
        if recorder.pending:
            result.oldest_unfinished_ms = (now - min(recorder.pending.values())) * 1000
        if spec.drain_s > 0 and not task.done():
            await asyncio.wait({task}, timeout=spec.drain_s)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return result


def run_load(spec: LoadSpec) -> LoadResult:
    """Run one load, bounded by its warm-up, window and timeout, on a uvloop event loop."""
    if spec.loop == "open" and spec.rate <= 0:
        raise ValueError("an open loop needs a rate above 0")
    return uvloop.run(_run(spec))
