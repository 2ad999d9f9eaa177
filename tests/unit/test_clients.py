"""What the gateways' clients do with a source that has gone silent (gateway/callers.py):
every socket they open finds a dead peer within a second, and a blocking call on a pooled
connection whose peer went silent is sent once more."""

import asyncio
import errno
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx
import pytest
import requests
import urllib3
import urllib3.exceptions
import yarl

from gateway.aiohttp_client import AiohttpClient, AiohttpResponse
from gateway.blocking_clients import RequestsClient
from gateway.callers import AsyncCaller, BlockingCaller
from gateway.calls import Call, CallRules
from gateway.clients import AsyncUpstreamClient, build_httpx_client, build_session
from gateway.config import GatewaySettings
from gateway.failures import describe_failure, peer_went_silent, went_silent
from gateway.fanout import FanOut
from gateway.sources import Source
from tests.unit.loopback import LiveServer
from upstream.config import UpstreamSettings
from upstream.main import create_app as create_upstream

# The options a socket to a source must carry, as getsockopt reads them back.
DEAD_PEER = {
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE): 1,
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE): 1,
    (socket.IPPROTO_TCP, socket.TCP_KEEPCNT): 1,
    (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT): 250,
    (socket.IPPROTO_TCP, socket.TCP_NODELAY): 1,
}


def options_of(sock: socket.socket) -> dict[tuple[int, int], int]:
    return {option: sock.getsockopt(*option) for option in DEAD_PEER}


@pytest.fixture(scope="module")
def source() -> Iterator[GatewaySettings]:
    settings = UpstreamSettings(name="wire", delay_ms=0)
    with LiveServer(create_upstream(settings)) as server:
        yield GatewaySettings(sources={"wire": server.url})


def test_the_sync_gateways_requests_sockets_find_a_dead_peer(source: GatewaySettings) -> None:
    (wire,) = source.source_list
    with build_session(source) as session, session.get(wire.news_url, stream=True) as response:
        connection = response.raw.connection
        assert connection is not None and connection.sock is not None
        assert options_of(connection.sock) == DEAD_PEER


def test_the_sync_gateways_httpx_sockets_find_a_dead_peer(source: GatewaySettings) -> None:
    (wire,) = source.source_list
    with build_httpx_client(source) as client, client.stream("GET", wire.news_url) as response:
        stream = response.extensions["network_stream"]
        assert options_of(stream.get_extra_info("socket")) == DEAD_PEER


def test_the_async_gateways_aiohttp_sockets_find_a_dead_peer(source: GatewaySettings) -> None:
    (wire,) = source.source_list

    async def options() -> dict[tuple[int, int], int]:
        client = AiohttpClient(source)
        try:
            # A body that drips: the connection is still the response's while it does.
            params = {"fault": "slow-body"}
            url = yarl.URL(wire.news_url)
            async with client.stream("GET", url, params=params) as response:
                assert isinstance(response, AiohttpResponse)
                connection = response._response.connection
                assert connection is not None and connection.transport is not None
                return options_of(connection.transport.get_extra_info("socket"))
        finally:
            await client.aclose()

    assert asyncio.run(options()) == DEAD_PEER


def silent_peer() -> requests.ConnectionError:
    """What requests raises when the kernel gives up on a connection mid-call."""
    gone = TimeoutError(errno.ETIMEDOUT, "Connection timed out")
    try:
        try:
            raise gone
        except TimeoutError as exc:
            raise urllib3.exceptions.ProtocolError("Connection aborted.", exc) from exc
    except urllib3.exceptions.ProtocolError as exc:
        return requests.ConnectionError(exc)


def test_a_silent_peer_is_told_from_a_timeout_of_ours() -> None:
    assert peer_went_silent(silent_peer())
    assert describe_failure(silent_peer())[0] == "connect"
    # A wait of ours that ran out: socket.timeout, no errno.
    pool = urllib3.HTTPConnectionPool("wire.test")
    ours = requests.ReadTimeout(urllib3.exceptions.ReadTimeoutError(pool, "/", "timed out"))
    assert not peer_went_silent(ours) and not peer_went_silent(TimeoutError("timed out"))
    assert describe_failure(ours)[0] == "timeout"


