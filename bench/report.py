"""Turns load results into what people read: terminal tables, JSON, CSV, summary.md, plots."""

import csv
import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in CI

import matplotlib.pyplot as plt  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.compare import Comparison, Row  # noqa: E402
from bench.load import LoadResult  # noqa: E402
from bench.theory import TARGETS, TARGETS_BY_NAME, ideal  # noqa: E402

COLOURS = {
    "sync": "tab:red",
    "sync-threads": "tab:orange",
    "async": "tab:blue",
    "async-sequential": "tab:cyan",
    "blocking": "tab:gray",
}


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}"


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
    table.add_row("client latency", *(_ms(v) for v in client.values()))
    table.add_row("gateway elapsed_ms", *(_ms(v) for v in gateway.values()))
    table.caption = (
        f"{result.ok} ok in {result.window_s:.1f} s = {result.throughput:.1f} req/s · "
        f"errors {dict(result.errors) or 0} · unfinished {result.unfinished}"
        f" (oldest waited {result.oldest_unfinished_ms:,.0f} ms) · "
        f"client CPU {result.client_cpu:.0%} of a core · workers seen {len(result.worker_pids)}"
    )
    return table


def comparison_table(rows: Sequence[Row]) -> Table:
    table = Table(title="measured vs ideal (closed loop)")
    for name in (
        "target",
        "workers",
        "C",
        "req/s",
        "ideal",
        "meas/ideal",
        "p50 ms",
        "ideal ms",
        "p99 ms",
        "errors",
        "client CPU",
    ):
        table.add_column(name, justify="left" if name == "target" else "right")
    for row in rows:
        r = row.record()
        table.add_row(
            row.target.name,
            str(row.workers),
            str(row.concurrency),
            f"{r['throughput']:.1f}",
            f"{r['ideal_throughput']:.1f}",
            f"{r['throughput_vs_ideal']:.2f}",
            _ms(r["latency_p50_ms"]),
            _ms(r["ideal_latency_ms"]),
            _ms(r["latency_p99_ms"]),
            str(r["errors"]),
            f"{r['client_cpu']:.0%}",
        )
    return table


def write_records(
    records: Sequence[dict[str, Any]],
    json_path: Path | None,
    csv_path: Path | None,
    meta: dict[str, Any] | None = None,
) -> None:
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"meta": meta or {}, "runs": records}, indent=2) + "\n")
    if csv_path is not None:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with csv_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]))
            writer.writeheader()
            for record in records:
                writer.writerow(
                    {k: json.dumps(v) if isinstance(v, dict) else v for k, v in record.items()}
                )


def _series(rows: Iterable[Row], target: str, workers: int) -> list[Row]:
    return sorted(
        (r for r in rows if r.target.name == target and r.workers == workers),
        key=lambda r: r.concurrency,
    )


def _ideal_curve(
    comparison: Comparison, target: str, workers: int, concurrency: Sequence[int]
) -> tuple[list[float], list[float], list[float]]:
    """The ideal line on a fine grid, so its knee shows between measured points."""
    grid = sorted({*range(1, max(concurrency) + 1)})
    delays = list(comparison.delays_s.values())
    ideals = [
        ideal(TARGETS_BY_NAME[target], c, workers, delays, comparison.threadpool_tokens)
        for c in grid
    ]
    return (
        [float(c) for c in grid],
        [i.throughput for i in ideals],
        [i.latency_s * 1000 for i in ideals],
    )


