"""The open-loop sweep's bookkeeping: which answers a point counts, its wait, the replayed
queue, the ratios, and the report. Each run here is built by hand from a queue whose every
wait is known, so nothing depends on a clock."""

import json
from pathlib import Path

import pytest

from bench.experiments.sweep import (
    SMALLEST_RATED_WAIT_S,
    AtRest,
    Capacity,
    Sweep,
    point_spec,
    predict,
    summarise,
)
from bench.harness.load import Answer, LoadResult, LoadSpec, open_loop_schedule
from bench.reporting.report import write_sweep_report
from bench.reporting.tables import sweep_table
from core.theory import mdc_wait, replay_fifo_wait

SERVICE_S = 1.6
OVERHEAD_S = 0.004  # what every answer spends outside its fan-out, at rest
SYNC = Capacity("sync", 4 / SERVICE_S, 4, AtRest(SERVICE_S, OVERHEAD_S), "4 tokens / 1.6 s")
ASYNC = Capacity("async", 200.0, None, AtRest(0.8, OVERHEAD_S), "a closed loop")
# Where the run's window opens, on the load client's clock.
WINDOW_START = 1000.0


def queued_run(
    capacity: Capacity, rho: float, window_s: float, seed: int = 3, servers: int | None = None
) -> tuple[LoadSpec, LoadResult, list[float]]:
    """A run whose gateway is the ideal FIFO queue of its servers (or of `servers`, when
    it serves with fewer than it says; none to wait for on async): every answer comes back
    after its wait, its fan-out and the overhead at rest."""
    spec = point_spec("http://gw", capacity, rho, window_s, seed)
    schedule = open_loop_schedule(spec.rate, spec.warmup_s + spec.duration_s, "poisson", seed)
    intended = [WINDOW_START - spec.warmup_s + offset for offset in schedule]
    servers = servers or capacity.servers or len(intended)
    waits = replay_fifo_wait(intended, [capacity.service_s] * len(intended), servers)
    result = LoadResult(spec, window_start=WINDOW_START, window_s=window_s, client_cpu=0.25)
    result.answers = [
        Answer(sent, sent + wait + capacity.service_s + OVERHEAD_S, capacity.service_s, wait)
        for sent, wait in zip(intended, waits, strict=True)
    ]
    return spec, result, waits


def test_a_point_counts_the_answers_due_in_its_window_and_their_waits() -> None:
    spec, result, waits = queued_run(SYNC, rho=0.8, window_s=300)
    point = summarise(SYNC, 0.8, spec, result)
    in_window = [
        wait
        for answer, wait in zip(result.answers, waits, strict=True)
        if answer.intended >= WINDOW_START
    ]
    assert point.sent == point.answered == len(in_window)
    # The overhead at rest is no wait: what is left is the queue's, to the rounding.
    assert point.wait_mean_s == pytest.approx(sum(in_window) / len(in_window), abs=1e-9)
    assert point.queued_mean_s == pytest.approx(point.wait_mean_s, abs=1e-9)
    # The ideal queue, fed these arrivals from the warm-up on, is this gateway exactly.
    assert point.replay_ratio == pytest.approx(1.0)
    assert point.predicted == mdc_wait(4, spec.rate, SERVICE_S)
    assert point.ratio == pytest.approx(point.wait_mean_s / point.predicted.mean_s)
    assert point.wait_error_s > 0
    assert point.spread_s is not None and point.spread_s[0] < point.wait_mean_s < point.spread_s[1]


def test_a_gateway_that_serves_with_fewer_tokens_than_it_has_waits_past_the_replay() -> None:
    # 3 of its 4 tokens at work: at rho 0.6 of 4 that is rho 0.8 of 3, and the queue
    # replayed on the same arrivals with 4 servers waits far less.
    spec, result, _ = queued_run(SYNC, rho=0.6, window_s=600, servers=3)
    point = summarise(SYNC, 0.6, spec, result)
    assert point.replay_ratio is not None and point.replay_ratio > 2
    assert point.spread_s is not None and point.wait_mean_s > point.spread_s[1]


def test_a_missing_answer_shows_as_answered_below_due() -> None:
    spec, result, _ = queued_run(SYNC, rho=0.6, window_s=120)
    last_in_window = max(i for i, a in enumerate(result.answers) if a.intended >= WINDOW_START)
    del result.answers[last_in_window]
    point = summarise(SYNC, 0.6, spec, result)
    assert point.answered == point.sent - 1


def test_a_point_with_too_few_answers_is_an_error_not_a_number() -> None:
    spec, result, _ = queued_run(SYNC, rho=0.6, window_s=120)
    result.answers = result.answers[:3]
    with pytest.raises(RuntimeError, match="answers in the window"):
        summarise(SYNC, 0.6, spec, result)


def test_async_predicts_no_wait_and_rates_nothing_against_it() -> None:
    spec, result, _ = queued_run(ASYNC, rho=0.5, window_s=20)
    point = summarise(ASYNC, 0.5, spec, result)
    assert predict(ASYNC, 100.0, 0.8).mean_s == 0
    assert point.replayed_mean_s is None
    assert (point.ratio, point.replay_ratio) == (None, None)
    assert point.wait_mean_s == pytest.approx(0.0, abs=1e-9)


def test_a_wait_too_small_to_rate_gets_no_ratio() -> None:
    # 4 servers at rho 0.15: M/D/4 predicts a wait below what the HTTP path's noise hides.
    spec, result, _ = queued_run(SYNC, rho=0.15, window_s=300)
    point = summarise(SYNC, 0.15, spec, result)
    assert point.predicted.mean_s < SMALLEST_RATED_WAIT_S
    assert point.ratio is None


def test_the_report_writes_the_points_the_table_and_the_plot(tmp_path: Path) -> None:
    sweep = Sweep("quick", "python -m bench sweep", {"sync": SYNC, "async": ASYNC})
    for capacity, rho, window in ((SYNC, 0.8, 300), (ASYNC, 0.5, 20)):
        spec, result, _ = queued_run(capacity, rho, window)
        sweep.points.append(summarise(capacity, rho, spec, result))
    written = write_sweep_report(sweep, tmp_path)
    assert [path.name for path in written] == ["sweep.json", "sweep.md", "wait.png"]
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert data["meta"]["capacities"]["sync"]["servers"] == 4
    assert data["meta"]["commit"] == sweep.commit
    sync = data["points"][0]
    assert sync["wait_mean_ms"] == round(sweep.points[0].wait_mean_s * 1000, 2)
    assert sync["client_cpu"] == 0.25
    summary = (tmp_path / "sweep.md").read_text()
    assert f"| sync | 0.80 | {sync['rate']:.1f} | {sync['sent']} / {sync['sent']} |" in summary
    assert sweep.started_at in summary and (tmp_path / "wait.png").stat().st_size > 10_000
    assert sweep_table(data["points"]).row_count == 2
