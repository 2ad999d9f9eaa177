"""The report folder, its plots, and the tables both the terminal and summary.md show."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from bench.experiments.plan import GatewayConfig, Point, label
from bench.experiments.rows import Comparison, Row
from bench.harness.load import LoadResult, LoadSpec
from bench.harness.probe import WindowCost
from bench.reporting.report import write_report
from bench.reporting.tables import COMPARISON, comparison_table, markdown_table
from core.theory import TARGETS_BY_NAME, GatewayLimits, ideal

DELAYS = {"wire": 0.3, "gazette": 0.5, "chronicle": 0.8}
SYNC = GatewayConfig("sync", 1, 40, "requests", 1000, 1000)
ASYNC = GatewayConfig("async", 1, 40, "httpx-aiohttp", 1000, 1000)


def make_row(
    target: str,
    config: GatewayConfig,
    concurrency: int,
    ok: int,
    latency_s: float,
    oldest_unfinished_s: float,
    cpu_s: float,
) -> Row:
    result = LoadResult(LoadSpec(url="http://gw/news", concurrency=concurrency), window_s=2.0)
    result.ok, result.unfinished = ok, concurrency
    result.oldest_unfinished_ms = oldest_unfinished_s * 1000
    for _ in range(ok):
        result.latency.record_seconds(latency_s)
        result.gateway_elapsed.record_seconds(latency_s * 0.99)
    point = Point(TARGETS_BY_NAME[target], concurrency, config)
    limits = GatewayLimits(config.workers, config.threadpool_tokens, 120, config.max_connections)
    best = ideal(point.target, concurrency, limits, list(DELAYS.values()))
    cost = WindowCost(cpu_s, 75.0, 110.0, 0.3, 0.1)
    return Row(point, label(point, 40), limits, result, best, cost, host_cores=2)


def test_the_cap_names_the_cpu_that_ran_out_gateway_or_machine() -> None:
    # async at C=200 on 2 cores, ideal 250/s (the clients: 200 / 0.8 s): 150 answers in 1 s.
    row = make_row("async", ASYNC, 200, 150, 1.3, 1.2, cpu_s=0.3)
    row.result.window_s, row.result.client_cpu = 1.0, 0.2
    # The worker spent 0.3 s (2 ms each: its line is 500/s); upstreams 0.9 cores, the client
    # 0.2, others 0.6, so the machine was full (2.0 busy): (2 - 0.6) / 9.33 ms = 150/s.
    row.cost = WindowCost(0.3, 75.0, 110.0, 0.9, 0.3, machine_busy_cores=2.0)
    record = row.record()
    assert record["machine_cpu_ms_per_request"] == pytest.approx(9.33, abs=0.01)
    assert record["others_cpu_cores"] == pytest.approx(0.6)
    assert record["machine_line_throughput"] == pytest.approx(150.0)
    assert record["cap"] == "clients; machine CPU" and record["cpu_bound"] is True
    # The same answers with a worker that took 1.2 s: its own line, 125/s, binds first.
    row.cost = WindowCost(1.2, 75.0, 110.0, 0.3, 0.1, machine_busy_cores=1.9)
    assert row.record()["cap"] == "clients; gateway CPU"
    # With room on both lines, the cap is the designed one alone.
    row.cost = WindowCost(0.3, 75.0, 110.0, 0.3, 0.1, machine_busy_cores=0.9)
    assert row.record()["cap"] == "clients" and row.record()["cpu_bound"] is False


@pytest.fixture
def comparison() -> Comparison:
    comparison = Comparison("quick", DELAYS, {"sync": SYNC, "async": ASYNC})
    httpx = replace(ASYNC, http_client="httpx")
    comparison.rows += [
        make_row("sync", SYNC, 10, 12, 1.6, 1.5, cpu_s=0.04),
        make_row("async", ASYNC, 10, 24, 0.8, 0.7, cpu_s=0.06),
        make_row("async", ASYNC, 100, 240, 0.8, 0.7, cpu_s=0.6),
        make_row("async", httpx, 10, 24, 0.8, 0.7, cpu_s=0.06),
        # httpx at C=100: 30 answers for 2 s of CPU, 67 ms each: its CPU line is 15 req/s.
        make_row("async", httpx, 100, 30, 4.0, 6.0, cpu_s=2.0),
        # granian at C=100: the same answers for 0.45 s of CPU, 0.75 of gunicorn's 0.6 s.
        make_row("async", replace(ASYNC, server="granian"), 100, 240, 0.8, 0.7, cpu_s=0.45),
        make_row("blocking", ASYNC, 10, 1, 1.6, 3.0, cpu_s=0.01),
        make_row("sync", replace(SYNC, threadpool_tokens=200), 200, 100, 2.0, 1.9, cpu_s=0.5),
        make_row("sync", SYNC, 200, 25, 8.0, 7.0, cpu_s=0.1),
    ]
    sources = [
        {"name": n, "ok": True, "started_ms": s, "elapsed_ms": e}
        for n, s, e in [("wire", 0, 300), ("gazette", 300, 500), ("chronicle", 800, 800)]
    ]
    comparison.samples["sync"] = {"elapsed_ms": 1600, "sources": sources}
    return comparison


def test_report_folder_has_summary_data_and_every_plot(
    comparison: Comparison, tmp_path: Path
) -> None:
    written = write_report(comparison, tmp_path, "python -m bench compare")
    names = {path.name for path in written}
    assert names == {
        "summary.md",
        "results.json",
        "results.csv",
        "throughput.png",
        "latency_p50.png",
        "latency_p99.png",
        "cpu_per_request.png",
        "threadpool.png",
        "waterfall_sync.png",
    }
    assert all(path.stat().st_size > 0 for path in written)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["meta"]["command"] == "python -m bench compare"
    assert data["meta"]["async_http_client"] == "httpx-aiohttp"
    assert data["meta"]["async_max_connections"] == 1000
    runs = {(r["series"], r["concurrency"]): r for r in data["runs"]}
    assert runs["sync", 10]["throughput_vs_ideal"] == pytest.approx(6 / 6.25, abs=1e-3)
    assert runs["async · httpx", 100]["gateway_cpu_ms_per_request"] == pytest.approx(66.67)
    assert runs["async · httpx", 100]["cpu_bound"] is True
    assert runs["async · httpx-aiohttp", 100]["cpu_bound"] is False
    assert runs["async · httpx-aiohttp · granian", 100]["server"] == "granian"
    summary = (tmp_path / "summary.md").read_text()
    assert "async 1 worker(s) on **httpx-aiohttp**, max_connections 1000" in summary
    # The server axis: only C=100 ran under two servers, on the stack's client.
    servers = summary.split("## Servers", 1)[1].split("##", 1)[0]
    rows = [line.split(" | ") for line in servers.splitlines() if line.startswith("| async")]
    assert [(r[1], r[2], r[5], r[6]) for r in rows] == [
        ("gunicorn", "100", "2.50", "1.00"),  # two decimals, as every CPU column
        ("granian", "100", "1.88", "0.75"),
    ]


def test_markdown_and_terminal_tables_share_one_column_spec(comparison: Comparison) -> None:
    records = [row.record() for row in comparison.rows]
    markdown = markdown_table(records)
    header = markdown.splitlines()[0]
    assert header == "| " + " | ".join(column.title for column in COMPARISON) + " |"
    console = Console(width=250, record=True)
    console.print(comparison_table(records))
    terminal = console.export_text()
    header_row = next(line for line in terminal.splitlines() if "┃ series" in line)
    titles = [cell.strip() for cell in header_row.strip("┃ ").split("┃")]
    assert titles == [column.title for column in COMPARISON if column.terminal]
    # The same cells in both: a CPU-bound row is starred, a censored latency is a floor.
    httpx_line = next(line for line in markdown.splitlines() if "async · httpx \\*" in line)
    assert "| 15 |" in httpx_line  # its CPU line
    assert "| 66.67 |" in httpx_line and "66.67" in terminal  # its CPU per request
    assert "async · httpx *" in terminal


def test_only_latencies_an_unanswered_request_outwaited_are_floors(
    comparison: Comparison,
) -> None:
    lines = markdown_table([row.record() for row in comparison.rows]).splitlines()
    blocking = next(line for line in lines if line.startswith("| blocking"))
    sync = next(line for line in lines if line.startswith("| sync | 1 | 10 |"))
    assert "≥ 1,60" in blocking  # 1.6 s, to the histogram's three significant digits
    assert "≥" not in sync
