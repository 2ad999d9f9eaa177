"""The README's measured blocks (bench/docs/blocks.py), built from the results files they quote:
the curl tour, the headline, the claims' short form and the scale-out ratios."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.docs.blocks import RESULTS, Builder, load, ran, ratio, wrapped
from bench.experiments.rows import limit_throughput
from bench.experiments.tour import render_tour
from bench.harness.topology import ROOT, Topology

README = ROOT / "README.md"
Record = Mapping[str, Any]

# The claims the README shows, by their key in claims.json, each in a few words; the rest
# (the fan-out lessons the headline has, the connections, threads and processes, the
# gunicorn timeout, HTTP/2, the rest of the database's) are in docs/results/claims.md.
CLAIM_BRIEFS = {
    "sync_func": "`time.sleep` in `def` blocks the worker: 80 at once / one alone",
    "wrong": "`time.sleep` in `async def` blocks the loop: 80 at once / one alone",
    "per_call_cpu": "use one client: CPU per fan-out, a client per call / shared",
    "fast_def": "`def` for fast endpoints: CPU per request, `def` / `async def`",
    "cpu_inline": "no CPU work in `async def`: a fan-out beside it / max of the delays",
    "sync_httpx": "httpx beats requests: CPU per fan-out, httpx / requests",
    "db_def": "a sync DB driver in `def`, a pool of 10: 40 at once / one alone",
    "db_pooling": "use a DB pool: CPU per query, a connection per query / the pool",
}


def _run(runs: list[Record], series: str, load: int, workers: int = 1) -> Record | None:
    return next(
        (r for r in runs if (r["series"], r["load"], r["workers"]) == (series, str(load), workers)),
        None,
    )


def _allowed(run: Record) -> float:
    """What the binding cap allows, as a share of the design's ideal: 1, unless a CPU line
    (the gateway's or the machine's, measured in the same window) is lower."""
    return limit_throughput(run) / float(run["ideal_throughput"])


def headline_rows(results: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(what, measured, at best) for the full run's six lessons, where the run has them. At
    best is the design's ideal, or below 1 where a CPU line allowed less."""
    runs, meta = results["runs"], results["meta"]
    stack = f"async · {meta['async_http_client']}"
    rows = []
    for concurrency in (10, 100):
        fast, slow = _run(runs, stack, concurrency), _run(runs, "sync", concurrency)
        if fast and slow:
            rows.append(
                (
                    f"C={concurrency}, 1 worker: async / sync throughput",
                    fast["throughput"] / slow["throughput"],
                    fast["ideal_throughput"] / slow["ideal_throughput"],
                )
            )
    for concurrency in (200, 1000):
        run = _run(runs, stack, concurrency)
        if run:
            cap = run.get("cap", run["ideal_cap"])
            what = f"C={concurrency}, 1 worker: async throughput / ideal (binds: {cap})"
            rows.append((what, run["throughput"] / run["ideal_throughput"], _allowed(run)))
    own_pool = _run(runs, "async · httpx", 100)
    if own_pool:
        what = "C=100, 1 worker: async on httpx's own pool, throughput / ideal"
        rows.append((what, own_pool["throughput"] / own_pool["ideal_throughput"], 1.0))
    bounded = [r for r in runs if r["series"].startswith("sync · 4x capacity, bound")]
    for run in bounded[:1]:
        what = (
            f"sync at 4x its capacity, bounded: admitted p99 / one fan-out"
            f" ({run['refused_share']:.0%} get a fast 503)"
        )
        rows.append((what, run["latency_p99_ms"] / run["ideal_latency_ms"], 1.0))
    return rows


def headline(folder: Path = RESULTS) -> str:
    results = load(folder / "results.json")
    meta = results["meta"]
    # At best: the design's ideal, or a CPU line where one is lower: that row says so.
    lines = ["| what | measured | at best |", "|---|---:|---:|"]
    lines += [
        f"| {what} | {ratio(m)} | {ratio(i)}{'' if i >= 1 else ' (CPU line)'} |"
        for what, m, i in headline_rows(results)
    ]
    lines += [
        "",
        *wrapped(
            f"[The whole run](docs/results/summary.md) of {ran(meta, meta['started_at'])},"
            f" on {meta['machine'].split(', ')[1]} that also ran the load."
        ),
    ]
    return "\n".join(lines)


def claims_brief(folder: Path = RESULTS) -> str:
    results = load(folder / "claims.json")
    lines = [
        "| the post says, and what is measured | measured / ideal | verdict |",
        "|---|---:|---|",
    ]
    for row in results["rows"]:
        if row["key"] in CLAIM_BRIEFS:
            figures = f"{ratio(row['measured'])} / {ratio(row['ideal'])}"
            lines.append(f"| {CLAIM_BRIEFS[row['key']]} | {figures} | {row['verdict']} |")
    lines += [
        "",
        *wrapped(
            f"[Every claim, and why](docs/results/claims.md), from the run of"
            f" {ran(results['meta'], results['meta']['started_at'])}."
        ),
    ]
    return "\n".join(lines)


def scale_out_ratios(runs: list[Record]) -> list[tuple[str, int, float]]:
    """(gateway, N, throughput of N replicas / N workers) for every N measured both ways."""
    by_shape = {(r["target"], r["replicas"], r["workers"]): r["throughput"] for r in runs}
    return [
        (gateway, replicas, throughput / by_shape[gateway, 1, replicas])
        for (gateway, replicas, workers), throughput in sorted(by_shape.items())
        if workers == 1 and replicas > 1 and (gateway, 1, replicas) in by_shape
    ]


def scale_out_figures(runs: list[Record]) -> str:
    """ "sync 1.01 at 2, 0.96 at 4; async ...": each gateway's replicas / workers ratios."""
    measured = scale_out_ratios(runs)
    return "; ".join(
        f"{gateway} " + ", ".join(f"{ratio(r)} at {n}" for g, n, r in measured if g == gateway)
        for gateway in sorted({g for g, _, _ in measured}, reverse=True)
    )


def scale_out_brief(folder: Path = RESULTS) -> str:
    results = load(folder / "scale-out" / "results.json")
    meta = results["meta"]
    return "\n".join(
        wrapped(
            "Throughput, N replicas of 1 worker / 1 replica of N workers:"
            f" {scale_out_figures(results['runs'])}"
            f" ([the run](docs/results/scale-out/summary.md) of {ran(meta, meta['started_at'])})."
        )
    )


def tour(folder: Path = RESULTS) -> str:
    recorded = load(folder / "tour.json")
    topology = Topology()
    ports = {"sync": topology.sync_port, "async": topology.async_port}
    made = ran(recorded["meta"], recorded["meta"]["started_at"])
    return (
        render_tour(recorded, ports) + f"\nReal output, trimmed: `python -m bench tour` of {made}."
    )


BLOCKS: dict[str, Builder] = {
    "tour": tour,
    "headline": headline,
    "claims": claims_brief,
    "scale-out": scale_out_brief,
}
