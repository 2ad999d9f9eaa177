"""The benchmark's maths and its load generator, against real apps on loopback."""

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.compare import Comparison, Row, whole_cycles
from bench.crosscheck import CrossCheck, ToolPoint, parse_hey
from bench.load import LatencyHistogram, LoadResult, LoadSpec, open_loop_schedule, run_load
from bench.report import write_report
from bench.theory import TARGETS, TARGETS_BY_NAME, Target, fan_out_cost, ideal
from gateway import async_app
from tests.unit.loopback import LiveServer, Upstreams

DELAYS_S = [0.3, 0.5, 0.8]  # the compose stack's defaults


# --- percentiles ----------------------------------------------------------------------


def test_percentiles_match_the_exact_ones_within_the_histograms_precision() -> None:
    histogram = LatencyHistogram()
    for ms in range(1, 1001):  # 1 ms .. 1000 ms, once each
        histogram.record_seconds(ms / 1000)
    summary = histogram.summary_ms()
    # Three significant digits: each value is within 0.1% of the exact order statistic.
    for name, exact in {"p50": 500, "p90": 900, "p99": 990, "p99.9": 999, "max": 1000}.items():
        assert summary[name] == pytest.approx(exact, rel=1e-3), name
    assert summary["mean"] == pytest.approx(500.5, rel=1e-3)
    assert histogram.count == 1000


def test_a_skewed_distribution_keeps_its_tail() -> None:
    histogram = LatencyHistogram()
    for _ in range(990):
        histogram.record_seconds(0.010)
    for _ in range(10):
        histogram.record_seconds(2.0)
    assert histogram.percentile_ms(50) == pytest.approx(10, rel=1e-3)
    assert histogram.percentile_ms(99) == pytest.approx(10, rel=1e-3)
    assert histogram.percentile_ms(99.9) == pytest.approx(2000, rel=1e-3)


def test_an_empty_histogram_reports_nan_not_zero() -> None:
    summary = LatencyHistogram().summary_ms()
    assert all(math.isnan(value) for value in summary.values())


def test_sub_microsecond_latencies_count_as_one_microsecond() -> None:
    histogram = LatencyHistogram()
    histogram.record_seconds(0)
    assert histogram.count == 1
    assert histogram.percentile_ms(50) == pytest.approx(0.001)


# --- the open-loop schedule -----------------------------------------------------------


def test_open_loop_schedule_is_evenly_spaced_at_the_rate() -> None:
    schedule = open_loop_schedule(rate=4, duration_s=2)
    assert schedule == [0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]


def test_open_loop_schedule_ignores_a_partial_last_interval() -> None:
    schedule = open_loop_schedule(rate=1000, duration_s=0.0105)
    assert len(schedule) == 10
    assert schedule[-1] == pytest.approx(0.009)


@pytest.mark.parametrize(("rate", "duration"), [(0, 1), (-1, 1), (10, 0)])
def test_open_loop_schedule_rejects_nonpositive_input(rate: float, duration: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        open_loop_schedule(rate, duration)


# --- the ideal lines ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "concurrency", "workers", "throughput", "latency_s"),
    [
        # async: C / max(d) at any C, latency max(d)
        ("async", 10, 1, 10 / 0.8, 0.8),
        ("async", 100, 1, 100 / 0.8, 0.8),
        # sync: min(C, workers x tokens) / sum(d), then latency grows linearly with C
        ("sync", 10, 1, 10 / 1.6, 1.6),
        ("sync", 40, 1, 40 / 1.6, 1.6),
        ("sync", 100, 1, 40 / 1.6, 1.6 * 100 / 40),
        ("sync", 100, 2, 80 / 1.6, 1.6 * 100 / 80),
        ("sync-threads", 100, 1, 40 / 0.8, 0.8 * 100 / 40),
        ("async-sequential", 100, 1, 100 / 1.6, 1.6),
        # the blocking mistake: one request per worker
        ("blocking", 1, 1, 1 / 1.6, 1.6),
        ("blocking", 10, 1, 1 / 1.6, 16.0),
        ("blocking", 10, 4, 4 / 1.6, 4.0),
    ],
)
def test_ideal_lines(
    target: str, concurrency: int, workers: int, throughput: float, latency_s: float
) -> None:
    best = ideal(TARGETS_BY_NAME[target], concurrency, workers, DELAYS_S, threadpool_tokens=40)
    assert best.throughput == pytest.approx(throughput)
    assert best.latency_s == pytest.approx(latency_s)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