class ScriptedSession(requests.Session):
    """A session whose calls fail as `script` says, then answer with `body`."""

    def __init__(self, script: list[Exception], body: bytes) -> None:
        super().__init__()
        self.script, self.body, self.calls = script, body, 0

    def get(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.script:
            raise self.script.pop(0)
        response = requests.Response()
        response.status_code, response._content = 200, self.body
        response.raw = FakeRaw(self.body)
        return response


class FakeRaw:
    def __init__(self, body: bytes) -> None:
        self.chunks, self.connection = [body], None

    def read1(self, size: int, decode_content: bool) -> bytes:
        return self.chunks.pop() if self.chunks else b""

    def release_conn(self) -> None:
        pass

    def close(self) -> None:
        pass


BODY = b'{"source":"wire","instance":"a","delay_ms":0,"articles":[]}'
WIRE = Source("wire", "http://wire.test")
SETTINGS = GatewaySettings(sources={"wire": "http://wire.test"})
RULES = CallRules.of(SETTINGS)


def test_a_call_whose_peer_went_silent_is_sent_once_more() -> None:
    session = ScriptedSession([silent_peer()], BODY)
    outcome = BlockingCaller(RequestsClient(session), RULES).fetch(Call(WIRE), FanOut(2.5))
    assert outcome.result.ok and session.calls == 2


def test_it_is_sent_twice_at_most_and_then_named() -> None:
    session = ScriptedSession([silent_peer(), silent_peer(), silent_peer()], BODY)
    outcome = BlockingCaller(RequestsClient(session), RULES).fetch(Call(WIRE), FanOut(2.5))
    assert not outcome.result.ok and session.calls == 2
    assert outcome.result.error_kind == "connect"
    assert "stopped acknowledging" in str(outcome.result.error)


@pytest.mark.parametrize(
    "failure",
    [
        requests.ReadTimeout("read timed out"),
        requests.ConnectionError(ConnectionResetError(errno.ECONNRESET, "reset")),
    ],
    ids=["a read timeout", "a reset"],
)
def test_any_other_failure_is_one_call(failure: Exception) -> None:
    """A live source that is slow, or hangs up on us, is not asked again: the fault
    tests and the hostile upstreams count one call each."""
    session = ScriptedSession([failure], BODY)
    outcome = BlockingCaller(RequestsClient(session), RULES).fetch(Call(WIRE), FanOut(2.5))
    assert not outcome.result.ok and session.calls == 1


def test_httpx_wraps_a_silent_peer_so_that_it_is_still_told() -> None:
    gone = TimeoutError(errno.ETIMEDOUT, "Connection timed out")
    try:
        try:
            raise gone
        except TimeoutError as exc:
            raise httpx.ReadError("Connection timed out") from exc
    except httpx.ReadError as exc:
        assert peer_went_silent(exc)


class ScriptedStream:
    """An AsyncHTTPClient whose calls fail as `script` says, then answer with `body`."""

    def __init__(self, script: list[Exception], body: bytes) -> None:
        self.script, self.body, self.calls = script, body, 0

    @asynccontextmanager
    async def stream(self, method: str, url: Any, **kwargs: Any) -> AsyncIterator[Any]:
        self.calls += 1
        if self.script:
            raise self.script.pop(0)
        yield Answered(self.body)

    async def aclose(self) -> None:
        pass


class Answered:
    def __init__(self, body: bytes) -> None:
        self.status_code, self.body = 200, body
        self.headers: dict[str, str] = {}

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        yield self.body


def fetch_async(script: list[Exception]) -> tuple[Any, int]:
    http = ScriptedStream(script, BODY)
    client = AsyncUpstreamClient("aiohttp", http, (aiohttp.ClientError,), {"wire": "url"})
    outcome = asyncio.run(AsyncCaller(client, RULES).fetch(Call(WIRE), FanOut(2.5)))
    return outcome.result, http.calls


def test_an_awaited_call_whose_peer_went_silent_is_sent_once_more() -> None:
    # What aiohttp raises once the kernel gives up on the connection.
    result, calls = fetch_async([aiohttp.ClientOSError(errno.ETIMEDOUT, "Connection timed out")])
    assert result.ok and calls == 2
    result, calls = fetch_async([aiohttp.ClientOSError(errno.ETIMEDOUT, "timed out")] * 3)
    assert not result.ok and calls == 2 and result.error_kind == "connect"
    result, calls = fetch_async([aiohttp.ServerDisconnectedError()])
    assert not result.ok and calls == 1


def test_a_connect_that_timed_out_is_no_silent_peer() -> None:
    """A SYN unanswered (ETIMEDOUT while connecting) is a failed connect: one call, as
    GATEWAY_CONNECT_RETRIES=0 says, whatever the client."""
    gone = TimeoutError(errno.ETIMEDOUT, "Connection timed out")
    pool = urllib3.HTTPConnectionPool("wire.test")
    connect = urllib3.exceptions.ConnectTimeoutError(pool, "no address answered")
    connect.__cause__ = gone
    assert not went_silent(requests.ConnectTimeout(connect))
    session = ScriptedSession([requests.ConnectTimeout(connect)], BODY)
    outcome = BlockingCaller(RequestsClient(session), RULES).fetch(Call(WIRE), FanOut(2.5))
    assert not outcome.result.ok and session.calls == 1

    key: Any = None
    refused = aiohttp.ClientConnectorError(key, OSError(errno.ETIMEDOUT, "Connection timed out"))
    assert not went_silent(refused)
    result, calls = fetch_async([refused])
    assert not result.ok and calls == 1


def test_a_workers_call_rules_are_its_settings_read_once() -> None:
    settings = GatewaySettings(
        sources={"wire": "http://wire.test"},
        connect_timeout_s=0.5,
        read_timeout_s=4.0,
        pool_timeout_s=3.0,
        max_body_bytes=4096,
        articles_per_source=7,
        connect_retries=2,
    )
    rules = CallRules.of(settings)
    assert (rules.connect_timeout_s, rules.read_timeout_s, rules.pool_timeout_s) == (0.5, 4.0, 3.0)
    assert (rules.max_body_bytes, rules.articles_per_source, rules.connect_retries) == (4096, 7, 2)
    assert rules.timeout == {"connect": 0.5, "read": 4.0, "write": 0.5, "pool": 3.0}
    assert rules.retry_policy(1.5)["attempts"] == 3
    # Every call sends the same query, built once; a fault adds to it.
    assert rules.query_for(Call(WIRE)) is rules.query == {"limit": "7"}
    assert rules.query_for(Call(WIRE, fault="hang")) == {"limit": "7", "fault": "hang"}
