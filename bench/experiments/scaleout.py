"""Replicas against workers, on Docker Swarm: each gateway as R replicas of one gunicorn
worker, and as one replica of W workers, on the same machine in the same run.

``python -m bench compare --target swarm`` runs it against the stack ``make swarm-up``
deployed. It reshapes one gateway at a time with ``scripts/swarm.sh gateway NAME REPLICAS
WORKERS``, spreads the load client's connections over the replicas' own ports (a node's
host-mode port holds one replica; on a cluster the ingress mesh would spread them), prices
every point with the probe, and puts each gateway back as it found it.
"""

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from bench.experiments.plan import GatewayConfig, Point, Preset, prepare
from bench.experiments.rows import Comparison, Row
from bench.harness.load import LoadResult, LoadSpec
from bench.harness.probe import StackProbe, WindowCost, swarm_probe
from bench.harness.stack import (
    GATEWAY_SERVICES,
    UPSTREAM_SERVICES,
    GatewayName,
    ProbedStack,
    calibrate,
    healthz,
)
from bench.harness.topology import ROOT
from core.theory import TARGETS_BY_NAME
from gateway.models import GatewayHealth


@dataclass(frozen=True)
class Shape:
    replicas: int
    workers: int  # per replica

    @property
    def processes(self) -> int:
        return self.replicas * self.workers

    def describe(self) -> str:
        return f"{self.replicas} replica(s) x {self.workers} worker(s)"


def shapes(sizes: tuple[int, ...]) -> list[Shape]:
    """One process, then one replica of each larger worker count, then each larger replica
    count of one worker: the two lines of the plot, which share their first point."""
    larger = [size for size in sizes if size > 1]
    return [Shape(1, 1), *(Shape(1, n) for n in larger), *(Shape(n, 1) for n in larger)]


@dataclass(frozen=True)
class ScaleOutPreset:
    sizes: tuple[int, ...]
    # Each gateway measured, at this many clients: past what one process serves.
    concurrency: tuple[tuple[GatewayName, int], ...]
    duration_s: float
    warmup_s: float

    @property
    def window(self) -> Preset:
        """The window and warm-up, in the form the compose matrix's load_spec reads."""
        return Preset((), self.sizes, self.duration_s, self.warmup_s, 0)


SCALE_OUT_PRESETS = {
    # About a minute and a half: the sync gateway, whose capacity is its workers' tokens
    # (40 per worker), as 1 process, 2 workers and 2 replicas.
    "quick": ScaleOutPreset((1, 2), (("sync", 100),), duration_s=3, warmup_s=1),
    # About fifteen minutes: both gateways at 1, 2 and 4. The sync gateway at C=200 wants
    # 5 x 40 tokens (4 processes serve 160 at once); the async one at C=400 is CPU-bound.
    "full": ScaleOutPreset((1, 2, 4), (("sync", 200), ("async", 400)), duration_s=10, warmup_s=3),
}


class ScaleOutStack(Protocol):
    """What the scale-out needs of a deployed stack (SwarmStack is the real one)."""

    def urls(self, gateway: GatewayName) -> list[str]: ...

    def health(self, url: str) -> GatewayHealth: ...

    def calibrate(self) -> dict[str, float]: ...

    def reshape(self, gateway: GatewayName, shape: Shape) -> tuple[list[str], GatewayHealth]: ...

    def measure(
        self, gateway: GatewayName, spec: LoadSpec
    ) -> tuple[LoadResult, WindowCost | None]: ...

    def priced(self, gateway: GatewayName) -> bool: ...


