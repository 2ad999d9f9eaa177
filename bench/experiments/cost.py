"""What one fan-out costs in CPU, in units of a trivial request measured in the same run.

A time alone means little on a shared machine: the same code costs 2 ms a fan-out on a
quiet evening and 3 on a busy one. A ratio measured in one run does not move with it. The
unit is one ``GET /healthz`` of the same gateway worker, through the same server and the
same middleware, at the same concurrency: what any request costs before it does anything.

For each concurrency, ``measure_cost`` runs against the running stack:
- rest: no load, to price what the upstreams spend anyway (Docker's healthchecks);
- then, ``ROUNDS`` times, two windows side by side: a closed loop on the async gateway's
  /healthz (trivial), then one on its /news (fan-out, each request 3 source calls).

and prices each window from the host, as ``bench compare`` does (bench/harness/probe.py): the
gateway's workers' CPU, the upstream containers' CPU less their rest, and the load client's
own CPU.
"""

import statistics
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from bench.harness.load import LoadSpec, run_load
from bench.harness.probe import SAMPLE_EVERY_S, StackProbe, WindowCost

# The targets, in trivial requests (docs/benchmark.md, "Where a fan-out's CPU goes").
FAN_OUT_TARGET = 5.0
UPSTREAM_CALL_TARGET = 1.2
REST_S = 3.0
ROUNDS = 3


@dataclass(frozen=True)
class CostPoint:
    """One concurrency's windows, priced: medians over the rounds."""

    concurrency: int
    rounds: int
    trivial_per_s: float
    fan_outs_per_s: float
    trivial_ms: float  # gateway worker CPU per /healthz: the unit
    fan_out_ms: float  # gateway worker CPU per fan-out
    upstream_call_ms: float  # upstream CPU per source call, their rest taken out
    client_fan_out_ms: float  # the load client's CPU per fan-out
    calls_per_fan_out: int
    # Each round's fan-out / trivial, from windows side by side: the median is the figure,
    # the range is its spread on this machine.
    fan_out_units_by_round: tuple[float, ...]
    upstream_call_units_by_round: tuple[float, ...]
    errors: int  # failed requests in any window: a point with any is not priced right

    @property
    def fan_out_units(self) -> float:
        return statistics.median(self.fan_out_units_by_round)

    @property
    def upstream_call_units(self) -> float:
        return statistics.median(self.upstream_call_units_by_round)

    @property
    def machine_fan_out_ms(self) -> float:
        """Everything one fan-out costs the machine: gateway, its calls, and the client."""
        upstreams = self.upstream_call_ms * self.calls_per_fan_out
        return self.fan_out_ms + upstreams + self.client_fan_out_ms

    def record(self) -> dict[str, object]:
        return {
            **asdict(self),
            "fan_out_units": round(self.fan_out_units, 2),
            "upstream_call_units": round(self.upstream_call_units, 2),
            "machine_fan_out_ms": round(self.machine_fan_out_ms, 3),
        }


@dataclass(frozen=True)
class Window:
    """One load window, priced: per answer, in ms."""

    per_s: float
    gateway_ms: float
    upstream_ms: float  # all upstreams' CPU per answer, their rest taken out
    client_ms: float
    errors: int


def _priced_after(probe: StackProbe, start: float, end: float) -> WindowCost | None:
    """The window's cost, once the probe has a sample past its end to price it with."""
    time.sleep(2 * SAMPLE_EVERY_S)
    return probe.cost(start, end)


def _window(
    probe: StackProbe, url: str, concurrency: int, duration_s: float, rest_cores: float
) -> Window:
    spec = LoadSpec(url, concurrency=concurrency, duration_s=duration_s, warmup_s=1.0, drain_s=5)
    result = run_load(spec)
    cost = _priced_after(probe, result.window_start, result.window_end)
    if cost is None or result.ok == 0:
        raise RuntimeError(f"could not price the window on {url}: is the stack on this host?")
    upstream_s = (cost.upstream_cpu_cores - rest_cores) * result.window_s
    return Window(
        per_s=result.throughput,
        gateway_ms=cost.gateway_cpu_s / result.ok * 1000,
        upstream_ms=max(upstream_s, 0.0) / result.ok * 1000,
        client_ms=result.client_cpu * result.window_s / result.ok * 1000,
        errors=sum(result.errors.values()),
    )


def measure_point(
    probe: StackProbe,
    async_url: str,
    concurrency: int,
    duration_s: float,
    rounds: int = ROUNDS,
    calls: int = 3,
) -> CostPoint:
    """Rest, then `rounds` pairs of windows side by side: trivial requests, fan-outs.

    A busy machine slows both windows of a pair alike; its drift over a minute (here: a
    trivial request from 0.25 to 0.37 ms) would not cancel between windows far apart.
    """
    base = async_url.rstrip("/")
    trivial, fan_out = list[Window](), list[Window]()
    with probe.running():
        rest_start = time.perf_counter()
        time.sleep(REST_S)
        rest = _priced_after(probe, rest_start, time.perf_counter())
        if rest is None:
            raise RuntimeError("could not price the rest window: is the stack on this host?")
        rest_cores = rest.upstream_cpu_cores
        for _ in range(rounds):
            trivial.append(_window(probe, f"{base}/healthz", concurrency, duration_s, 0.0))
            fan_out.append(_window(probe, f"{base}/news", concurrency, duration_s, rest_cores))
    median = statistics.median
    return CostPoint(
        concurrency=concurrency,
        rounds=rounds,
        trivial_per_s=round(median(w.per_s for w in trivial), 1),
        fan_outs_per_s=round(median(w.per_s for w in fan_out), 1),
        trivial_ms=round(median(w.gateway_ms for w in trivial), 4),
        fan_out_ms=round(median(w.gateway_ms for w in fan_out), 4),
        upstream_call_ms=round(median(w.upstream_ms for w in fan_out) / calls, 4),
        client_fan_out_ms=round(median(w.client_ms for w in fan_out), 4),
        calls_per_fan_out=calls,
        fan_out_units_by_round=tuple(
            round(f.gateway_ms / t.gateway_ms, 2) for t, f in zip(trivial, fan_out, strict=True)
        ),
        upstream_call_units_by_round=tuple(
            round(f.upstream_ms / calls / t.gateway_ms, 2)
            for t, f in zip(trivial, fan_out, strict=True)
        ),
        errors=sum(w.errors for w in (*trivial, *fan_out)),
    )


def measure_cost(
    probe: StackProbe,
    async_url: str,
    concurrencies: Iterable[int],
    duration_s: float,
    rounds: int = ROUNDS,
) -> list[CostPoint]:
    """One priced point per concurrency, each with its own trivial unit."""
    return [measure_point(probe, async_url, c, duration_s, rounds) for c in concurrencies]
