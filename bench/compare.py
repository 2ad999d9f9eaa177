"""The matrix: every target x concurrency x gunicorn workers, run against the compose stack."""

import json
import os
import platform
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.load import LoadResult, LoadSpec, run_load
from bench.theory import TARGETS, Ideal, Target, fan_out_cost, ideal

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Preset:
    concurrency: tuple[int, ...]
    workers: tuple[int, ...]
    duration_s: float
    warmup_s: float
    # One worker serves /news/blocking one request at a time: at C=100 it would need
    # minutes just to drain its queue, so the matrix stops that endpoint earlier.
    blocking_max_concurrency: int


# A server keeps working on requests the client stopped waiting for. Before the next point
# on the same gateway, the client waits for its last answers, up to this long.
MAX_DRAIN_S = 30.0

PRESETS = {
    # Under 3 minutes on 2 cores: the two concurrencies the plots turn on, and a restart.
    "quick": Preset((10, 100), (1, 2), duration_s=3, warmup_s=1, blocking_max_concurrency=10),
    "full": Preset(
        (1, 10, 50, 100, 200), (1, 2, 4), duration_s=10, warmup_s=3, blocking_max_concurrency=10
    ),
}


@dataclass
class Row:
    target: Target
    workers: int
    concurrency: int
    result: LoadResult
    ideal: Ideal

    def record(self) -> dict[str, Any]:
        summary = self.result.summary()
        return {
            "target": self.target.name,
            "workers": self.workers,
            **summary,
            "ideal_throughput": round(self.ideal.throughput, 2),
            "ideal_latency_ms": round(self.ideal.latency_s * 1000, 1),
            "throughput_vs_ideal": round(self.result.throughput / self.ideal.throughput, 3),
            "p50_vs_ideal": round(summary["latency_p50_ms"] / (self.ideal.latency_s * 1000), 3),
        }


@dataclass
class Comparison:
    preset_name: str
    delays_s: dict[str, float]
    threadpool_tokens: int
    max_connections: int
    rows: list[Row] = field(default_factory=list)
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)
    started_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))

    def meta(self) -> dict[str, Any]:
        return {
            "preset": self.preset_name,
            "started_at": self.started_at,
            "machine": machine_description(),
            "source_delays_ms": {k: round(v * 1000, 1) for k, v in self.delays_s.items()},
            "threadpool_tokens": self.threadpool_tokens,
            "async_max_connections": self.max_connections,
        }


def machine_description() -> str:
    cpus = os.cpu_count() or 0
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.system()} {platform.machine()}, {cpus} cores, {memory_gib:.0f} GiB"


def get_json(url: str, timeout: float = 30) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: dict[str, Any] = json.load(response)
        return body


def restart_gateways(workers: int | None) -> None:
    """Recreate both gateways with `workers` gunicorn workers (None: as configured)."""
    env = dict(os.environ)
    if workers is not None:
        env.update(SYNC_WORKERS=str(workers), ASYNC_WORKERS=str(workers))
    # -t 2: a worker stuck in /news/blocking is killed after 2 s instead of draining.
    subprocess.run(
        [str(ROOT / "scripts" / "up.sh"), "--no-build", "-t", "2", "sync-gateway", "async-gateway"],
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


def run_matrix(
    preset_name: str,
    sync_base: str,
    async_base: str,
    restart: bool = True,
    on_point: Callable[[str], None] = lambda _: None,
) -> Comparison:
    preset = PRESETS[preset_name]
    bases = {"sync": sync_base, "async": async_base}
    sync_info = get_json(f"{sync_base}/healthz")
    async_info = get_json(f"{async_base}/healthz")
    comparison = Comparison(
        preset_name,
        delays_s=calibrate(async_base),
        threadpool_tokens=sync_info["threadpool_tokens"],
        max_connections=async_info["max_connections"],
    )
    delays = list(comparison.delays_s.values())
    configured_workers = running_workers = sync_info["workers"]
    if async_info["workers"] != configured_workers:
        running_workers = -1  # the two differ: restart before the first point
    try:
        for workers in preset.workers:
            if restart and workers != running_workers:
                on_point(f"restarting gateways with {workers} worker(s)")
                restart_gateways(workers)
                running_workers = workers
            # The blocking endpoint goes last: its queue may outlive its window, and the
            # next restart ends it.
            points = [
                (target, concurrency)
                for target in TARGETS
                for concurrency in preset.concurrency
                if target.name != "blocking" or concurrency <= preset.blocking_max_concurrency
            ]
            for index, (target, concurrency) in enumerate(points):
                on_point(f"{target.name} workers={workers} C={concurrency}")
                following = points[index + 1][0] if index + 1 < len(points) else None
                same_gateway_next = following is not None and following.gateway == target.gateway
                best = ideal(target, concurrency, workers, delays, comparison.threadpool_tokens)
                spec = LoadSpec(
                    url=bases[target.gateway] + target.path,
                    params=dict(target.params),
                    concurrency=concurrency,
                    duration_s=whole_cycles(preset.duration_s, target, delays),
                    # Long enough for a queue to fill, where there is one (up to a window).
                    warmup_s=min(max(preset.warmup_s, best.latency_s), preset.duration_s),
                    drain_s=MAX_DRAIN_S if same_gateway_next else 0.0,
                )
                result = run_load(spec)
                comparison.rows.append(Row(target, workers, concurrency, result, best))
                # The waterfall: one answer from the lightest load, untouched by queueing.
                if concurrency == preset.concurrency[0] and result.sample is not None:
                    comparison.samples.setdefault(target.name, result.sample)
    finally:
        if restart and running_workers != configured_workers:
            # Leave the stack as the user started it.
            on_point("restoring the gateways' worker counts")
            restart_gateways(None)
    return comparison


def points_in(preset_name: str) -> int:
    preset = PRESETS[preset_name]
    per_worker = sum(
        1
        for target in TARGETS
        for c in preset.concurrency
        if target.name != "blocking" or c <= preset.blocking_max_concurrency
    )
    return per_worker * len(preset.workers)