def plot_against_ideal(comparison: Comparison, out_dir: Path) -> list[Path]:
    workers_counts = sorted({row.workers for row in comparison.rows})
    figures: dict[str, tuple[str, Callable[[Row], float], int]] = {
        "throughput.png": ("throughput (req/s)", lambda r: r.result.throughput, 1),
        "latency_p50.png": ("p50 latency (ms)", lambda r: r.result.latency.percentile_ms(50), 2),
        "latency_p99.png": ("p99 latency (ms)", lambda r: r.result.latency.percentile_ms(99), 2),
    }
    written = []
    for filename, (ylabel, measure, ideal_index) in figures.items():
        fig, axes = plt.subplots(
            1,
            len(workers_counts),
            figsize=(6 * len(workers_counts), 4.8),
            sharey=True,
            squeeze=False,
        )
        for ax, workers in zip(axes[0], workers_counts, strict=True):
            for target in TARGETS:
                series = _series(comparison.rows, target.name, workers)
                if not series:
                    continue
                xs = [r.concurrency for r in series]
                colour = COLOURS[target.name]
                ax.plot(xs, [measure(r) for r in series], "o-", color=colour, label=target.name)
                curve = _ideal_curve(comparison, target.name, workers, xs)
                ax.plot(curve[0], curve[ideal_index], "--", color=colour, alpha=0.6, linewidth=1)
            ax.set_title(f"{workers} gunicorn worker(s) per gateway")
            ax.set_xlabel("concurrent clients (closed loop)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].set_ylabel(ylabel)
        axes[0][-1].legend(title="solid: measured\ndashed: ideal", fontsize=8)
        fig.suptitle(f"{ylabel} vs concurrency, against the theoretical limit")
        fig.tight_layout()
        path = out_dir / filename
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def plot_waterfalls(samples: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
    """One figure per gateway: each mode's fan-out, source by source, on one time axis."""
    written = []
    for gateway in ("sync", "async"):
        modes = [t.name for t in TARGETS if t.gateway == gateway and t.name in samples]
        if not modes:
            continue
        longest = max(samples[m]["elapsed_ms"] for m in samples)
        fig, axes = plt.subplots(
            len(modes), 1, figsize=(9, 1.4 + 1.3 * len(modes)), sharex=True, squeeze=False
        )
        for ax, mode in zip(axes[:, 0], modes, strict=True):
            body = samples[mode]
            names = [s["name"] for s in body["sources"]]
            for y, source in enumerate(body["sources"]):
                ax.barh(
                    y,
                    source["elapsed_ms"],
                    left=source["started_ms"],
                    color=COLOURS[mode],
                    alpha=0.8,
                )
                ax.text(
                    source["started_ms"] + source["elapsed_ms"] + 10,
                    y,
                    f"{source['elapsed_ms']:.0f} ms",
                    va="center",
                    fontsize=8,
                )
            ax.axvline(body["elapsed_ms"], color="black", linestyle=":", linewidth=1)
            ax.set_yticks(range(len(names)), names)
            ax.invert_yaxis()
            ax.set_xlim(0, longest * 1.15)
            ax.set_title(f"{mode}: total {body['elapsed_ms']:.0f} ms", fontsize=10, loc="left")
        axes[-1][0].set_xlabel("ms since the fan-out started (dotted: the gateway's total)")
        fig.suptitle(f"{gateway} gateway: one request's fan-out")
        fig.tight_layout()
        path = out_dir / f"waterfall_{gateway}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


HOW_TO_READ = """\
## How to read it

Every row is one closed-loop run: C clients, each sending its next request as soon as the
last one answers, for the measured window after a warm-up. `ideal` is the theoretical limit
for that gateway, mode, worker count and concurrency, from the source delays calibrated at
the start of the run (see `bench/theory.py`):

- a fan-out costs **sum(delays)** when its calls run one after another (sync, async
  sequential, blocking) and **max(delays)** when they overlap (sync threads, async);
- the sync gateway holds at most **workers x threadpool tokens** requests in flight; past
  that they queue, so throughput flattens and latency grows linearly with C;
- the async gateway holds any number while awaiting: its ideal throughput is
  **C / max(delays)** (Little's law) until the CPU runs out;
- the blocking mistake holds **one request per worker**: its event loop is stuck.

`meas/ideal` near 1 means the gateway reached its limit; well below 1 means something else
(usually CPU on this small machine, or the client) got in the way. Each window holds a
whole number of fan-out rounds, so a closed loop's rounds are never cut in two.

Percentiles cover only answers that arrived in the window. When a request still unanswered
at the window's end had already waited longer than a percentile, that percentile is marked
`≥`: the window was too short for the queue to settle, and the real value is at least that.
"""

# Each latency column, and the percentile it must be above to be a lower bound only.
CENSORED_BY = {
    "latency_p50_ms": "latency_p50_ms",
    "p50_vs_ideal": "latency_p50_ms",
    "latency_p99_ms": "latency_p99_ms",
}


def censored(record: dict[str, Any], column: str) -> bool:
    """True when an unanswered request had waited longer than this column's percentile."""
    percentile = CENSORED_BY.get(column)
    return percentile is not None and record["oldest_unfinished_ms"] > record[percentile]


def _markdown_table(records: Sequence[dict[str, Any]]) -> str:
    columns = [
        ("target", "target"),
        ("workers", "workers"),
        ("concurrency", "C"),
        ("throughput", "req/s"),
        ("ideal_throughput", "ideal req/s"),
        ("throughput_vs_ideal", "meas/ideal"),
        ("latency_p50_ms", "p50 ms"),
        ("ideal_latency_ms", "ideal ms"),
        ("p50_vs_ideal", "p50/ideal"),
        ("latency_p99_ms", "p99 ms"),
        ("gateway_p50_ms", "gateway p50 ms"),
        ("unfinished", "unfinished"),
        ("errors", "errors"),
        ("client_cpu", "client CPU"),
    ]
    lines = [
        "| " + " | ".join(title for _, title in columns) + " |",
        "|" + "|".join("---:" if k != "target" else "---" for k, _ in columns) + "|",
    ]
    for record in records:
        cells = []
        for key, _ in columns:
            value = record[key]
            if key == "client_cpu":
                cell = f"{value:.0%}"
            elif isinstance(value, float):
                cell = "-" if math.isnan(value) else f"{value:,.2f}".rstrip("0").rstrip(".")
            else:
                cell = str(value)
            if censored(record, key):
                cell = f"≥ {cell}"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(comparison: Comparison, out_dir: Path, command: str) -> list[Path]:
    """The report folder: summary.md, results.json, results.csv and the PNG plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    records = [row.record() for row in comparison.rows]
    meta = {**comparison.meta(), "command": command}
    write_records(records, out_dir / "results.json", out_dir / "results.csv", meta)
    plots = plot_against_ideal(comparison, out_dir) + plot_waterfalls(comparison.samples, out_dir)
    warnings = [
        f"- {r.target.name} workers={r.workers} C={r.concurrency}: {w}"
        for r in comparison.rows
        for w in r.result.warnings
    ]
    delays = ", ".join(f"{k} {v} ms" for k, v in meta["source_delays_ms"].items())
    summary = [
        f"# fanout-lab benchmark ({comparison.preset_name} preset)",
        "",
        f"- command: `{command}`",
        f"- machine: {meta['machine']}; started {meta['started_at']}",
        f"- source delays as the gateway sees them at rest: {delays}",
        f"- sync threadpool tokens per worker: {comparison.threadpool_tokens}; "
        f"async httpx max_connections per worker: {comparison.max_connections}",
        "",
        HOW_TO_READ,
        "## Results",
        "",
        _markdown_table(records),
        "",
        "## Plots",
        "",
        *(f"![{path.stem}]({path.name})" for path in plots),
        "",
        "## Client warnings",
        "",
        *(warnings or ["none: the load generator stayed below saturation in every run."]),
        "",
    ]
    (out_dir / "summary.md").write_text("\n".join(summary))
    return [out_dir / "summary.md", out_dir / "results.json", out_dir / "results.csv", *plots]
