"""Each step of bench claims on real gateways in process, with a short preset: the rows and
figures it writes, its restarts undone, and no CPU or connection figure where nothing priced
the load (no probe here). The verdicts on the real stack: tests/integration/test_claims.py
(make test-slow)."""

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import pytest

from bench.experiments.claims.background import background
from bench.experiments.claims.cpu import cpu_work
from bench.experiments.claims.database import database
from bench.experiments.claims.fan_out import (
    client_per_call,
    fan_out_lessons,
    fast_return,
    sleeps,
    sync_clients,
)
from bench.experiments.claims.http2 import http2
from bench.experiments.claims.lab import Lab
from bench.experiments.claims.model import PLACEMENTS, Claims, ClaimsPreset
from bench.experiments.claims.selfcall import self_call
from bench.experiments.claims.tls import tls
from bench.experiments.claims.websocket import AT_ONCE, websocket
from bench.harness.database import DatabaseProbe
from bench.harness.probe import StackProbe
from bench.harness.stack import GatewayName, ProbedStack, calibrate, healthz
from gateway import async_app, sync_app
from gateway.models import GatewayHealth
from serving.certs import CA_FILE, leaf_file, make_certificates
from tests.unit.loopback import DELAYS_MS, LiveServer, Upstreams, running_upstreams
from tests.unit.postgres import ARCHIVE_PASSWORD, Postgres

GATEWAYS: tuple[GatewayName, ...] = ("sync", "async")

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
    db_window_s=3,
)
# The archive's query: short, so that its bursts and its pool's run stay short.
ARCHIVE_DELAY_MS = 100


class InProcessStack(ProbedStack):
    """Both gateways on loopback; a restart builds the gateway again from the variables the
    claims set (only the sync client's matters in process), and is recorded."""

    def __init__(self, upstreams: Upstreams, exits: ExitStack, postgres: Postgres) -> None:
        super().__init__()
        self.upstreams, self.plain, self.exits = upstreams, upstreams, exits
        self.postgres = postgres
        self.restarts: list[tuple[GatewayName, dict[str, str]]] = []
        self.stack_restarts: list[dict[str, str]] = []
        # What UPSTREAM_TLS=true started: closed when the stack is restarted again.
        self.tls = exits.enter_context(ExitStack())
        self.ca_file: Path | None = None
        # The async gateway's client and HTTP/2, as the last restart set them.
        self.async_env: dict[str, str] = {}
        self.servers = {
            "sync": self.start("sync", "requests"),
            "async": self.start("async", "requests"),
        }

    def start(self, gateway: GatewayName, sync_client: str) -> LiveServer:
        settings = self.upstreams.settings(
            sync_http_client=sync_client,
            ca_file=self.ca_file,
            async_http_client=self.async_env.get("ASYNC_HTTP_CLIENT", "httpx-aiohttp"),
            http2=self.async_env.get("ASYNC_HTTP2") == "true",
            archive_url=self.postgres.archive_url,
            archive_password=ARCHIVE_PASSWORD,
            archive_delay_ms=ARCHIVE_DELAY_MS,
            archive_driver=self.async_env.get("ASYNC_ARCHIVE_DRIVER", "asyncpg"),
        )
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

    def database(self) -> DatabaseProbe | None:
        return None

    def restart(self, gateway: GatewayName, env: dict[str, str]) -> None:
        self.restarts.append((gateway, env))
        if gateway == "async":
            self.async_env = env
        self.servers[gateway].__exit__()
        self.servers[gateway] = self.start(gateway, env.get("SYNC_HTTP_CLIENT", "requests"))

    def restart_stack(self, env: dict[str, str]) -> None:
        """UPSTREAM_TLS=true: the same upstreams over HTTPS from a private CA, and both
        gateways trusting it; false: back to the plain ones."""
        self.stack_restarts.append(env)
        self.async_env = env
        # The gateways first: their pooled connections would hold the upstreams' shutdown.
        for server in self.servers.values():
            server.__exit__()
        self.tls.close()
        self.upstreams, self.ca_file = self.plain, None
        if env.get("UPSTREAM_TLS") == "true":
            certs = Path(self.tls.enter_context(tempfile.TemporaryDirectory()))
            make_certificates(certs, ["upstream"])
            served = running_upstreams(DELAYS_MS, tls_cert=str(leaf_file(certs, "upstream")))
            self.upstreams, self.ca_file = self.tls.enter_context(served), certs / CA_FILE
        self.servers = {gateway: self.start(gateway, "requests") for gateway in GATEWAYS}


