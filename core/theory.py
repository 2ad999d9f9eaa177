"""What each gateway and mode could do at best: the ideal lines every plot is drawn against.

With per-source delays d, a fan-out costs sum(d) done one after another, max(d) overlapped.
Each resource a fan-out holds caps throughput at (units held at once) / (time it holds one
for), Little's law. The ideal is the lowest of every cap that applies:

- clients: a closed loop of C clients keeps at most C fan-outs in flight: C / cost;
- sync: each request holds one threadpool token for its whole fan-out:
  workers x tokens / cost;
- sync threads mode: also one executor thread per call, for d_i each:
  workers x executor threads / sum(d);
- async: one pooled connection per call, for d_i each: workers x max_connections / sum(d);
- blocking: the event loop itself, for the whole fan-out: workers / sum(d);
- admission, when the overload bound is on: workers x max_in_flight / cost.

requests' pool is no cap: it does not block (pool_block=False); past pool_maxsize it opens
a connection and drops it afterwards, which costs CPU but queues nothing.

Two CPU lines are measured, not designed, and a row is CPU-bound when either is below the
ideal:
- the gateway's: the cores its workers can use over their CPU time per request;
- the machine's: (cores - others' CPU) / (gateway + upstreams + client CPU per request).
  On a machine that runs everything, the gateway is often not what runs out: the whole
  machine is. "Others" is whatever else kept the cores busy in the same window (Docker's
  port proxy, the daemons, other tenants), so on a saturated machine this line is what
  was measured.
"""

import heapq
import itertools
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal

from pydantic import BaseModel

from core.percentiles import percentile


@dataclass(frozen=True)
class Target:
    """One gateway endpoint and mode, as the benchmark drives it."""

    name: str
    gateway: Literal["sync", "async"]
    path: str
    params: tuple[tuple[str, str], ...]
    overlapped: bool  # True: a fan-out costs max(d); False: sum(d)
    description: str


