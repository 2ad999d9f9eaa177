"""The report folder: results.json and results.csv, the plots, and summary.md to read them by."""

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.experiments.rows import Comparison, ReportMeta, RowRecord
from bench.experiments.scaleout import ratios
from bench.experiments.sweep import Sweep
from bench.harness.results import write_json
from bench.reporting.plots import (
    plot_against_ideal,
    plot_cpu_per_request,
    plot_scale_out,
    plot_sweep,
    plot_threadpool,
    plot_waterfalls,
    stamp,
)
from bench.reporting.tables import SCALE_OUT, SWEEP, markdown_table, sweep_rows

HOW_TO_READ = """\
## How to read it

Every row but the overload pair is one closed-loop run: C clients, each sending its next
request as soon as the last one answers, for the measured window after a warm-up. A row's
series is the target, with the HTTP client for the async gateway's `/news`, and the
threadpool size for a sync row that runs another one than the stack.

`ideal` is the lowest of every cap that applies to that row, from the source delays
calibrated at the start and the limits each gateway's `/healthz` reported (see
`core/theory.py`); `cap` names the one that binds:

- a fan-out costs **sum(delays)** when its calls run one after another (sync, async
  sequential, blocking) and **max(delays)** when they overlap (sync threads, async);
- **clients**: C fan-outs in flight at most, so C / cost;
- **threadpool**: the sync gateway holds one token per request:
  workers x tokens / cost; **executor**: threads mode holds one thread per call;
- **connection pool**: the async gateway holds one connection per call, for d each:
  workers x max_connections / sum(delays);
- **event loop**: the blocking mistake holds one request per worker: workers / sum(delays).

`meas/ideal` near 1 means the gateway reached its limit. Below it, look at the cost
columns: the gateway workers' **CPU ms per answered request**, their **CPU line** (the
cores they can use, one per worker, over that CPU time: the throughput the CPU allows),
the peak **RSS** of a worker, and the upstreams' and the load client's CPU, which say who
else was busy. A row is marked `*` when its CPU line is below its ideal: CPU-bound.

The **overload pair** (`sync · 4x capacity`) is an open loop instead: requests arrive at
4x what one sync worker can serve (its threadpool cap), whether or not earlier ones were
answered, and each latency counts from its scheduled send. Without a bound the queue only
grows, and so does every answer's wait. With one (`GATEWAY_MAX_IN_FLIGHT` = the tokens),
the requests past it get a fast **503** with `Retry-After`: the `503 share` and `503 p99`
columns; the admitted ones keep the normal fan-out time.

Each window holds a whole number of fan-out rounds, so a closed loop's rounds are never
cut in two. Percentiles cover only answers that arrived in the window. When a request still
unanswered at the window's end had already waited longer than a percentile, that
percentile is marked `≥`: the real value is at least that.
"""


def write_records(
    records: Sequence[Mapping[str, object]],
    json_path: Path | None,
    csv_path: Path | None,
    meta: Mapping[str, object] | None = None,
) -> None:
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(json_path, {"meta": meta or {}, "runs": records})
    if csv_path is not None:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with csv_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]))
            writer.writeheader()
            for record in records:
                writer.writerow(
                    {k: json.dumps(v) if isinstance(v, dict) else v for k, v in record.items()}
                )


def _write_data(
    comparison: Comparison, out_dir: Path, command: str
) -> tuple[list[RowRecord], ReportMeta]:
    """The folder, with results.json and results.csv in it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    records = [row.record() for row in comparison.rows]
    meta = comparison.meta(command)
    write_records(records, out_dir / "results.json", out_dir / "results.csv", meta)
    return records, meta


def _run_lines(meta: ReportMeta, machine_note: str) -> list[str]:
    """What a summary says first: the command, when, where, and the sources' delays."""
    delays = ", ".join(f"{k} {v} ms" for k, v in meta["source_delays_ms"].items())
    return [
        f"- command: `{meta['command']}`",
        f"- started {meta['started_at']} at commit `{meta['commit']}`",
        f"- machine: {meta['machine']}, {machine_note}",
        f"- source delays as the gateway sees them at rest: {delays}",
        "- settings other than .env's: "
        + (", ".join(f"`{k}={v}`" for k, v in meta["env_overrides"].items()) or "none"),
    ]


