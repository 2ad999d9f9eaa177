"""Waiting under Poisson arrivals, across containers (bench/experiments/sweep.py): the sync gateway
queues as an ideal FIFO queue of its threadpool tokens, and its wait lies where M/D/c puts
a run of this length."""

import pytest

from bench.experiments.sweep import point_spec, summarise, sync_capacity
from bench.harness.load import run_load
from core.theory import mean_wait_spread
from tests.integration.stack import Stack, record

# Slow (make test-slow): a minute of Poisson arrivals. test_bench.py's quick sweep checks
# the same queue against its replay, and tests/unit/test_sweep.py the arithmetic.
pytestmark = [pytest.mark.integration, pytest.mark.timing, pytest.mark.slow]

# The stack's 40 tokens wait only near capacity: at 0.9, M/D/40 predicts about 90 ms.
RHO = 0.9
WINDOW_S = 30.0
SEED = 7
# The ideal queue replayed on the run's own arrivals leaves out only the time a request
# spends between the client and its route (the wire, the server), and the token's time
# past the fan-out (the JSON): a few ms. The defect was a wait twice this queue's.
REPLAY_MARGIN = 0.3
REPLAY_SLACK_S = 0.005


def test_the_sync_gateway_waits_as_an_ideal_queue_of_its_tokens(stack: Stack) -> None:
    base = stack.url("sync", "")
    capacity = sync_capacity(base)
    assert capacity.servers is not None
    spec = point_spec(base, capacity, RHO, WINDOW_S, SEED)
    point = summarise(capacity, RHO, spec, run_load(spec))
    assert point.answered == point.sent
    # The gateway's own token wait, against the ideal queue fed the same arrivals and
    # fan-out times: the run's luck is in both, so they must agree closely.
    assert point.replayed_mean_s is not None
    record(
        "sync at rho 0.9: token wait / ideal queue, same arrivals",
        point.queued_mean_s / point.replayed_mean_s,
        "≈ 1",
    )
    assert abs(point.queued_mean_s - point.replayed_mean_s) <= (
        REPLAY_MARGIN * point.replayed_mean_s + REPLAY_SLACK_S
    )
    # Against theory: within the middle 99% of what runs this long show, from the same
    # model. One run's mean is far from the long-run one (batch means: ± s.e. below).
    low, high = mean_wait_spread(
        capacity.servers, spec.rate, point.fan_out_mean_s, spec.warmup_s, WINDOW_S, 300, 0.99
    )
    record("sync at rho 0.9: mean wait / M/D/c", point.ratio or float("nan"), "≈ 1")
    assert low - REPLAY_SLACK_S <= point.wait_mean_s <= high + REPLAY_SLACK_S, (
        f"{point.wait_mean_s:.3f} s ± {point.wait_error_s:.3f}, when runs this long give"
        f" {low:.3f} to {high:.3f} s (M/D/{capacity.servers}: {point.predicted.mean_s:.3f})"
    )
