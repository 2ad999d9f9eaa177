"""Each step of bench claims on real gateways in process, with a short preset: the rows and
figures it writes, its restarts undone, and no CPU or connection figure where nothing priced
the load (no probe here). The verdicts on the real stack: tests/integration/test_claims.py
(make test-slow)."""

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace

import pytest

from bench.experiments.claims.background import background
from bench.experiments.claims.cpu import cpu_work
from bench.experiments.claims.fan_out import (
    client_per_call,
    fan_out_lessons,
    fast_return,
    sleeps,
    sync_clients,
)
from bench.experiments.claims.lab import Lab
from bench.experiments.claims.model import PLACEMENTS, Claims, ClaimsPreset
from bench.experiments.claims.selfcall import self_call
from bench.experiments.claims.websocket import AT_ONCE, websocket
from bench.harness.probe import StackProbe
from bench.harness.stack import GatewayName, ProbedStack, calibrate, healthz
from gateway import async_app, sync_app
from gateway.models import GatewayHealth
from tests.unit.loopback import DELAYS_MS, LiveServer, Upstreams

# Short windows, few clients, bursts within the 40 tokens: the steps' logic, not a benchmark.
PRESET = ClaimsPreset(
    window_s=0.5,
    warmup_s=0.2,
    client_concurrency=(2,),
    sync_concurrency=(2,),
    at_once=(2, 4),
    cpu_clients=2,
    work_ms=20,
    fast_concurrency=4,
    gunicorn_timeout_s=2,
)


class InProcessStack(ProbedStack):
    """Both gateways on loopback; a restart builds the gateway again from the variables the
    claims set (only the sync client's matters in process), and is recorded."""

    def __init__(self, upstreams: Upstreams, exits: ExitStack) -> None:
        super().__init__()
        self.upstreams, self.exits = upstreams, exits
        self.restarts: list[tuple[GatewayName, dict[str, str]]] = []
        self.servers = {
            "sync": self.start("sync", "requests"),
            "async": self.start("async", "requests"),
        }

    def start(self, gateway: GatewayName, sync_client: str) -> LiveServer:
        settings = self.upstreams.settings(sync_http_client=sync_client)
        app = (sync_app if gateway == "sync" else async_app).create_app(settings)
        return self.exits.enter_context(LiveServer(app))

    def base(self, gateway: GatewayName) -> str:
        return self.servers[gateway].url

    def health(self, gateway: GatewayName) -> GatewayHealth:
        return healthz(self.base(gateway))

    def calibrate(self) -> dict[str, float]:
        return calibrate(self.base("async"))

    def new_probe(self, gateway: GatewayName) -> StackProbe | None:
        return None

    def restart(self, gateway: GatewayName, env: dict[str, str]) -> None:
        self.restarts.append((gateway, env))
        self.servers[gateway].__exit__()
        self.servers[gateway] = self.start(gateway, env.get("SYNC_HTTP_CLIENT", "requests"))


@pytest.fixture(scope="module")
def stack(upstreams: Upstreams) -> Iterator[InProcessStack]:
    with ExitStack() as exits:
        yield InProcessStack(upstreams, exits)


@pytest.fixture
def lab(stack: InProcessStack) -> Lab:
    stack.restarts.clear()
    return Lab(stack, PRESET, on_step=lambda _: None)


def new_claims() -> Claims:
    return Claims({"command": "test"}, "unit", {k: float(v) for k, v in DELAYS_MS.items()})


def test_the_first_lessons_cost_at_least_the_sum_and_the_max(lab: Lab) -> None:
    claims = new_claims()
    delays_s = [ms / 1000 for ms in DELAYS_MS.values()]
    fan_out_lessons(lab, claims, delays_s)
    # One call after another cannot beat the sum, and overlapped calls cannot beat the max.
    assert [row.key for row in claims.rows] == ["sync_sum", "async_max"]
    assert all(row.measured is not None and row.measured >= 0.95 for row in claims.rows)
    figures = claims.figures["fan_out"]
    assert figures["sync_ms"] >= 0.95 * sum(DELAYS_MS.values())


def test_sleeps_overlap_in_def_and_queue_on_the_loop(lab: Lab) -> None:
    claims = new_claims()
    sleeps(lab, claims)
    figures = claims.figures["sleeps"]
    assert figures["tokens"] == 40 and set(figures["wrong"]) == {"2", "4"}
    # 4 sleeps of 100 ms on the loop take 400 ms at the least; alone, 100 ms and the trip.
    assert figures["wrong"]["4"] > 2
    assert claims.row("wrong").verdict == "holds"
    # Within the tokens, nothing past them: the def sleeps overlap and the claim has a limit.
    assert figures["sync_func"]["4"] < 1.5
    assert claims.row("sync_func").verdict == "holds with a limit"