@pytest.fixture(scope="module")
def stack(upstreams: Upstreams, postgres: Postgres) -> Iterator[InProcessStack]:
    with ExitStack() as exits:
        yield InProcessStack(upstreams, exits, postgres)


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
    sync_below, sync_above = figures["sync"]
    # Half the tokens: a token each for the route and the call it waits on.
    assert (sync_below["at_once"], sync_below["ok"]) == (20, 20)
    # Twice the tokens: once every token is held by a /kkblogs, the deadline cuts each, and
    # it says why; nothing fails otherwise, and nothing hangs.
    assert sync_above["at_once"] == 80 and sync_above["exhausted"] >= 40
    assert sync_above["exhausted"] + sync_above["ok"] == 80
    assert sync_above["slowest_s"] < 5 * figures["deadline_s"]
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


def test_database_claims_measure_the_pool_and_put_the_driver_back(
    lab: Lab, stack: InProcessStack
) -> None:
    claims = new_claims()
    database(lab, claims)
    keys = ["db_def", "db_wrong", "db_pool_wait", "db_pooling", "db_async_driver"]
    assert [row.key for row in claims.rows] == keys
    figures = claims.figures["database"]
    assert (figures["tokens"], figures["pool"]) == (40, 10)
    # Past the pool's 10 connections, def queries wait for one; on the loop, one at a time.
    assert figures["def"]["40"] > 2 * figures["def"]["5"]
    assert figures["loop"]["6"] > 3
    assert figures["pool_wait"]["answered"] > 0 and figures["pool_wait"]["measured_ms"] >= 0
    # No probe, no CPU: the drivers' row gives no verdict. The default driver is back.
    assert claims.row("db_async_driver").verdict == "not measured"
    assert claims.row("db_pooling").verdict == "not measured"
    assert figures["connecting"]["new"]["sessions"] is None
    drivers = [env["ASYNC_ARCHIVE_DRIVER"] for _, env in stack.restarts]
    assert [gateway for gateway, _ in stack.restarts] == ["async", "async"]
    assert drivers == ["psycopg", "asyncpg"]
    assert stack.health("async").archive_driver == "asyncpg"


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
    # Over TLS and back: the same loads, each source answering over HTTPS meanwhile.
    tls(lab, claims)
    assert [env["UPSTREAM_TLS"] for env in stack.stack_restarts] == ["true", "false"]
    assert stack.health("async").upstream_tls is False
    over_tls = claims.figures["tls"]["points"]
    assert all(
        point["throughput"] > 0 and point["failed_share"] == 0 for point in over_tls.values()
    )
    for key in ("per_call_cpu", "per_call_connections", "fast_def", "tls_per_call"):
        row = claims.row(key)
        assert row.measured is None and row.verdict == "not measured", row


def test_http2_runs_both_protocols_on_httpx_and_puts_the_stack_back(
    lab: Lab, stack: InProcessStack
) -> None:
    claims = new_claims()
    stack.stack_restarts.clear()
    http2(lab, claims)
    # Over TLS on httpx, HTTP/1.1 then HTTP/2 (the async gateway alone restarted between),
    # then the stack as it was: plain, on the client it ran.
    first, last = stack.stack_restarts
    assert (first["UPSTREAM_HTTP2"], first["ASYNC_HTTP_CLIENT"]) == ("true", "httpx")
    restarted = [(env["ASYNC_HTTP_CLIENT"], env["ASYNC_HTTP2"]) for _, env in stack.restarts]
    assert restarted == [("httpx", "true"), ("httpx-aiohttp", "false")]
    assert (last["UPSTREAM_TLS"], last["ASYNC_HTTP_CLIENT"]) == ("false", "httpx-aiohttp")
    health = stack.health("async")
    assert (health.http_client, health.http2, health.upstream_tls) == (
        "httpx-aiohttp",
        False,
        False,
    )
    points = claims.figures["http2"]["points"]
    assert all(point["throughput"] > 0 for point in points.values())
    # In process the upstreams are uvicorn's, HTTP/1.1 only, and nothing is priced.
    assert [row.verdict for row in claims.rows] == ["not measured", "not measured"]


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
