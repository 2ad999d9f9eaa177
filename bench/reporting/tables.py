"""The benchmark's tables: one column spec renders both the terminal and the markdown table."""

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from rich.table import Table

from bench.experiments.cost import FAN_OUT_TARGET, UPSTREAM_CALL_TARGET, CostPoint
from bench.experiments.idle import SHARES, Rest
from bench.harness.crosscheck import AGREEMENT, ClientCost, CrossCheck
from bench.harness.load import LoadResult

if TYPE_CHECKING:  # the pool-cost module builds the gateway's clients: import it only there
    from bench.experiments.claims.model import Claims
    from bench.experiments.crossnode import PlacementCost
    from bench.experiments.poolcost import PoolCost

Record = Mapping[str, Any]


def number(digits: int = 1) -> Callable[[Any], str]:
    def render(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return f"{value:,.{digits}f}"

    return render


def share(value: Any) -> str:
    return "-" if value is None else f"{value:.0%}"


@dataclass(frozen=True)
class Column:
    title: str
    key: str
    render: Callable[[Any], str] = str
    # A latency column is only a lower bound when a request still unanswered at the end of
    # the window had waited longer than this percentile: it is then marked "≥".
    censored_by: str | None = None
    terminal: bool = True  # the terminal table leaves out what only the report needs
    left: bool = False

    def cell(self, record: Record) -> str:
        text = self.render(record[self.key])
        if self.censored_by is not None and censored(record, self.censored_by):
            text = f"≥ {text}"
        return text


def censored(record: Record, percentile: str) -> bool:
    """True when an unanswered request had waited longer than this percentile."""
    return bool(record["oldest_unfinished_ms"] > record[percentile])


COMPARISON = (
    Column("series", "series", left=True),
    Column("workers", "workers"),
    Column("C", "load"),
    Column("req/s", "throughput", number()),
    Column("ideal", "ideal_throughput", number(), terminal=False),
    Column("meas/ideal", "throughput_vs_ideal", number(2)),
    Column("cap", "cap", left=True, terminal=False),
    Column("p50 ms", "latency_p50_ms", number(0), censored_by="latency_p50_ms", terminal=False),
    Column("ideal ms", "ideal_latency_ms", number(0), terminal=False),
    Column("p99 ms", "latency_p99_ms", number(0), censored_by="latency_p99_ms"),
    Column("errors", "errors"),
    Column("503 share", "refused_share", share, terminal=False),
    Column("503 p99 ms", "refused_p99_ms", number(0), terminal=False),
    Column("CPU ms/req", "gateway_cpu_ms_per_request", number(2)),
    Column("CPU line", "cpu_line_throughput", number(0), terminal=False),
    Column("machine line", "machine_line_throughput", number(0), terminal=False),
    Column("gw cores", "gateway_cpu_cores", number(2), terminal=False),
    Column("RSS MiB", "peak_worker_rss_mib", number(0)),
    Column("upstream cores", "upstream_cpu_cores", number(2), terminal=False),
    Column("client CPU", "client_cpu", share, terminal=False),
)


# Replicas against workers (bench/experiments/scaleout.py): one gateway as R replicas of W workers,
# with the matrix's own columns where they mean the same.
_SHARED = {column.key: column for column in COMPARISON}
SCALE_OUT = (
    Column("gateway", "target", left=True),
    Column("replicas", "replicas"),
    *(_SHARED[key] for key in ("workers", "load", "throughput", "ideal_throughput")),
    *(_SHARED[key] for key in ("throughput_vs_ideal", "cap")),
    replace(_SHARED["latency_p50_ms"], terminal=True),
    *(_SHARED[key] for key in ("latency_p99_ms", "errors")),
    Column("replicas seen", "instances_seen", terminal=False),
    *(_SHARED[key] for key in ("gateway_cpu_ms_per_request", "gateway_cpu_cores")),
    Column("gateway RSS MiB", "peak_gateway_rss_mib", number(0)),
    _SHARED["client_cpu"],
)


def comparison_table(
    records: Sequence[Record],
    columns: Sequence[Column] = COMPARISON,
    title: str = "measured vs ideal (closed loop; * = CPU-bound)",
) -> Table:
    columns = [c for c in columns if c.terminal]
    table = Table(title=title, caption="summary.md in the report folder has every column")
    for column in columns:
        table.add_column(column.title, justify="left" if column.left else "right")
    for record in records:
        cells = [column.cell(record) for column in columns]
        if record["cpu_bound"]:
            cells[0] += " *"
        table.add_row(*cells)
    return table


def markdown_table(records: Sequence[Record], columns: Sequence[Column] = COMPARISON) -> str:
    lines = [
        "| " + " | ".join(column.title for column in columns) + " |",
        "|" + "|".join("---" if column.left else "---:" for column in columns) + "|",
    ]
    for record in records:
        cells = [column.cell(record).replace("|", "\\|") for column in columns]
        if record.get("cpu_bound"):
            cells[0] += " \\*"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_table(result: LoadResult) -> Table:
    """One load run: client latency beside the gateway's own fan-out time."""
    summary = result.summary()
    title = f"{result.spec.loop} loop  {result.spec.url}" + (
        f"?{summary['params']}" if summary["params"] else ""
    )
    table = Table(title=title)
    table.add_column("")
    for name in ("p50", "p90", "p99", "p99.9", "max", "mean"):
        table.add_column(f"{name} ms", justify="right")
    client, gateway = result.latency.summary_ms(), result.gateway_elapsed.summary_ms()
    ms = number(0)
    table.add_row("client latency", *(ms(v) for v in client.values()))
    table.add_row("gateway elapsed_ms", *(ms(v) for v in gateway.values()))
    table.caption = (
        f"{result.ok} ok in {result.window_s:.1f} s = {result.throughput:.1f} req/s · "
        f"errors {dict(result.errors) or 0} · unfinished {result.unfinished}"
        f" (oldest waited {result.oldest_unfinished_ms:,.0f} ms) · "
        f"client CPU {result.client_cpu:.0%} of a core · workers seen {len(result.workers)}"
    )
    return table


def crosscheck_table(check: CrossCheck) -> Table:
    table = Table(title=f"cross-check at C={check.concurrency}: {check.url}")
    for column in ("tool", "requests", "req/s", "p50 ms"):
        table.add_column(column, justify="right")
    for point in (check.hey, check.bench):
        table.add_row(
            point.tool, str(point.requests), f"{point.throughput:.2f}", f"{point.p50_ms:.1f}"
        )
    table.add_row(
        "difference",
        "",
        f"{check.difference('throughput'):.1%}",
        f"{check.difference('p50_ms'):.1%}",
    )
    verdict = "agree" if check.agrees else "DISAGREE"
    table.caption = f"{verdict} within {AGREEMENT:.0%}"
    return table


def client_cost_table(costs: Sequence[ClientCost], url: str, concurrency: int) -> Table:
    requests = costs[0].requests if costs else 0
    table = Table(title=f"load client cost: {requests} requests, C={concurrency}, {url}")
    for column in ("client", "req/s", "CPU us/request", "CPU share of a core"):
        table.add_column(column, justify="right")
    for cost in costs:
        table.add_row(
            cost.client,
            f"{cost.requests / cost.wall_s:,.0f}",
            f"{cost.cpu_s / cost.requests * 1e6:,.0f}",
            f"{cost.cpu_s / cost.wall_s:.0%}",
        )
    return table


def cost_table(points: Sequence[CostPoint]) -> Table:
    title = "CPU per fan-out, in trivial requests (/healthz) of the same run; targets: "
    title += f"fan-out ≤ {FAN_OUT_TARGET:g}, upstream call ≤ {UPSTREAM_CALL_TARGET:g}"
    table = Table(title=title)
    columns: tuple[str, ...] = ("C", "fan-outs/s", "trivial ms", "fan-out ms", "fan-out / trivial")
    columns += ("call ms", "call / trivial", "client ms", "machine ms", "errors")
    for column in columns:
        table.add_column(column, justify="right")
    for p in points:
        table.add_row(
            str(p.concurrency),
            f"{p.fan_outs_per_s:,.0f}",
            f"{p.trivial_ms:.3f}",
            f"{p.fan_out_ms:.3f}",
            f"{p.fan_out_units:.2f}",
            f"{p.upstream_call_ms:.3f}",
            f"{p.upstream_call_units:.2f}",
            f"{p.client_fan_out_ms:.3f}",
            f"{p.machine_fan_out_ms:.3f}",
            str(p.errors),
        )
    return table


def rest_table(rest: Rest) -> Table:
    checks = f"{len(rest.checks)} healthchecks, {rest.checks_per_s:.2f} a second"
    table = Table(title=f"the stack at rest for {rest.window_s:.0f} s ({checks})")
    table.add_column("where", justify="left")
    table.add_column("cores", justify="right")
    recorded = rest.record()
    for label, key in SHARES:
        table.add_row(label, f"{recorded[key]:.3f}")
    if rest.ms_per_check is not None:
        table.add_row("engine and execs, ms of CPU per check", f"{rest.ms_per_check:.1f}")
    return table


def pool_cost_table(costs: Sequence["PoolCost"]) -> Table:
    fan_outs = costs[0].fan_outs if costs else 0
    table = Table(title=f"client CPU per fan-out (3 sources, {fan_outs} fan-outs per row)")
    for column in ("client", "C", "fan-outs/s", "CPU ms per fan-out", "CPU share of a core"):
        table.add_column(column, justify="right")
    for cost in costs:
        table.add_row(
            cost.client,
            str(cost.concurrency),
            f"{cost.fan_outs / cost.wall_s:,.0f}",
            f"{cost.cpu_ms_per_fan_out:.2f}",
            f"{cost.cpu_s / cost.wall_s:.0%}",
        )
    return table


def claims_table(claims: "Claims") -> Table:
    table = Table(title=f"the blog post's claims, measured ({claims.preset} preset)")
    for column in ("claim", "ratio", "measured", "ideal", "verdict"):
        table.add_column(column, justify="left" if column in ("claim", "ratio") else "right")
    for row in claims.rows:
        table.add_row(
            row.key, row.ratio, number(2)(row.measured), number(2)(row.ideal), row.verdict
        )
    return table


def cross_node_table(points: Sequence["PlacementCost"]) -> Table:
    """The async gateway's sources on its own node and on another, window by window, and
    the difference: per call, latency and the machine's CPU."""
    names = sorted({name for point in points for name in point.call_ms})
    table = Table(title="sources on the gateway's node, then on another (one run)")
    for column in ("sources on", "same node", "fan-outs", *(f"{n} ms" for n in names)):
        table.add_column(column, justify="right")
    table.add_column("machine CPU ms / fan-out", justify="right")
    for point in points:
        table.add_row(
            point.sources_on,
            "yes" if point.same_node else "no",
            str(point.fan_outs),
            *(f"{point.call_ms.get(n, float('nan')):.1f}" for n in names),
            f"{point.machine_cpu_ms_per_fan_out:.2f}",
        )
    same = [p for p in points if p.same_node]
    other = [p for p in points if not p.same_node]
    if same and other:
        latency = statistics.mean(
            statistics.median(p.call_ms[n] for p in other)
            - statistics.median(p.call_ms[n] for p in same)
            for n in names
        )
        cpu = statistics.median(p.machine_cpu_ms_per_fan_out for p in other) - statistics.median(
            p.machine_cpu_ms_per_fan_out for p in same
        )
        table.caption = (
            f"across nodes, per call: {latency:+.2f} ms of latency, "
            f"{cpu / max(1, len(names)):+.3f} ms of the machine's CPU"
        )
    return table


# The open-loop sweep (bench/experiments/sweep.py): per point, the wait measured against the
# theory's and against the ideal queue replayed on the same arrivals.
SWEEP = (
    Column("gateway", "gateway", left=True),
    Column("rho", "rho", number(2)),
    Column("req/s", "rate", number(1)),
    Column("answered / due", "answered_of_sent"),
    Column("mean wait ms", "wait_mean_ms", number(1)),
    Column("± s.e.", "wait_error_ms", number(1)),
    Column("predicted ms", "predicted_mean_ms", number(1)),
    Column("meas / pred", "ratio", number(2)),
    Column("runs this long, 95%", "spread", left=True),
    Column("replayed ms", "replayed_mean_ms", number(1)),
    Column("meas / replay", "replay_ratio", number(2)),
    Column("p99 wait ms", "wait_p99_ms", number(0)),
    Column("predicted p99 ms", "predicted_p99_ms", number(0), terminal=False),
    Column("token wait ms", "queued_mean_ms", number(1), terminal=False),
    Column("fan-out ms", "fan_out_mean_ms", number(0)),
)


def sweep_rows(records: Sequence[Record]) -> list[dict[str, Any]]:
    def spread(record: Record) -> str:
        if record["spread_low_ms"] is None:
            return "-"
        return f"{record['spread_low_ms']:,.1f} to {record['spread_high_ms']:,.1f}"

    return [
        {**r, "answered_of_sent": f"{r['answered']} / {r['sent']}", "spread": spread(r)}
        for r in records
    ]


def sweep_table(records: Sequence[Record]) -> Table:
    table = Table(
        title="waiting under Poisson arrivals: measured, predicted, replayed",
        caption="replayed: an ideal FIFO queue of the gateway's servers, fed this run's"
        " arrivals and fan-out times",
    )
    columns = [c for c in SWEEP if c.terminal]
    for column in columns:
        table.add_column(column.title, justify="left" if column.left else "right")
    for record in sweep_rows(records):
        table.add_row(*(column.cell(record) for column in columns))
    return table


# The sweep in brief, for the docs: the columns a reader needs to judge each point.
SWEEP_BRIEF = tuple(
    column
    for column in SWEEP
    if column.key
    in {
        "gateway",
        "rho",
        "wait_mean_ms",
        "wait_error_ms",
        "predicted_mean_ms",
        "ratio",
        "spread",
        "replayed_mean_ms",
        "replay_ratio",
        "queued_mean_ms",
    }
)


def sweep_brief(records: Sequence[Record]) -> str:
    """The markdown table docs/benchmark.md quotes, made from a sweep.json's points: a test
    compares the two, so the docs cannot drift from the results."""
    return markdown_table(sweep_rows(records), SWEEP_BRIEF)
