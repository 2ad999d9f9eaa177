"""The open-loop sweep (``python -m bench sweep``): Poisson arrivals at shares rho of each
gateway's capacity, and the wait each point measured, against the wait queueing theory
predicts (core/theory.py) and against an ideal FIFO queue replayed on the same arrivals.

A point's wait is what load added to its answers besides their fan-out: an answer's time
from its intended send, less the gateway's own fan-out time (``elapsed_ms``) and what an
answer spends outside its fan-out at rest. The gateway also says how long it waited for
its route to start (``queued_ms``): on the sync gateway, the wait for a threadpool token.
"""

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.harness.http import get_json
from bench.harness.load import Answer, LoadResult, LoadSpec, open_loop_schedule, run_load
from bench.harness.results import git_commit, machine_description
from bench.harness.stack import GatewayName, healthz
from bench.harness.topology import env_overrides
from core.percentiles import percentile
from core.theory import Wait, batch_means, mdc_wait, mean_wait_spread, replay_fifo_wait

# No client-side cap on requests in flight: an open loop must never wait for itself.
IN_FLIGHT = 5000
# The async gateway has no server count to divide by: its capacity is what it serves with
# this many clients waiting on it (its CPU, on this machine), measured for this long.
ASYNC_CAPACITY_CLIENTS = 400
ASYNC_CAPACITY_WINDOW_S = 6.0
# Waits in a queue are correlated, so a point's error comes from this many batches.
BATCHES = 10
# A ratio to a predicted wait below this says nothing: the HTTP path's own noise under
# load (a few milliseconds: more connections, a busier CPU) is as large.
SMALLEST_RATED_WAIT_S = 0.005


@dataclass(frozen=True)
class SweepPreset:
    loads: tuple[float, ...]  # the shares of capacity, rho
    sync_window_s: float
    async_window_s: float


SWEEP_PRESETS = {
    # Two loads a side: about 2 minutes.
    "quick": SweepPreset((0.5, 0.8), sync_window_s=40, async_window_s=10),
    # The curve: about 17 minutes.
    "full": SweepPreset((0.3, 0.5, 0.7, 0.8, 0.9, 0.95), sync_window_s=120, async_window_s=20),
}


@dataclass(frozen=True)
class AtRest:
    """One request at a time: the fan-out's time (the queue's service time), and what an
    answer spends outside it with nothing else in flight (HTTP, the server, the wire)."""

    service_s: float
    overhead_s: float


@dataclass(frozen=True)
class Capacity:
    """What one gateway serves at rho = 1, and the queue theory takes it for."""

    gateway: GatewayName
    rate: float  # fan-outs a second
    servers: int | None  # sync: workers x tokens, an M/D/c queue; async: one per request
    rest: AtRest
    basis: str  # how the capacity was found, for people

    @property
    def service_s(self) -> float:
        return self.rest.service_s


@dataclass(frozen=True)
class SweepPoint:
    gateway: GatewayName
    rho: float
    rate: float
    seed: int
    window_s: float
    sent: int  # due in the window
    answered: int  # of those, answered well
    wait_mean_s: float
    wait_error_s: float  # standard error of the mean, by batch means
    wait_p99_s: float
    queued_mean_s: float  # the gateway's own: before its route started
    fan_out_mean_s: float
    predicted: Wait
    replayed_mean_s: float | None  # the ideal FIFO queue on these arrivals; async: none
    # M/D/c's middle 95% of mean waits over runs this long: where this one should lie.
    spread_s: tuple[float, float] | None = None
    # The load client's own health: a late or busy client makes waits of its own.
    client_cpu: float = 0.0
    max_schedule_lag_ms: float = 0.0

    @property
    def ratio(self) -> float | None:
        """Measured over predicted mean wait, where the prediction is large enough to rate."""
        return _rated(self.wait_mean_s, self.predicted.mean_s)

    @property
    def replay_ratio(self) -> float | None:
        """Measured over the replayed ideal queue's mean wait, likewise."""
        return _rated(self.wait_mean_s, self.replayed_mean_s)

    def record(self) -> dict[str, Any]:
        def ms(seconds: float | None) -> float | None:
            return None if seconds is None else round(seconds * 1000, 2)

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        low, high = self.spread_s or (None, None)
        return {
            "gateway": self.gateway,
            "rho": self.rho,
            "rate": round(self.rate, 3),
            "seed": self.seed,
            "window_s": round(self.window_s, 1),
            "sent": self.sent,
            "answered": self.answered,
            "wait_mean_ms": ms(self.wait_mean_s),
            "wait_error_ms": ms(self.wait_error_s),
            "wait_p99_ms": ms(self.wait_p99_s),
            "queued_mean_ms": ms(self.queued_mean_s),
            "fan_out_mean_ms": ms(self.fan_out_mean_s),
            "predicted_mean_ms": ms(self.predicted.mean_s),
            "predicted_p99_ms": ms(self.predicted.p99_s),
            "replayed_mean_ms": ms(self.replayed_mean_s),
            "spread_low_ms": ms(low),
            "spread_high_ms": ms(high),
            "ratio": rounded(self.ratio),
            "replay_ratio": rounded(self.replay_ratio),
            "client_cpu": round(self.client_cpu, 3),
            "max_schedule_lag_ms": round(self.max_schedule_lag_ms, 1),
        }