TARGETS = (
    Target("sync", "sync", "/news", (), False, "def route, requests, one call after another"),
    Target("sync-threads", "sync", "/news", (("mode", "threads"),), True, "def route, thread pool"),
    Target("async", "async", "/news", (), True, "async def route, asyncio.gather"),
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
class GatewayLimits:
    """A gateway's caps as its /healthz reports them; all but workers are per worker."""

    workers: int
    threadpool_tokens: int
    executor_threads: int
    max_connections: int
    max_in_flight: int = 0  # the overload bound; 0: none

    @classmethod
    def reported(cls, health: BaseModel) -> "GatewayLimits":
        """The limits a gateway reports on its ``/healthz`` (gateway.models.GatewayHealth)."""
        return cls(**health.model_dump(include={f.name for f in fields(cls)}))


@dataclass(frozen=True)
class Cap:
    name: str
    throughput: float  # requests per second


@dataclass(frozen=True)
class Ideal:
    throughput: float  # requests per second
    latency_s: float  # what a closed-loop client waits, queueing included
    binding: str  # the cap that sets the throughput


def fan_out_cost(delays_s: Sequence[float], overlapped: bool) -> float:
    if not delays_s:
        raise ValueError("at least one source delay is needed")
    return max(delays_s) if overlapped else sum(delays_s)


def caps(
    target: Target, concurrency: int, limits: GatewayLimits, delays_s: Sequence[float]
) -> list[Cap]:
    """Every cap on this target's throughput at this concurrency."""
    if concurrency < 1 or limits.workers < 1:
        raise ValueError("concurrency and workers must be at least 1")
    cost, total = fan_out_cost(delays_s, target.overlapped), sum(delays_s)
    found = [Cap("clients", concurrency / cost)]
    if target.gateway == "sync":
        found.append(Cap("threadpool", limits.workers * limits.threadpool_tokens / cost))
        if target.overlapped:
            found.append(Cap("executor", limits.workers * limits.executor_threads / total))
    elif target.name == "blocking":
        found.append(Cap("event loop", limits.workers / total))
    else:
        found.append(Cap("connection pool", limits.workers * limits.max_connections / total))
    if limits.max_in_flight > 0:
        found.append(Cap("admission", limits.workers * limits.max_in_flight / cost))
    return found


def ideal(
    target: Target, concurrency: int, limits: GatewayLimits, delays_s: Sequence[float]
) -> Ideal:
    """The best a closed loop of `concurrency` clients can see from this target."""
    lowest = min(caps(target, concurrency, limits, delays_s), key=lambda cap: cap.throughput)
    cost = fan_out_cost(delays_s, target.overlapped)
    # Past the lowest cap, requests queue: each client waits C / throughput (Little's law).
    latency = max(cost, concurrency / lowest.throughput)
    return Ideal(lowest.throughput, latency, lowest.name)


def cpu_line(workers: int, cores: float, cpu_s_per_request: float | None) -> float:
    """Requests per second the gateway's CPU allows: usable cores / CPU per request.

    A worker is one process with one GIL, so it uses at most one core, and all of them
    together at most the cores the machine (or the container's quota) gives them.
    """
    if cpu_s_per_request is None or cpu_s_per_request <= 0:
        return math.inf
    return min(workers, cores) / cpu_s_per_request


def machine_line(
    cores: float, others_cores: float, machine_cpu_s_per_request: float | None
) -> float:
    """Requests per second the whole machine allows: the cores not taken by others, over
    what one request costs the gateway, the upstreams and the load client together."""
    if machine_cpu_s_per_request is None or machine_cpu_s_per_request <= 0:
        return math.inf
    return max(cores - others_cores, 0.0) / machine_cpu_s_per_request


# --- the blog post's other claims (bench claims) ------------------------------------------


def overload_ideal(
    target: Target, limits: GatewayLimits, delays_s: Sequence[float], in_flight: int
) -> Ideal:
    """What an open loop past capacity, `in_flight` requests at most, can get at best: the
    capacity, each admitted request served in one fan-out. The capacity is the lowest cap
    with every client admitted."""
    unlimited = ideal(target, in_flight, limits, delays_s)
    return Ideal(unlimited.throughput, fan_out_cost(delays_s, target.overlapped), unlimited.binding)


def burst_ideal(at_once: int, lanes: int) -> float:
    """K equal requests sent together, served `lanes` at a time: the whole burst takes
    ceil(K / lanes) times one alone. A blocking call in ``async def`` has one lane, the
    event loop; a ``def`` route has the threadpool's tokens."""
    if at_once < 1 or lanes < 1:
        raise ValueError("at_once and lanes must be at least 1")
    return float(math.ceil(at_once / lanes))


def cpu_lanes(placement: str, processes: int, cores: float) -> float:
    """How many cores CPU work in this placement can use on one worker.

    Inline, ``def`` and the threadpool run Python under one GIL: one core at most, and the
    inline work also stops the event loop. A process pool runs as many jobs as it has
    processes, at most as many as the cores the container may use.
    """
    if placement == "process":
        return min(float(processes), cores)
    return min(1.0, cores)


def cpu_jobs_ideal(job_s: float, lanes: float) -> float:
    """CPU jobs per second: each costs `job_s` of one core, and `lanes` cores run them."""
    if job_s <= 0:
        raise ValueError("a job must cost some CPU")
    return lanes / job_s


# --- waiting, under open-loop (Poisson) arrivals -----------------------------------------
#
# The ideal lines give capacity: what a gateway serves when every client waits for its
# answer. Traffic that does not wait arrives at its own rate, and queues whenever requests
# bunch up, even below capacity. With Poisson arrivals at rate lam and a service time d
# that hardly varies (the fan-out's cost), each gateway is a textbook queue:
# - sync: c = workers x tokens servers, each a threadpool token held for d: M/D/c;
# - blocking: one server per worker (its event loop), for sum(d): M/D/1 per worker;
# - async: a server per request below its pool and CPU caps, M/D/infinity: no wait.


@dataclass(frozen=True)
class Wait:
    """The predicted wait before service starts: its mean, its 99th percentile, and the
    chance of waiting at all. Infinite at or past capacity (rho >= 1)."""

    mean_s: float
    p99_s: float
    p_wait: float


def erlang_c(servers: int, offered: float) -> float:
    """The chance that an arrival waits in M/M/c, offered load a = lam x d (Erlang C),
    by the stable recursion on Erlang B: B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1))."""
    if offered >= servers:
        return 1.0
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    rho = offered / servers
    return blocking / (1 - rho + rho * blocking)


def mdc_wait(servers: int, rate: float, service_s: float) -> Wait:
    """M/D/c: Poisson arrivals, c servers, a fixed service time.

    The mean is Cosmetatos' approximation (G. P. Cosmetatos, "Some approximate equilibrium
    results for the multi-server queue M/G/r", Operational Research Quarterly 27, 1976):
    W(M/D/c) = 1/2 W(M/M/c) [1 + (1 - rho)(c - 1)(sqrt(4 + 5c) - 2) / (16 rho c)], exact
    for c = 1 (Pollaczek-Khinchine). The tail is the exponential one of Whitt's
    approximations (W. Whitt, "Approximations for the GI/G/m queue", Production and
    Operations Management 2, 1993): P(W > t) = P(W > 0) exp(-t P(W > 0) / E[W]), with
    P(W > 0) from Erlang C. tests/unit/test_theory.py checks both against a simulated
    queue (simulate_fifo_wait): the mean within 5%, the p99 from 5% low to 20% high.
    """
    offered = rate * service_s
    rho = offered / servers
    if rho >= 1:
        return Wait(math.inf, math.inf, 1.0)
    if rho <= 0:
        return Wait(0.0, 0.0, 0.0)
    p_wait = erlang_c(servers, offered)
    mm_mean = p_wait * service_s / (servers * (1 - rho))
    correction = (1 - rho) * (servers - 1) * (math.sqrt(4 + 5 * servers) - 2) / (16 * rho * servers)
    mean = 0.5 * mm_mean * (1 + correction)
    return Wait(mean, _exponential_tail_p99(mean, p_wait), p_wait)


def _exponential_tail_p99(mean_s: float, p_wait: float) -> float:
    if p_wait <= 0.01 or mean_s <= 0:
        return 0.0
    return mean_s / p_wait * math.log(p_wait / 0.01)


def poisson_arrivals(rate: float, duration_s: float, seed: int) -> list[float]:
    """Arrival times in [0, duration) of a Poisson process at `rate`: independent
    exponential gaps, reproducible from `seed`. The load client sends these, and the
    simulations draw them."""
    draw, times, now = random.Random(seed), [], 0.0
    while (now := now + draw.expovariate(rate)) < duration_s:
        times.append(now)
    return times


def replay_fifo_wait(
    arrivals: Sequence[float], services: Sequence[float], servers: int
) -> list[float]:
    """Each arrival's wait in an ideal FIFO queue of `servers` servers, fed these arrival
    times (sorted) and service times, by the Kiefer-Wolfowitz recursion: each starts when
    it arrives or when the earliest server frees, whichever is later.

    Fed a run's own arrivals and fan-out times, it gives the wait that run should have seen
    had the gateway been that ideal queue: the yardstick free of the run's luck, where the
    theory's mean is the long-run one."""
    free_at = [0.0] * servers
    waits = []
    for arrived, service in zip(arrivals, services, strict=True):
        start = max(arrived, heapq.heappop(free_at))
        heapq.heappush(free_at, start + service)
        waits.append(start - arrived)
    return waits


def simulate_fifo_wait(
    servers: int, rate: float, service_s: float, arrivals: int, seed: int = 0
) -> tuple[float, float]:
    """The mean and 99th percentile wait of a FIFO queue with `servers` servers, Poisson
    arrivals and a fixed service time (replay_fifo_wait). The first tenth is a warm-up,
    left out."""
    draw = random.Random(seed)
    times = list(itertools.accumulate(draw.expovariate(rate) for _ in range(arrivals)))
    waits = replay_fifo_wait(times, [service_s] * arrivals, servers)
    kept = waits[arrivals // 10 :]
    return sum(kept) / len(kept), percentile(kept, 99)


def mean_wait_spread(
    servers: int,
    rate: float,
    service_s: float,
    warmup_s: float,
    window_s: float,
    runs: int = 200,
    share: float = 0.95,
) -> tuple[float, float]:
    """The middle `share` of the mean waits M/D/c gives runs like a measured one: Poisson
    arrivals into an empty queue, the warm-up's left out, the window's averaged.

    One run's mean wait is far from the long-run one at moderate load: a bunch of
    arrivals delays everything after it, so a few minutes hold few independent stretches.
    This is the range a measured mean must be judged against, from the same model."""
    means = []
    for seed in range(runs):
        times = poisson_arrivals(rate, warmup_s + window_s, seed)
        waits = replay_fifo_wait(times, [service_s] * len(times), servers)
        kept = [wait for wait, time in zip(waits, times, strict=True) if time >= warmup_s]
        means.append(statistics.fmean(kept) if kept else 0.0)
    means.sort()
    tail = (1 - share) / 2
    return means[int(tail * runs)], means[min(runs - 1, math.ceil((1 - tail) * runs) - 1)]


def batch_means(values: Sequence[float], batches: int = 10) -> tuple[float, float]:
    """The mean of a run's waits in arrival order, and its standard error by the method of
    batch means: waits in a queue are correlated (one bunch of arrivals delays many), so the
    textbook s / sqrt(n) would be far too small. The run is cut into `batches` consecutive
    batches, long enough to be nearly independent, and the error is that of their means
    (A. M. Law, Simulation Modeling and Analysis, 5th ed., section 9.5.3)."""
    size = len(values) // batches
    if size < 1:
        raise ValueError(f"{len(values)} values cannot make {batches} batches")
    means = [sum(values[i * size : (i + 1) * size]) / size for i in range(batches)]
    return sum(values) / len(values), statistics.stdev(means) / math.sqrt(batches)
