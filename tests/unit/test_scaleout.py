"""Replicas against workers (bench/experiments/scaleout.py): the shapes, the ratios, the report, and
the check that a reshaped gateway really has the shape it was asked for."""

from dataclasses import replace
from pathlib import Path

import pytest

from bench.experiments.plan import GatewayConfig, Point
from bench.experiments.rows import Comparison, Row
from bench.experiments.scaleout import Shape, SwarmStack, ratios, run_scale_out, shapes
from bench.harness.load import LoadResult, LoadSpec
from bench.harness.probe import WindowCost
from bench.harness.stack import GatewayName
from bench.reporting.report import write_scale_out_report
from core.theory import TARGETS_BY_NAME, GatewayLimits, ideal
from gateway.models import GatewayHealth
from tests.unit.health import health_of

DELAYS = {"wire": 0.3, "gazette": 0.5, "chronicle": 0.8}
SYNC = GatewayConfig("sync", 1, 40, "requests", 1000, 1000)
ASYNC = GatewayConfig("async", 1, 40, "httpx-aiohttp", 1000, 1000)


def sync_row(replicas: int, workers: int, ok: int, rss_mib: float) -> Row:
    result = LoadResult(LoadSpec(url="http://gw/news", concurrency=100), window_s=2.0)
    result.ok = ok
    for _ in range(ok):
        result.latency.record_seconds(1.6)
    config = GatewayConfig("sync", workers, 40, "requests", 1000, 1000, replicas=replicas)
    point = Point(TARGETS_BY_NAME["sync"], 100, config)
    limits = GatewayLimits(replicas * workers, 40, 120, 1000)
    best = ideal(point.target, 100, limits, list(DELAYS.values()))
    cost = WindowCost(0.1, 60.0, rss_mib, 0.3, 0.1)
    return Row(point, "sync", limits, result, best, cost, host_cores=2)


@pytest.fixture
def comparison() -> Comparison:
    comparison = Comparison("swarm quick", DELAYS, {"sync": SYNC, "async": ASYNC})
    comparison.rows += [
        sync_row(1, 1, 50, 90.0),
        sync_row(1, 2, 100, 150.0),
        sync_row(2, 1, 96, 180.0),
    ]
    return comparison


def test_the_shapes_share_their_first_point() -> None:
    assert shapes((1, 2, 4)) == [
        Shape(1, 1),
        Shape(1, 2),
        Shape(1, 4),
        Shape(2, 1),
        Shape(4, 1),
    ]
    assert [s.processes for s in shapes((1, 2))] == [1, 2, 2]


def test_ratios_set_n_replicas_against_n_workers(comparison: Comparison) -> None:
    assert ratios(comparison) == {"sync: 2 replicas / 2 workers": pytest.approx(0.96)}


def test_a_replica_counts_in_the_cpu_line_as_a_process(comparison: Comparison) -> None:
    one, two_workers, two_replicas = comparison.rows
    assert two_replicas.processes == two_workers.processes == 2
    # The same CPU over fewer answers: a line 0.96 as high, both on min(2 processes, 2 cores).
    assert two_replicas.cpu_line == pytest.approx(two_workers.cpu_line * 96 / 100)
    assert two_workers.cpu_line == pytest.approx(2 / (0.1 / 100))
    assert two_replicas.record()["replicas"] == 2 and one.record()["replicas"] == 1


def test_the_report_has_the_table_the_ratios_and_the_plot(
    comparison: Comparison, tmp_path: Path
) -> None:
    written = write_scale_out_report(comparison, tmp_path, "python -m bench compare --target swarm")
    assert {p.name for p in written} == {
        "summary.md",
        "results.json",
        "results.csv",
        "scale_out.png",
    }
    summary = (tmp_path / "summary.md").read_text()
    assert "| gateway | replicas | workers |" in summary
    assert "- sync: 2 replicas / 2 workers: 0.96" in summary
    # The whole gateway's memory, arbiters included: 2 replicas cost more than 2 workers.
    assert "| sync | 2 | 1 | 100 | 48.0 |" in summary
    assert (tmp_path / "scale_out.png").stat().st_size > 10_000