def _rated(measured: float, expected: float | None) -> float | None:
    if expected is None or expected < SMALLEST_RATED_WAIT_S:
        return None
    return measured / expected


@dataclass
class Sweep:
    preset: str
    command: str
    capacities: dict[str, Capacity]
    points: list[SweepPoint] = field(default_factory=list)
    async_http_client: str | None = None  # the async gateway's, when it was swept
    started_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    commit: str = field(default_factory=git_commit)

    def meta(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "preset": self.preset,
            "started_at": self.started_at,
            "commit": self.commit,
            "machine": machine_description(),
            "async_http_client": self.async_http_client,
            "capacities": {
                name: {
                    "rate": round(c.rate, 2),
                    "servers": c.servers,
                    "service_ms": round(c.service_s * 1000, 1),
                    "overhead_at_rest_ms": round(c.rest.overhead_s * 1000, 2),
                    "basis": c.basis,
                }
                for name, c in self.capacities.items()
            },
            # Every setting the bench's shell changed from .env: the stack may run on them.
            "env_overrides": env_overrides(),
        }

    def record(self) -> dict[str, Any]:
        return {"meta": self.meta(), "points": [point.record() for point in self.points]}


def predict(capacity: Capacity, rate: float, service_s: float) -> Wait:
    """Theory's wait at `rate` with this service time: M/D/c on the sync gateway's tokens;
    none on the async gateway, a server per request below its caps (M/D/infinity)."""
    if capacity.servers is None:
        return Wait(0.0, 0.0, 0.0)
    return mdc_wait(capacity.servers, rate, service_s)


def at_rest(base: str, answers: int = 5) -> AtRest:
    """Measured with the sweep's own client, on a kept-alive connection, one at a time."""
    one = float(get_json(f"{base}/news")["elapsed_ms"]) / 1000  # also warms the sources
    spec = LoadSpec(
        url=f"{base}/news",
        concurrency=1,
        duration_s=(answers + 2) * (one + 0.05),
        warmup_s=0.0,
        max_requests=answers,
        keep_answers=True,
    )
    measured = run_load(spec).answers
    return AtRest(
        statistics.median(a.fan_out_s for a in measured),
        statistics.median(a.done - a.intended - a.fan_out_s for a in measured),
    )


def sync_capacity(base: str) -> Capacity:
    info = healthz(base)
    servers = info.workers * info.threadpool_tokens
    rest = at_rest(base)
    basis = (
        f"{info.workers} worker(s) x {info.threadpool_tokens} tokens"
        f" / {rest.service_s * 1000:.0f} ms"
    )
    return Capacity("sync", servers / rest.service_s, servers, rest, basis)


def async_capacity(base: str) -> Capacity:
    rest = at_rest(base)
    spec = LoadSpec(
        url=f"{base}/news",
        concurrency=ASYNC_CAPACITY_CLIENTS,
        duration_s=ASYNC_CAPACITY_WINDOW_S,
        warmup_s=2.0,
        drain_s=10.0,
    )
    result = run_load(spec)
    basis = f"closed loop of {ASYNC_CAPACITY_CLIENTS} clients: what its CPU serves"
    return Capacity("async", result.throughput, None, rest, basis)