@pytest.mark.parametrize("concurrency", [1, 7, 40, 41, 200])
@pytest.mark.parametrize("workers", [1, 3])
def test_every_ideal_obeys_littles_law(target: Target, concurrency: int, workers: int) -> None:
    """A closed loop keeps C requests in flight: throughput x latency = C."""
    best = ideal(target, concurrency, workers, DELAYS_S, threadpool_tokens=40)
    assert best.throughput * best.latency_s == pytest.approx(concurrency)


def test_fan_out_cost_is_the_sum_or_the_max() -> None:
    assert fan_out_cost(DELAYS_S, overlapped=False) == pytest.approx(1.6)
    assert fan_out_cost(DELAYS_S, overlapped=True) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="source delay"):
        fan_out_cost([], overlapped=True)


def test_ideal_rejects_impossible_points() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ideal(TARGETS_BY_NAME["sync"], 0, 1, DELAYS_S, 40)


# --- the cross-check's parsing and verdict -------------------------------------------

HEY_OUTPUT = (Path(__file__).parent / "data" / "hey_output.txt").read_text()


def test_parse_hey_reads_throughput_p50_and_status_200s() -> None:
    throughput, p50_ms, ok = parse_hey(HEY_OUTPUT)
    assert throughput == 11.7409
    assert p50_ms == pytest.approx(823.4)
    assert ok == 80


def test_parse_hey_refuses_output_it_does_not_understand() -> None:
    with pytest.raises(ValueError, match="unexpected hey output"):
        parse_hey("Error: connection refused")


@pytest.mark.parametrize(
    ("bench_throughput", "bench_p50", "agrees"),
    [(10.0, 100.0, True), (11.4, 86.0, True), (11.6, 100.0, False), (10.0, 84.0, False)],
)
def test_cross_check_agrees_within_fifteen_percent_of_hey(
    bench_throughput: float, bench_p50: float, agrees: bool
) -> None:
    check = CrossCheck(
        "http://127.0.0.1/news",
        10,
        hey=ToolPoint("hey", 10.0, 100.0, 80),
        bench=ToolPoint("bench", bench_throughput, bench_p50, 80),
    )
    assert check.agrees is agrees


# --- the report folder ----------------------------------------------------------------


def _result(url: str, ok: int, latency_s: float, oldest_unfinished_s: float) -> LoadResult:
    result = LoadResult(LoadSpec(url=url, concurrency=10), window_s=2.0, ok=ok)
    result.unfinished = 10
    result.oldest_unfinished_ms = oldest_unfinished_s * 1000
    for _ in range(ok):
        result.latency.record_seconds(latency_s)
        result.gateway_elapsed.record_seconds(latency_s * 0.99)
    return result


def test_report_folder_has_summary_data_and_plots(tmp_path: Path) -> None:
    comparison = Comparison("quick", {"wire": 0.3, "gazette": 0.5, "chronicle": 0.8}, 40, 100)
    for target, ok, latency_s, oldest_unfinished_s in [
        (TARGETS_BY_NAME["sync"], 12, 1.6, 1.5),
        (TARGETS_BY_NAME["async"], 24, 0.8, 0.7),
        (TARGETS_BY_NAME["blocking"], 1, 1.6, 3.0),
    ]:
        best = ideal(target, 10, 1, DELAYS_S, 40)
        row = Row(target, 1, 10, _result(target.path, ok, latency_s, oldest_unfinished_s), best)
        comparison.rows.append(row)
    sources = [
        {"name": n, "ok": True, "started_ms": s, "elapsed_ms": e}
        for n, s, e in [("wire", 0, 300), ("gazette", 300, 500), ("chronicle", 800, 800)]
    ]
    comparison.samples["sync"] = {"elapsed_ms": 1600, "sources": sources}

    written = write_report(comparison, tmp_path / "report", "python -m bench compare")

    names = {path.name for path in written}
    assert {"summary.md", "results.json", "results.csv", "throughput.png"} <= names
    assert {"latency_p50.png", "latency_p99.png", "waterfall_sync.png"} <= names
    assert all(path.stat().st_size > 0 for path in written)
    data = json.loads((tmp_path / "report" / "results.json").read_text())
    assert data["meta"]["command"] == "python -m bench compare"
    rows = {row["target"]: row for row in data["runs"]}
    assert rows["sync"]["throughput_vs_ideal"] == pytest.approx(6 / 6.25, abs=1e-3)
    assert rows["async"]["throughput_vs_ideal"] == pytest.approx(12 / 12.5, abs=1e-3)
    summary = (tmp_path / "report" / "summary.md").read_text()
    # Every closed loop ends its window with requests in flight. Only the blocking row's had
    # waited longer than the answers it saw: its latencies are floors.
    blocking_line = next(line for line in summary.splitlines() if line.startswith("| blocking"))
    sync_line = next(line for line in summary.splitlines() if line.startswith("| sync"))
    assert "≥ 1,600" in blocking_line
    assert "≥" not in sync_line


