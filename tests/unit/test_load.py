"""The load generator: its histograms, its open-loop schedule, and runs against real apps."""

import itertools
import math
import socket
import statistics
from collections.abc import Iterator
from dataclasses import replace

import pytest

from bench.harness.histogram import LatencyHistogram
from bench.harness.load import (
    LoadSpec,
    LoadSummary,
    open_loop_schedule,
    run_load,
)
from gateway import async_app
from tests.unit.loopback import LiveServer, Upstreams

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


def test_poisson_arrivals_come_at_the_rate_with_exponential_gaps_from_the_seed() -> None:
    schedule = open_loop_schedule(rate=50, duration_s=400, arrivals="poisson", seed=5)
    gaps = [later - earlier for earlier, later in itertools.pairwise([0.0, *schedule])]
    # 20,000 arrivals: the count within 3%, and the exponential's signature, a standard
    # deviation equal to its mean (evenly spaced gaps would have none).
    assert len(schedule) == pytest.approx(50 * 400, rel=0.03)
    assert statistics.stdev(gaps) == pytest.approx(statistics.fmean(gaps), rel=0.05)
    assert schedule[-1] < 400
    assert schedule == open_loop_schedule(50, 400, "poisson", seed=5)
    assert schedule[:10] != open_loop_schedule(50, 400, "poisson", seed=6)[:10]


@pytest.mark.parametrize(("rate", "duration"), [(0, 1), (-1, 1), (10, 0)])
def test_open_loop_schedule_rejects_nonpositive_input(rate: float, duration: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        open_loop_schedule(rate, duration)


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
    assert len(result.workers) == 1  # one in-process server
    assert result.instances == {socket.gethostname(): result.ok}
    assert result.sample is not None and result.sample["gateway"] == "async"
    assert 0 < result.window_s <= 1.0
    assert result.throughput == pytest.approx(result.ok / result.window_s)


@pytest.fixture(scope="module")
def two_replicas(upstreams: Upstreams) -> Iterator[tuple[str, str]]:
    """The same gateway twice, on two ports, as two replicas of a swarm service."""
    with (
        LiveServer(async_app.create_app(upstreams.settings(instance="replica-a"))) as a,
        LiveServer(async_app.create_app(upstreams.settings(instance="replica-b"))) as b,
    ):
        yield a.url, b.url


@pytest.mark.timing
@pytest.mark.parametrize("loop", ["closed", "open"])
def test_a_load_spreads_evenly_over_replicas(two_replicas: tuple[str, str], loop: str) -> None:
    """Closed: each client keeps one replica, in turn; open: each request takes the next."""
    first, second = two_replicas
    spec = LoadSpec(
        url=f"{first}/news",
        # One 50 ms source: many short rounds, so the one the window cuts counts for little.
        params={"sources": "wire"},
        replica_urls=(f"{second}/news",),
        loop="open" if loop == "open" else "closed",
        concurrency=4,
        rate=40,
        duration_s=1.5,
        warmup_s=0.3,
    )
    result = run_load(spec)
    assert set(result.instances) == {"replica-a", "replica-b"}
    assert len(result.workers) == 2  # same pid, two replicas
    counts = sorted(result.instances.values())
    # Each replica serves its clients (closed) or every other request (open): even, give
    # or take the rounds the window cuts.
    assert counts[0] >= 0.75 * counts[1], result.instances
    assert result.summary()["instances_seen"] == 2


def test_closed_loop_stops_at_max_requests(async_gateway: str) -> None:
    spec = LoadSpec(
        url=f"{async_gateway}/healthz", concurrency=2, duration_s=30, warmup_s=0, max_requests=20
    )
    result = run_load(spec)
    assert 20 <= result.ok <= 21  # the other client's last request may land too
    assert result.window_s < 30


def test_kept_answers_carry_the_gateways_own_times(async_gateway: str) -> None:
    spec = LoadSpec(
        url=f"{async_gateway}/news",
        loop="open",
        rate=20,
        concurrency=50,
        duration_s=1.0,
        warmup_s=0.2,
        drain_s=5.0,
        arrivals="poisson",
        keep_answers=True,
    )
    result = run_load(spec)
    # Every good answer, the warm-up's too, each after its intended send and its fan-out.
    assert len(result.answers) >= result.ok > 0
    for answer in result.answers:
        assert answer.done - answer.intended >= answer.fan_out_s > 0
        assert answer.queued_s >= 0
    assert not run_load(replace(spec, keep_answers=False)).answers


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
    # The summary's histogram keys are generated: they must be LoadSummary's, no more.
    assert list(result.summary()) == list(LoadSummary.__annotations__)


@pytest.mark.timing
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
