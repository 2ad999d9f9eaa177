"""The README's measured blocks, built from the results files they quote.

``python -m bench readme`` writes each block between its two markers in README.md
(``<!-- measured:NAME -->`` and ``<!-- /measured:NAME -->``), and tests/unit/test_readme.py
fails when a block differs from what its files give: a number in the README is always the
one its results file holds.
"""

import json
import re
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench.topology import ROOT, Topology
from bench.tour import render_tour

RESULTS = ROOT / "docs" / "results"
README = ROOT / "README.md"
Record = Mapping[str, Any]

# The claims the README shows, by their key in claims.json, each in a few words; the rest
# (the fan-out lessons the headline has, the connections, threads, the gunicorn timeout and
# HTTP/2) are in docs/results/claims.md.
CLAIM_BRIEFS = {
    "sync_func": "`time.sleep` in `def` blocks the worker: 80 at once / one alone",
    "wrong": "`time.sleep` in `async def` blocks the loop: 80 at once / one alone",
    "per_call_cpu": "use one client: CPU per fan-out, a client per call / shared",
    "fast_def": "`def` for fast endpoints: CPU per request, `def` / `async def`",
    "cpu_inline": "no CPU work in `async def`: a fan-out beside it / max of the delays",
    "cpu_def": "CPU work in `def`: cores used / one core",
    "cpu_process": "CPU work in a process pool: cores used / the pool's",
    "sync_httpx": "httpx beats requests: CPU per fan-out, httpx / requests",
}


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _ran(meta: Record, started: str) -> str:
    """Which run a results file holds: its date and commit, and any setting other than
    .env's (its command and machine are in the file and its summary)."""
    overrides = " ".join(f"{k}={v}" for k, v in meta.get("env_overrides", {}).items())
    made = f"{started[:10]} at `{meta['commit']}`"
    return f"{made} with `{overrides}`" if overrides else made


def _wrapped(text: str) -> list[str]:
    # Never inside a code span or a link: a line may run long rather than break one.
    return textwrap.wrap(text, width=100, break_long_words=False, break_on_hyphens=False)


def _ratio(value: float) -> str:
    return f"{value:.2f}"


def _run(runs: list[Record], series: str, load: int, workers: int = 1) -> Record | None:
    return next(
        (r for r in runs if (r["series"], r["load"], r["workers"]) == (series, str(load), workers)),
        None,
    )


def headline_rows(results: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(what, measured, ideal) for the full run's six lessons, where the run has them."""
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
            rows.append((what, run["throughput"] / run["ideal_throughput"], 1.0))
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
    results = _load(folder / "results.json")
    meta = results["meta"]
    lines = ["| what | measured | ideal |", "|---|---:|---:|"]
    lines += [f"| {what} | {_ratio(m)} | {_ratio(i)} |" for what, m, i in headline_rows(results)]
    lines += [
        "",
        *_wrapped(
            f"[The whole run](docs/results/summary.md) of {_ran(meta, meta['started_at'])},"
            f" on {meta['machine'].split(', ')[1]} that also ran the load."
        ),
    ]
    return "\n".join(lines)


def claims_brief(folder: Path = RESULTS) -> str:
    results = _load(folder / "claims.json")
    lines = [
        "| the post says, and what is measured | measured / ideal | verdict |",
        "|---|---:|---|",
    ]
    for row in results["rows"]:
        if row["key"] in CLAIM_BRIEFS:
            figures = f"{_ratio(row['measured'])} / {_ratio(row['ideal'])}"
            lines.append(f"| {CLAIM_BRIEFS[row['key']]} | {figures} | {row['verdict']} |")
    lines += [
        "",
        *_wrapped(
            f"[Every claim, and why](docs/results/claims.md), from the run of"
            f" {_ran(results, results['started'])}."
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


def scale_out_brief(folder: Path = RESULTS) -> str:
    results = _load(folder / "scale-out" / "results.json")
    meta, measured = results["meta"], scale_out_ratios(results["runs"])
    by_gateway = [
        f"{gateway} " + ", ".join(f"{_ratio(r)} at {n}" for g, n, r in measured if g == gateway)
        for gateway in sorted({g for g, _, _ in measured}, reverse=True)
    ]
    return "\n".join(
        _wrapped(
            f"Throughput, N replicas of 1 worker / 1 replica of N workers: {'; '.join(by_gateway)}"
            f" ([the run](docs/results/scale-out/summary.md) of {_ran(meta, meta['started_at'])})."
        )
    )


def tour(folder: Path = RESULTS) -> str:
    recorded = _load(folder / "tour.json")
    topology = Topology()
    ports = {"sync": topology.sync_port, "async": topology.async_port}
    made = _ran(recorded["meta"], recorded["meta"]["started_at"])
    return (
        render_tour(recorded, ports) + f"\nReal output, trimmed: `python -m bench tour` of {made}."
    )


BLOCKS: dict[str, Callable[[Path], str]] = {
    "tour": tour,
    "headline": headline,
    "claims": claims_brief,
    "scale-out": scale_out_brief,
}


def marker(name: str) -> re.Pattern[str]:
    # An empty block is its two markers on two lines: no line between them.
    return re.compile(
        rf"<!-- measured:{re.escape(name)} -->\n(.*?)\n?<!-- /measured:{re.escape(name)} -->",
        re.DOTALL,
    )


def _found(text: str, name: str) -> re.Match[str]:
    found = marker(name).search(text)
    if found is None:
        raise LookupError(f"README.md has no block measured:{name}")
    return found


def quoted(text: str, name: str) -> str:
    """The block named `name` as the README has it now."""
    return _found(text, name).group(1)


def rewritten(text: str, folder: Path = RESULTS) -> str:
    """`text` with every block built anew from the results files."""
    for name, build in BLOCKS.items():
        found = _found(text, name)
        block = f"<!-- measured:{name} -->\n{build(folder)}\n<!-- /measured:{name} -->"
        text = text[: found.start()] + block + text[found.end() :]
    return text
