"""bench cost's arithmetic: each round's ratio from windows side by side, and the medians."""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from bench.experiments import cost
from bench.harness.load import LoadResult, LoadSpec
from bench.harness.probe import WindowCost

# What each window costs here, per answer: the gateway's ms, and all upstreams' ms.
TRIVIAL_MS, FAN_OUT_MS, UPSTREAMS_MS = (0.3, 0.25, 0.35, 0.3, 0.3), 2.4, 1.8
REST_CORES = 0.05  # the upstreams' healthchecks, at rest


@dataclass
class FakeProbe:
    """Prices each window from its URL; the rest window at REST_CORES."""

    windows: dict[tuple[float, float], str] = field(default_factory=dict)

    @contextlib.contextmanager
    def running(self) -> Iterator["FakeProbe"]:
        yield self

    def cost(self, start: float, end: float) -> WindowCost:
        url, seconds = self.windows.get((start, end), "rest"), end - start
        if url == "rest":
            return WindowCost(0.0, 0, 0, REST_CORES, REST_CORES)
        trivial = url.endswith("/healthz")
        index = sum(1 for u in self.windows.values() if u == url) - 1
        per_answer = TRIVIAL_MS[index] if trivial else FAN_OUT_MS
        upstream_cores = REST_CORES + (0 if trivial else UPSTREAMS_MS * 100 / 1000)
        return WindowCost(per_answer * 100 * seconds / 1000, 0, 0, upstream_cores, 0)


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> FakeProbe:
    fake, clock = FakeProbe(), iter(range(0, 10_000, 10))

    def run_load(spec: LoadSpec) -> LoadResult:
        start = float(next(clock))
        result = LoadResult(spec, window_s=4.0, window_start=start, window_end=start + 4.0)
        result.ok, result.client_cpu = 400, 0.1  # 100 answers a second
        fake.windows[start, start + 4.0] = spec.url
        return result

    monkeypatch.setattr(cost, "run_load", run_load)
    monkeypatch.setattr("bench.experiments.cost.time.sleep", lambda seconds: None)
    return fake


def test_each_round_divides_a_fan_out_by_the_trivial_request_beside_it(probe: FakeProbe) -> None:
    point = cost.measure_point(probe, "http://gw/", 200, 4.0, rounds=5)  # type: ignore[arg-type]
    assert point.fan_out_units_by_round == tuple(round(FAN_OUT_MS / t, 2) for t in TRIVIAL_MS)
    assert point.fan_out_units == pytest.approx(FAN_OUT_MS / 0.3, abs=0.01)  # the median
    assert point.trivial_ms == pytest.approx(0.3) and point.fan_out_ms == pytest.approx(2.4)
    # The upstreams' rest is taken out before a call is priced: 1.8 ms over 3 calls.
    assert point.upstream_call_ms == pytest.approx(0.6)
    assert point.upstream_call_units == pytest.approx(2.0, abs=0.01)
    assert point.client_fan_out_ms == pytest.approx(1.0)  # 0.1 of a core, 100 a second
    assert point.machine_fan_out_ms == pytest.approx(2.4 + 1.8 + 1.0)
    record = point.record()
    assert record["fan_out_units"] == 8.0 and record["errors"] == 0


def test_a_window_the_probe_cannot_price_is_an_error(
    probe: FakeProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeProbe, "cost", lambda self, start, end: None)
    with pytest.raises(RuntimeError, match="rest window"):
        cost.measure_point(probe, "http://gw", 200, 4.0)  # type: ignore[arg-type]