# --- the load generator, against real apps on loopback -------------------------------


@pytest.fixture(scope="module")
def async_gateway(upstreams: Upstreams) -> Iterator[str]:
    with LiveServer(async_app.create_app(upstreams.settings())) as server:
        yield server.url


def test_closed_loop_reads_the_gateways_contract(async_gateway: str) -> None:
    result = run_load(
        LoadSpec(url=f"{async_gateway}/news", concurrency=4, duration_s=1, warmup_s=0.3)
    )
    assert result.ok > 0
    assert not result.errors
    assert result.gateway_elapsed.count == result.ok
    assert len(result.worker_pids) == 1  # one in-process server
    assert result.sample is not None and result.sample["gateway"] == "async"
    assert 0 < result.window_s <= 1.0
    assert result.throughput == pytest.approx(result.ok / result.window_s)


def test_closed_loop_stops_at_max_requests(async_gateway: str) -> None:
    spec = LoadSpec(
        url=f"{async_gateway}/healthz", concurrency=2, duration_s=30, warmup_s=0, max_requests=20
    )
    result = run_load(spec)
    assert 20 <= result.ok <= 21  # the other client's last request may land too
    assert result.window_s < 30


@pytest.mark.parametrize(
    ("path", "params", "timeout_s", "kind"),
    [
        ("/news", {"sources": "nope"}, 5.0, "status 422"),
        ("/news", {"delay_ms": "400"}, 0.1, "timeout"),
    ],
)
def test_errors_are_counted_by_kind(
    upstreams: Upstreams,
    async_gateway: str,
    path: str,
    params: dict[str, str],
    timeout_s: float,
    kind: str,
) -> None:
    # The upstream itself honours delay_ms; the gateway validates sources.
    base = upstreams.urls["wire"] if "delay_ms" in params else async_gateway
    spec = LoadSpec(
        url=base + path,
        params=params,
        concurrency=2,
        duration_s=0.6,
        warmup_s=0,
        timeout_s=timeout_s,
    )
    result = run_load(spec)
    assert result.ok == 0
    assert set(result.errors) == {kind}
    assert "no request completed in the measured window" in result.warnings


def test_a_refused_connection_is_a_connection_error(unused_url: str) -> None:
    result = run_load(LoadSpec(url=unused_url, concurrency=1, duration_s=0.3, warmup_s=0))
    assert set(result.errors) == {"connection"}


def test_open_loop_counts_queueing_from_the_intended_send_time(upstreams: Upstreams) -> None:
    """Coordinated omission, avoided: a stalled server's queue shows up in the latency.

    One request at a time, 100 ms each, so the server manages 10 req/s. Asked for 20 req/s,
    the schedule falls further behind with every request. A closed loop never sees that.
    """
    url = f"{upstreams.urls['wire']}/news"
    params = {"delay_ms": "100"}
    closed = run_load(LoadSpec(url=url, params=params, concurrency=1, duration_s=1.5, warmup_s=0))
    opened = run_load(
        LoadSpec(
            url=url,
            params=params,
            loop="open",
            rate=20,
            concurrency=1,
            duration_s=1.5,
            warmup_s=0,
            drain_s=0,
        )
    )
    assert closed.ok > 0 and opened.ok > 0
    # Request k is due at k/20 s and answered at about (k+1)/10 s: it waits 0.05 k + 0.1 s.
    # About 15 answers fit in the window, so the open loop's p90 is near 0.7 s, the closed
    # loop's 0.1 s.
    ratio = opened.latency.percentile_ms(90) / closed.latency.percentile_ms(90)
    assert ratio > 4, f"open/closed p90 = {ratio:.1f}"
    # About 15 requests were still due when the window closed.
    assert opened.unfinished > 5
    assert opened.oldest_unfinished_ms > 4 * closed.latency.percentile_ms(90)


def test_open_loop_needs_a_rate() -> None:
    with pytest.raises(ValueError, match="rate above 0"):
        run_load(LoadSpec(url="http://127.0.0.1:9/", loop="open", rate=0))


@pytest.mark.parametrize(
    ("target", "duration_s", "window_s"),
    [
        ("sync", 4, 3.2),  # 1.6 s a fan-out: 2.5 rounds round to 2
        ("sync", 10, 9.6),
        ("async", 4, 4.0),  # 0.8 s a fan-out: exactly 5 rounds
        ("blocking", 1, 3.2),  # never fewer than 2 rounds
    ],
)
def test_windows_hold_whole_fan_out_rounds(target: str, duration_s: float, window_s: float) -> None:
    assert whole_cycles(duration_s, TARGETS_BY_NAME[target], DELAYS_S) == pytest.approx(window_s)
