"""Upstreams are untrusted: a source that breaks HTTP, drips, redirects or floods costs its
own failure, within the deadline, never a 500, never the worker's memory."""

import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient

from bench.harness.topology import ROOT
from gateway import async_app, sync_app
from gateway.config import AsyncClientName, GatewaySettings
from tests.hostile import CASES, EXPECTED_KIND, HostileServer, expected_kind
from tests.unit.loopback import FAULT_DEADLINE_MS, Upstreams

# Every gateway and client that reads an upstream's answer.
GATEWAYS: dict[str, tuple[Callable[[GatewaySettings], Any], dict[str, str]]] = {
    "sync": (sync_app.create_app, {}),
    "sync-httpx": (sync_app.create_app, {"sync_http_client": "httpx"}),
    **{
        f"async-{client}": (async_app.create_app, {"async_http_client": client})
        for client in get_args(AsyncClientName)
    },
}
# As for the injected faults: the deadline cut it, not the drip, which runs for 100 s.
CUT_BY_DEADLINE_MS = FAULT_DEADLINE_MS + 1000
# A worker that took the 64 MiB body or the 64 MiB bomb whole would allocate that much.
MAX_GROWTH_MIB = 16


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


@pytest.fixture(params=list(GATEWAYS), scope="module")
def gateway_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def gateway(
    gateway_name: str, hostile: HostileServer, upstreams: Upstreams
) -> Iterator[TestClient]:
    create_app, extra = GATEWAYS[gateway_name]
    sources = {"wire": upstreams.urls["wire"]} | {
        case: f"{hostile.url}/{case}" for case in EXPECTED_KIND
    }
    settings = upstreams.settings(sources=sources, deadline_ms=FAULT_DEADLINE_MS, **extra)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def allocations() -> Iterator[Callable[[], float]]:
    """The most memory Python held at once since the test began, above where it began,
    in MiB: every thread's allocations, the gateway's and its client's."""
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    yield lambda: (tracemalloc.get_traced_memory()[1] - before) / 2**20
    tracemalloc.stop()


@pytest.mark.timing
@pytest.mark.parametrize("case", list(EXPECTED_KIND))
def test_a_hostile_source_is_its_own_failure_within_the_deadline(
    gateway: TestClient,
    gateway_name: str,
    hostile: HostileServer,
    allocations: Callable[[], float],
    case: str,
) -> None:
    started = time.perf_counter()
    response = gateway.get("/news", params={"sources": f"wire,{case}"})
    took_ms = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.text
    body = response.json()
    wire, bad = body["sources"]
    assert wire["ok"] and body["partial"] is True
    assert not bad["ok"] and bad["error_kind"] == expected_kind(case, gateway_name), bad
    assert took_ms < CUT_BY_DEADLINE_MS
    assert allocations() < MAX_GROWTH_MIB
    assert hostile.hits["redirected"] == 0  # no redirect was ever followed


def test_a_redirect_names_its_status(gateway: TestClient) -> None:
    bad = gateway.get("/news", params={"sources": "redirect"}).json()["sources"][0]
    assert bad["status"] == 302 and bad["error"] == "upstream answered HTTP 302"


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("big-body", "Content-Length 67108935, past the 1048576-byte cap"),
        ("big-chunked", "more than the 1048576-byte cap"),
        ("many-articles", "400 articles, when 5 were asked for"),
        ("gzip-bomb", "Content-Encoding gzip, when identity was asked"),
    ],
)
def test_each_cap_says_which_it_is(gateway: TestClient, case: str, error: str) -> None:
    bad = gateway.get("/news", params={"sources": case}).json()["sources"][0]
    assert bad["error"] == error


def test_broken_http_names_what_broke_and_quotes_nothing(gateway: TestClient) -> None:
    bad = gateway.get("/news", params={"sources": "bad-status"}).json()["sources"][0]
    # The parser's class, never its message: that would echo the source's bytes.
    assert bad["error"].startswith("broken HTTP: ") and "abc" not in bad["error"]


# A resolver that answers 5x past the deadline, for one name only.
SLOW_NAME = "slow-dns.test"
SLOW_DNS_S = 5 * FAULT_DEADLINE_MS / 1000


@pytest.fixture
def slow_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The resolver hangs for SLOW_NAME until the test sets the event (or SLOW_DNS_S), so
    that no resolver thread outlives the test's own measurement by long."""
    real, release = socket.getaddrinfo, threading.Event()

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (SLOW_NAME, SLOW_NAME.encode()):  # anyio passes it IDNA-encoded
            release.wait(SLOW_DNS_S)
            raise socket.gaierror(socket.EAI_NONAME, "slow, then unknown")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield release
    release.set()


@pytest.mark.timing
@pytest.mark.parametrize("gateway_name", list(GATEWAYS))
def test_a_resolver_that_hangs_costs_the_deadline(
    gateway_name: str, upstreams: Upstreams, slow_dns: threading.Event
) -> None:
    create_app, extra = GATEWAYS[gateway_name]
    sources = {"wire": upstreams.urls["wire"], "slow": f"http://{SLOW_NAME}:80"}
    settings = upstreams.settings(sources=sources, deadline_ms=FAULT_DEADLINE_MS, **extra)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        started = time.perf_counter()
        response = client.get("/news")
        took_ms = (time.perf_counter() - started) * 1000
        slow_dns.set()  # the app's shutdown waits for its resolver threads
    wire, slow = response.json()["sources"]
    assert wire["ok"] and not slow["ok"] and slow["error_kind"] == "timeout", slow
    assert took_ms < CUT_BY_DEADLINE_MS


def test_the_tests_page_counts_every_hostile_case() -> None:
    text = " ".join((ROOT / "docs" / "tests.md").read_text().split())
    assert f"breaks HTTP in {len(CASES)} ways" in text