class ScriptedSwarm(SwarmStack):
    """A swarm whose scripts/swarm.sh answers with these replica URLs, each reporting this
    many workers."""

    def __init__(self, urls: str, workers: int) -> None:
        super().__init__("fanout")
        self.replica_urls, self.workers = urls, workers

    def script(self, *args: str) -> str:
        return self.replica_urls

    def health(self, url: str) -> GatewayHealth:
        return health_of(replace(SYNC, workers=self.workers))


def test_a_reshape_that_did_not_take_is_an_error() -> None:
    """After a rolled-back update the replicas still run the old shape: say so, do not
    measure it as the new one."""
    urls = "http://127.0.0.1:30001\nhttp://127.0.0.1:30002\n"
    stack = ScriptedSwarm(urls, workers=1)
    assert stack.reshape("sync", Shape(2, 1)) == (urls.split(), health_of(SYNC))
    with pytest.raises(RuntimeError, match="wanted 2 replica"):
        stack.reshape("sync", Shape(2, 4))
    with pytest.raises(RuntimeError, match="wanted 3 replica"):
        stack.reshape("sync", Shape(3, 1))


class FakeSwarm(SwarmStack):
    """scripts/swarm.sh's side of run_scale_out: each gateway's shape, and every call and
    measurement."""

    def __init__(self) -> None:
        super().__init__("fanout")
        self.shapes = {"sync-gateway": Shape(1, 1), "async-gateway": Shape(1, 1)}
        self.reshapes: list[tuple[str, Shape]] = []
        self.measured: list[tuple[str, dict[str, Shape]]] = []

    def replica_urls(self, service: str) -> str:
        port = {"sync-gateway": 31000, "async-gateway": 32000}[service]
        shape = self.shapes[service]
        return "".join(f"http://127.0.0.1:{port + i}\n" for i in range(shape.replicas))

    def script(self, *args: str) -> str:
        if args[0] == "gateway":
            service, replicas, workers = args[1], int(args[2]), int(args[3])
            self.shapes[service] = Shape(replicas, workers)
            self.reshapes.append((service, self.shapes[service]))
        return self.replica_urls(args[1])

    def health(self, url: str) -> GatewayHealth:
        port = int(url.rsplit(":", 1)[1])
        service = "sync-gateway" if port < 32000 else "async-gateway"
        config = {"sync-gateway": SYNC, "async-gateway": ASYNC}[service]
        return health_of(config, workers=self.shapes[service].workers)

    def calibrate(self) -> dict[str, float]:
        return DELAYS

    def measure(self, gateway: GatewayName, spec: LoadSpec) -> tuple[LoadResult, None]:
        self.measured.append((spec.url, dict(self.shapes)))
        result = LoadResult(spec, window_s=1.0)
        result.ok = 10
        return result, None

    def priced(self, gateway: GatewayName) -> bool:
        return False


def test_the_run_reshapes_one_gateway_at_a_time_and_puts_each_back() -> None:
    fake = FakeSwarm()
    comparison = run_scale_out("full", fake)
    assert [(r.target.name, r.point.config.replicas, r.workers) for r in comparison.rows] == [
        (gateway, s.replicas, s.workers) for gateway in ("sync", "async") for s in shapes((1, 2, 4))
    ]
    # While one gateway is measured, the other runs as it was found: 1 replica of 1 worker.
    for url, during in fake.measured:
        other = "async-gateway" if ":31" in url else "sync-gateway"
        assert during[other] == Shape(1, 1), (url, during)
    # The 4-replica point spread its clients over 4 replica URLs.
    four = comparison.rows[4]
    assert four.point.config.replicas == 4 and len(four.result.spec.urls) == 4
    assert fake.reshapes[-1] == ("async-gateway", Shape(1, 1))
    assert fake.shapes == {"sync-gateway": Shape(1, 1), "async-gateway": Shape(1, 1)}
    assert comparison.probe_note is not None


def test_a_stack_with_no_replica_of_a_gateway_is_an_error() -> None:
    empty = ScriptedSwarm("", workers=1)
    with pytest.raises(RuntimeError, match="make swarm-up"):
        run_scale_out("quick", empty)
