"""The matrix, run against the compose stack: every point bench/experiments/plan.py plans, each one
priced (the gateway workers' CPU and memory, the upstreams' CPU) into a row.

It restarts a gateway only when a point needs other settings than it runs, and at the end
puts both back exactly as their /healthz described them at the start.
"""

import os
from collections.abc import Callable
from typing import Protocol

from bench.experiments.plan import PRESETS, GatewayConfig, label, needs_drain, plan, prepare
from bench.experiments.rows import Comparison, Row
from bench.harness.stack import DrivenStack, GatewayName


class MatrixStack(DrivenStack, Protocol):
    """What the matrix needs of a stack: whether the host can price a gateway's load."""

    def priced(self, gateway: GatewayName) -> bool: ...


def run_matrix(
    preset_name: str,
    stack: MatrixStack,
    restart: bool = True,
    on_point: Callable[[str], None] = lambda _: None,
    on_plan: Callable[[int], None] = lambda _: None,
) -> Comparison:
    preset = PRESETS[preset_name]
    gateways: tuple[GatewayName, ...] = ("sync", "async")
    info = {gateway: stack.health(gateway) for gateway in gateways}
    as_started = {gateway: GatewayConfig.running(i) for gateway, i in info.items()}
    running = dict(as_started)
    comparison = Comparison(preset_name, delays_s=stack.calibrate(), stack=as_started)
    delays = list(comparison.delays_s.values())
    points = plan(preset, as_started["sync"], as_started["async"])
    if not restart:
        points = [p for p in points if p.config == running[p.target.gateway]]
    on_plan(len(points))
    # The waterfall: one answer from the lightest load, untouched by queueing.
    lightest = min(preset.concurrency, default=None)
    try:
        for index, point in enumerate(points):
            gateway = point.target.gateway
            if point.config != running[gateway]:
                on_point(f"restarting the {gateway} gateway: {point.config.describe()}")
                stack.restart(gateway, point.config.env())
                running[gateway] = point.config
                info[gateway] = stack.health(gateway)
            series = label(point, as_started["sync"].threadpool_tokens, as_started[gateway].server)
            on_point(f"{series} workers={point.config.workers} C={point.concurrency}")
            following = points[index + 1] if index + 1 < len(points) else None
            drain = needs_drain(point, following)
            run = prepare(point, info[gateway], preset, delays, [stack.base(gateway)], drain)
            result, cost = stack.measure(gateway, run.spec)
            if not stack.priced(gateway):
                comparison.probe_note = "unavailable: this host cannot read the containers' cgroups"
            comparison.rows.append(
                Row(point, series, run.limits, result, run.best, cost, os.cpu_count() or 1)
            )
            if point.concurrency == lightest and result.sample is not None:
                comparison.samples.setdefault(point.target.name, result.sample)
    finally:
        for gateway, config in as_started.items():
            if restart and running[gateway] != config:
                on_point(f"restoring the {gateway} gateway: {config.describe()}")
                stack.restart(gateway, config.env())
    return comparison