class SwarmStack(ProbedStack):
    """A deployed stack, driven through scripts/swarm.sh as a user drives it."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def script(self, *args: str) -> str:
        result = subprocess.run(
            [str(ROOT / "scripts" / "swarm.sh"), *args],
            env={**os.environ, "SWARM_STACK": self.name},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"swarm.sh {' '.join(args)} failed:\n{result.stderr[-2000:]}")
        return result.stdout

    def urls(self, gateway: GatewayName) -> list[str]:
        return self.script("urls", GATEWAY_SERVICES[gateway]).split()

    def health(self, url: str) -> GatewayHealth:
        return healthz(url)

    def calibrate(self) -> dict[str, float]:
        return calibrate(self.urls("async")[0])

    def reshape(self, gateway: GatewayName, shape: Shape) -> tuple[list[str], GatewayHealth]:
        """Scale the gateway to this shape, wait until every replica is healthy, check each
        against the shape it should have, and return their URLs and one's /healthz."""
        service = GATEWAY_SERVICES[gateway]
        self.forget_probe(gateway)
        urls = self.script("gateway", service, str(shape.replicas), str(shape.workers)).split()
        found = [self.health(url) for url in urls]
        if len(urls) != shape.replicas or any(f.workers != shape.workers for f in found):
            workers = [f.workers for f in found]
            raise RuntimeError(
                f"{service}: wanted {shape.describe()}, found {len(urls)} replica(s)"
                f" with workers {workers}"
            )
        return urls, found[0]

    def new_probe(self, gateway: GatewayName) -> StackProbe | None:
        return swarm_probe(self.name, GATEWAY_SERVICES[gateway], UPSTREAM_SERVICES)


def run_scale_out(
    preset_name: str,
    stack: ScaleOutStack,
    on_point: Callable[[str], None] = lambda _: None,
    on_plan: Callable[[int], None] = lambda _: None,
) -> Comparison:
    preset = SCALE_OUT_PRESETS[preset_name]
    found: dict[GatewayName, tuple[Shape, GatewayHealth]] = {}
    for gateway in GATEWAY_SERVICES:
        urls = stack.urls(gateway)
        if not urls:
            raise RuntimeError(f"no replica of {gateway} runs in the stack: make swarm-up")
        info = stack.health(urls[0])
        found[gateway] = (Shape(len(urls), info.workers), info)
    comparison = Comparison(
        f"swarm {preset_name}",
        delays_s=stack.calibrate(),
        stack={gateway: GatewayConfig.running(info) for gateway, (_, info) in found.items()},
    )
    delays = list(comparison.delays_s.values())
    plan = [(g, c, shape) for g, c in preset.concurrency for shape in shapes(preset.sizes)]
    on_plan(len(plan))
    current = {gateway: shape for gateway, (shape, _) in found.items()}

    def restore(gateway: GatewayName) -> None:
        shape = found[gateway][0]
        if current[gateway] != shape:
            on_point(f"restoring the {gateway} gateway: {shape.describe()}")
            stack.reshape(gateway, shape)
            current[gateway] = shape

    try:
        for index, (gateway, concurrency, shape) in enumerate(plan):
            # A gateway whose points are done goes back as it was before the next one's: its
            # idle replicas would cost the other gateway's points CPU (their healthchecks).
            if index > 0 and plan[index - 1][0] != gateway:
                restore(plan[index - 1][0])
            on_point(f"reshaping the {gateway} gateway: {shape.describe()}")
            urls, info = stack.reshape(gateway, shape)
            current[gateway] = shape
            config = replace(GatewayConfig.running(info), replicas=shape.replicas)
            point = Point(TARGETS_BY_NAME[gateway], concurrency, config)
            # Every per-worker cap counts once per process, on whichever replica it runs.
            run = prepare(point, info, preset.window, delays, urls, True, shape.processes)
            on_point(f"{gateway} {shape.describe()} C={concurrency}")
            result, cost = stack.measure(gateway, run.spec)
            if not stack.priced(gateway):
                comparison.probe_note = "unavailable: this host cannot read the tasks' cgroups"
            series = f"{gateway} · " + ("replicas" if shape.replicas > 1 else "workers")
            row = Row(point, series, run.limits, result, run.best, cost, os.cpu_count() or 1)
            comparison.rows.append(row)
    finally:
        for gateway in found:
            restore(gateway)
    return comparison


def ratios(comparison: Comparison) -> dict[str, float]:
    """Each gateway's throughput as N replicas over N workers, for every N measured."""
    by_shape = {
        (row.target.gateway, row.point.config.replicas, row.workers): row.result.throughput
        for row in comparison.rows
    }
    found = {}
    for (gateway, replicas, workers), throughput in sorted(by_shape.items()):
        as_workers = by_shape.get((gateway, 1, replicas))
        if workers == 1 and replicas > 1 and as_workers:
            found[f"{gateway}: {replicas} replicas / {replicas} workers"] = throughput / as_workers
    return found