@pytest.mark.timing
def test_self_call_deadlocks_def_at_the_tokens_and_not_async(lab: Lab) -> None:
    claims = new_claims()
    self_call(lab, claims)
    figures = claims.figures["self_call"]
    sync_below, sync_at = figures["sync"]
    # Half the tokens: a token each for the route and the call it waits on.
    assert (sync_below["at_once"], sync_below["ok"]) == (20, 20)
    # Every token held by a /kkblogs: each is cut by the deadline, and says why.
    assert (sync_at["at_once"], sync_at["exhausted"], sync_at["ok"]) == (40, 40, 0)
    assert sync_at["slowest_s"] < 5 * figures["deadline_s"]
    # The async route holds no token: twice the tokens answer too.
    assert [(b["at_once"], b["ok"]) for b in figures["async"]] == [(20, 20), (40, 40), (80, 80)]
    assert [row.key for row in claims.rows] == ["kkblogs", "kkblogs_def"]
    assert claims.row("kkblogs_def").measured is not None


@pytest.mark.timing
def test_background_def_jobs_hold_the_tokens_and_blocking_ones_the_loop(lab: Lab) -> None:
    claims = new_claims()
    background(lab, claims)
    runs = {(run["job"], run["jobs"]): run for run in claims.figures["background"]["runs"]}
    assert set(runs) == {("def", 40), ("async", 40), ("blocking", 1), ("async", 1)}
    # A fan-out waits for what a job holds: a token, or the loop; an awaiting job holds
    # neither. Ordered against the same run's control, not against a clock.
    assert runs["def", 40]["extra_ms"] > runs["async", 40]["extra_ms"] + 200
    assert runs["blocking", 1]["extra_ms"] > runs["async", 1]["extra_ms"] + 200
    assert [row.key for row in claims.rows] == ["background_def", "background_blocking"]


def test_websocket_streams_the_sources_in_the_order_they_answer(lab: Lab) -> None:
    claims = new_claims()
    websocket(lab, claims, {name: ms / 1000 for name, ms in DELAYS_MS.items()})
    figures = claims.figures["websocket"]
    assert figures["in_order"] is True
    assert figures["at_once_answered"] == AT_ONCE
    # The first source arrives before the whole answer: the stream is not one late lump.
    assert figures["first_ms"] < figures["whole_ms"]
    assert claims.row("websocket").measured is not None


def test_without_a_probe_no_cost_is_made_up_and_no_verdict_given(stack: InProcessStack) -> None:
    # A per-call fan-out builds three clients, each loading the CA bundle: beside the other
    # test processes one took longer than the preset's 0.5 s window, which then held no
    # answer. This window holds several.
    lab = Lab(stack, replace(PRESET, window_s=2.0), on_step=lambda _: None)
    claims = new_claims()
    client_per_call(lab, claims, max(DELAYS_MS.values()) / 1000)
    fast_return(lab, claims)
    points = claims.figures["per_call"]["points"]
    assert set(points) == {"shared", "per-call"}
    assert all(point["throughput"] > 0 for by_c in points.values() for point in by_c.values())
    assert all(point["cpu_ms"] is None for by_c in points.values() for point in by_c.values())
    assert claims.figures["per_call"]["construction_cpu_ms"] > 0
    for key in ("per_call_cpu", "per_call_connections", "fast_def"):
        row = claims.row(key)
        assert row.measured is None and row.verdict == "not measured", row


def test_cpu_work_runs_every_placement_beside_a_fan_out(lab: Lab) -> None:
    claims = new_claims()
    cpu_work(lab, claims, max(DELAYS_MS.values()) / 1000)
    cpu = claims.figures["cpu"]
    assert set(cpu["runs"]) == set(PLACEMENTS)
    for placement, run in cpu["runs"].items():
        assert run["jobs_per_s"] > 0 and run["fan_out_ms"] > 0, placement
        # No probe: the cores used come from the jobs' own calibrated cost.
        assert run["cores"] is None
        expected = round(run["jobs_per_s"] * cpu["job_ms"] / 1000, 2)
        assert cpu["cores_used"][placement] == expected
    keys = [row.key for row in claims.rows]
    assert keys == ["cpu_inline", "cpu_def", "cpu_thread", "cpu_process"]


def test_sync_clients_restarts_with_httpx_and_puts_requests_back(
    lab: Lab, stack: InProcessStack
) -> None:
    claims = new_claims()
    sync_clients(lab, claims)
    clients = [env["SYNC_HTTP_CLIENT"] for _, env in stack.restarts]
    assert [gateway for gateway, _ in stack.restarts] == ["sync", "sync"]
    assert clients == ["httpx", "requests"]
    assert stack.health("sync").http_client == "requests"
    assert len(claims.figures["sync_clients"]) == 4
    assert claims.row("sync_httpx").verdict == "not measured"
