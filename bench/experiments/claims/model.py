"""What bench claims measures and writes: its presets, a claim's row, the run's record,
and one priced load."""

from dataclasses import dataclass, field
from typing import Any, Literal

from bench.harness.load import LoadResult
from bench.harness.probe import WindowCost

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
    db_window_s: float = 30.0  # the archive pool's Poisson run


PRESETS = {
    "quick": ClaimsPreset(3, 1, (10, 100), (10, 100), (4, 40, 80), 4, 100, 20, 2, 30),
    "full": ClaimsPreset(10, 2, (10, 100, 200), (10, 100), (4, 40, 80), 4, 100, 20, 2, 90),
}
# /sync_func sleeps long against what 80 requests cost the worker besides; /wrong's queue
# in a row, so a short one keeps 80 of them to 8 s.
SYNC_FUNC_MS = 500
WRONG_MS = 100
# Fan-outs timed one at a time, after warm ones, for latencies at C=1.
ALONE_REPEATS = 7


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
    # The run's command, start, commit and machine, as every results file has them
    # (bench/harness/results.py, run_meta).
    meta: dict[str, Any]
    preset: str
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
    # The most connections one upstream held open at once: a pool's size under HTTP/1.1.
    open_connections: int | None = None
    p99_ms: float | None = None

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
            open_connections=None if cost is None else cost.peak_upstream_established,
            p99_ms=round(result.latency.percentile_ms(99), 1),
        )