def point_spec(base: str, capacity: Capacity, rho: float, window_s: float, seed: int) -> LoadSpec:
    # Long enough for the queue to reach its steady state from empty: a few fan-outs.
    warmup_s = max(5.0, 4 * capacity.service_s)
    return LoadSpec(
        url=f"{base}/news",
        loop="open",
        concurrency=IN_FLIGHT,
        rate=rho * capacity.rate,
        duration_s=window_s,
        warmup_s=warmup_s,
        timeout_s=30.0,
        # Every request due in the window is answered before the next point starts.
        drain_s=30.0,
        arrivals="poisson",
        seed=seed,
        keep_answers=True,
    )


def wait_of(answer: Answer, rest: AtRest) -> float:
    """What load added to an answer besides its fan-out: its time from its intended send,
    less its fan-out and what an answer spends outside it at rest. Noise can make it a
    little negative at light load; it is kept so, or the mean would lean upwards."""
    return answer.done - answer.intended - answer.fan_out_s - rest.overhead_s


def summarise(capacity: Capacity, rho: float, spec: LoadSpec, result: LoadResult) -> SweepPoint:
    """The point's waits from the answers due in its window. The warm-up's answers only
    feed the replay, so that it starts from the queue the window found."""
    schedule = open_loop_schedule(
        spec.rate, spec.warmup_s + spec.duration_s, spec.arrivals, spec.seed
    )
    sent = sum(spec.warmup_s <= offset for offset in schedule)
    start, end = result.window_start, result.window_start + spec.duration_s
    answers = sorted(result.answers, key=lambda answer: answer.intended)
    kept = [index for index, answer in enumerate(answers) if start <= answer.intended < end]
    if len(kept) < BATCHES:
        raise RuntimeError(
            f"{capacity.gateway} at rho={rho}: {len(kept)} answers in the window, of {sent} due"
        )
    window = [answers[index] for index in kept]
    waits = [wait_of(answer, capacity.rest) for answer in window]
    mean, error = batch_means(waits, BATCHES)
    fan_out_mean = statistics.fmean(answer.fan_out_s for answer in window)
    replayed, spread = None, None
    if capacity.servers is not None:
        every = replay_fifo_wait(
            [a.intended for a in answers], [a.fan_out_s for a in answers], capacity.servers
        )
        replayed = statistics.fmean(every[index] for index in kept)
        spread = mean_wait_spread(
            capacity.servers, spec.rate, fan_out_mean, spec.warmup_s, spec.duration_s
        )
    return SweepPoint(
        gateway=capacity.gateway,
        rho=rho,
        rate=spec.rate,
        seed=spec.seed,
        window_s=spec.duration_s,
        sent=sent,
        answered=len(window),
        wait_mean_s=mean,
        wait_error_s=error,
        wait_p99_s=percentile(waits, 99),
        queued_mean_s=statistics.fmean(answer.queued_s for answer in window),
        fan_out_mean_s=fan_out_mean,
        predicted=predict(capacity, spec.rate, fan_out_mean),
        replayed_mean_s=replayed,
        spread_s=spread,
        client_cpu=result.client_cpu,
        max_schedule_lag_ms=result.max_schedule_lag_ms,
    )


def run_sweep(
    preset: SweepPreset,
    preset_name: str,
    bases: dict[GatewayName, str],
    command: str,
    seed: int = 0,
    on_point: Callable[[str], None] = lambda _: None,
) -> Sweep:
    """Each gateway in `bases`, at each load of the preset, in turn: sync, then async."""
    measure = {"sync": sync_capacity, "async": async_capacity}
    windows = {"sync": preset.sync_window_s, "async": preset.async_window_s}
    sweep = Sweep(preset_name, command, {})
    for gateway, base in bases.items():
        on_point(f"{gateway}: its capacity")
        capacity = measure[gateway](base)
        sweep.capacities[gateway] = capacity
        if gateway == "async":
            sweep.async_http_client = healthz(base).http_client
        for index, rho in enumerate(preset.loads):
            on_point(f"{gateway}: rho={rho:g}, {rho * capacity.rate:.1f} req/s")
            # A seed per point: each load sees its own arrivals, and a rerun the same ones.
            spec = point_spec(base, capacity, rho, windows[gateway], seed + index)
            sweep.points.append(summarise(capacity, rho, spec, run_load(spec)))
    return sweep