def server_table(records: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> list[str]:
    """Each gateway under each server, one worker, as the stack runs it otherwise (the async
    one on its client, the sync one with its threadpool, closed loop): at each C where more
    than one server ran, each one's CPU per fan-out and its ratio to that of the stack's
    server, measured in the same run. No lines when no point ran under two servers."""
    by_point: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for record in records:
        as_stack = (
            record["client"] == meta["async_http_client"]
            if record["target"] == "async"
            else record["threadpool_tokens"] == meta["threadpool_tokens"]
        )
        if (
            record["target"] in ("async", "sync")
            and record["workers"] == 1
            and as_stack
            and not record["load"].endswith("/s")  # an overload point's open loop
        ):
            point = (record["target"], record["load"])
            by_point.setdefault(point, {})[record["server"]] = record
    stack = meta["server"]
    lines = [
        f"| gateway | server | C | req/s | meas/ideal | CPU ms/req | / {stack}'s | p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (target, load), servers in by_point.items():
        base = servers.get(stack)
        if len(servers) < 2 or base is None:
            continue
        for server, record in servers.items():
            cpu, base_cpu = record["gateway_cpu_ms_per_request"], base["gateway_cpu_ms_per_request"]
            ratio = "–" if cpu is None or not base_cpu else f"{cpu / base_cpu:.2f}"
            lines.append(
                f"| {target} | {server} | {load} | {record['throughput']:.1f}"
                f" | {record['throughput_vs_ideal']:.2f} | {'–' if cpu is None else f'{cpu:.2f}'}"
                f" | {ratio} | {record['latency_p99_ms']:.0f} |"
            )
    return lines if len(lines) > 2 else []


def server_axis(records: Sequence[RowRecord], meta: ReportMeta) -> list[str]:
    """summary.md's Servers section: the server table, with what it holds."""
    lines = server_table(records, meta)
    if not lines:
        return []
    stack = meta["server"]
    return [
        "## Servers",
        "",
        f"Each gateway, 1 worker, under each server (`SERVER`): the async one on"
        f" {meta['async_http_client']}, the sync one with {meta['threadpool_tokens']} threadpool"
        f" tokens. `/ {stack}'s` is its CPU per fan-out over that of the stack's server, at"
        " the same C, in this run.",
        "",
        *lines,
        "",
    ]


def write_report(comparison: Comparison, out_dir: Path, command: str) -> list[Path]:
    """The report folder: summary.md, results.json, results.csv and the PNG plots."""
    records, meta = _write_data(comparison, out_dir, command)
    plots = [
        *plot_against_ideal(comparison, out_dir),
        *plot_cpu_per_request(comparison, out_dir),
        *plot_threadpool(comparison, out_dir),
        *plot_waterfalls(
            comparison.samples,
            out_dir,
            stamp(meta["started_at"], meta["commit"]),
            meta["async_http_client"],
        ),
    ]
    warnings = [
        f"- {r.series} workers={r.workers} C={r.concurrency}: {w}"
        for r in comparison.rows
        for w in r.result.warnings
    ]
    summary = [
        f"# fanout-lab benchmark ({comparison.preset_name} preset)",
        "",
        *_run_lines(meta, "shared by the load client, the upstreams and both gateways"),
        f"- the stack as started: sync {meta['sync_workers']} worker(s) with"
        f" {meta['threadpool_tokens']} threadpool tokens each; async {meta['async_workers']}"
        f" worker(s) on **{meta['async_http_client']}**, max_connections"
        f" {meta['async_max_connections']} per worker; every service under {meta['server']}",
        f"- cost probe: {meta['probe']}",
        "",
        HOW_TO_READ,
        "## Results",
        "",
        markdown_table(records),
        "",
        *server_axis(records, meta),
        "## Plots",
        "",
        *(f"![{path.stem}]({path.name})" for path in plots),
        "",
        "## Client warnings",
        "",
        *(warnings or ["none: the load generator stayed below saturation in every run."]),
        "",
    ]
    return _with_summary(out_dir, summary, plots)


def _with_summary(out_dir: Path, summary: list[str], plots: list[Path]) -> list[Path]:
    """Write summary.md beside the data files; every file of the report folder."""
    (out_dir / "summary.md").write_text("\n".join(summary))
    return [out_dir / "summary.md", out_dir / "results.json", out_dir / "results.csv", *plots]


SCALE_OUT_HOW_TO_READ = """\
## How to read it

Each gateway runs as 1 replica of N gunicorn workers, then as N replicas of 1 worker, on
this one machine; every row is a closed loop of C clients against it. With several
replicas, each client keeps one replica's own port, in turn (on one node a host-mode port
holds one replica; on a cluster the ingress mesh spreads the connections instead), and
`replicas seen` counts the replicas that answered. `ideal` counts every per-worker cap once
per process, on whichever replica it runs. `gateway RSS` is the peak resident memory of
every gunicorn process of the gateway, its arbiters included: a replica brings an arbiter
of its own, a worker does not. `CPU ms/req` counts the workers only.
"""


def write_scale_out_report(comparison: Comparison, out_dir: Path, command: str) -> list[Path]:
    """The swarm's report folder: summary.md, results.json, results.csv, scale_out.png."""
    records, meta = _write_data(comparison, out_dir, command)
    plots = plot_scale_out(comparison, out_dir)
    summary = [
        f"# fanout-lab: replicas against workers ({comparison.preset_name} preset)",
        "",
        *_run_lines(meta, "one swarm node that also runs the load client"),
        f"- cost probe: {meta['probe']}",
        "",
        SCALE_OUT_HOW_TO_READ,
        "## Results",
        "",
        markdown_table(records, SCALE_OUT),
        "",
        "## N replicas over N workers, throughput",
        "",
        *(f"- {name}: {value:.2f}" for name, value in ratios(comparison).items()),
        "",
        *(f"![{path.stem}]({path.name})" for path in plots),
        "",
    ]
    return _with_summary(out_dir, summary, plots)


def write_sweep_report(sweep: Sweep, out_dir: Path) -> list[Path]:
    """sweep.json (the run and every point), sweep.md (the table) and wait.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    record = sweep.record()
    meta, points = record["meta"], record["points"]
    data = out_dir / "sweep.json"
    write_json(data, record)
    capacities = "; ".join(
        f"{name}: {c['rate']} req/s ({c['basis']})" for name, c in meta["capacities"].items()
    )
    overrides = ", ".join(f"{k}={v}" for k, v in meta["env_overrides"].items()) or "none"
    lines = [
        "# Waiting under Poisson arrivals, against queueing theory",
        "",
        f"`{meta['command']}` at {meta['commit']}, {meta['started_at']}, on {meta['machine']}.",
        f"Capacity (rho = 1): {capacities}. Settings changed from .env: {overrides}.",
        "",
        markdown_table(sweep_rows(points), SWEEP),
        "",
        "Wait: an answer's time from its intended send, less its fan-out time and what an",
        "answer spends outside its fan-out at rest (`overhead_at_rest_ms` in sweep.json).",
        "± s.e.: the standard error of the mean wait, by 10 batch means. Predicted: M/D/c on",
        "the sync gateway's tokens (Cosmetatos), no wait on the async one (M/D/∞). Replayed:",
        "an ideal FIFO queue of the same servers fed this run's arrivals and fan-out times.",
        "Runs this long, 95%: the middle 95% of M/D/c's mean waits over 200 simulated runs",
        "of this length, from empty: where one run's mean lies, far wider than ± s.e.",
        'Token wait: the gateway\'s own `queued_ms`. See docs/benchmark.md, "Waiting".',
        "",
    ]
    summary = out_dir / "sweep.md"
    summary.write_text("\n".join(lines))
    return [data, summary, plot_sweep(points, meta, out_dir)]
