"""The matrix's rows: one measured point with its ideal and its cost, flattened into the
records the reports, tables and plots read, and the series name each one is drawn under.
"""

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from bench.experiments.plan import GatewayConfig, Point
from bench.harness.load import LoadResult, LoadSummary
from bench.harness.probe import WindowCost
from bench.harness.results import git_commit, machine_description
from bench.harness.stack import GatewayName
from bench.harness.topology import env_overrides
from core.theory import GatewayLimits, Ideal, Target, cpu_line, machine_line


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


def limit_throughput(run: Mapping[str, Any]) -> float:
    """What a row could reach, every cap counted: the design's ideal, or the gateway's or
    the machine's CPU line, measured in the same window, where one is lower."""
    lines = [run.get("cpu_line_throughput"), run.get("machine_line_throughput")]
    return min(
        [float(run["ideal_throughput"]), *(float(line) for line in lines if line is not None)]
    )


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
            "env_overrides": env_overrides(),
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
    # The .env settings this run's shell changed (UPSTREAM_REPLICAS=1, say): its stack's.
    env_overrides: dict[str, str]
