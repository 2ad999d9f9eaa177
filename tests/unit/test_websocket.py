"""The async gateway's /ws/news over a real handshake (uvicorn on loopback, aiohttp's
client): each source's result as it arrives, then the whole answer; bad input refused
with the 422 that GET /news gives."""

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient

from gateway import async_app, sync_app
from tests.unit.loopback import DELAYS_MS, FAULT_DEADLINE_MS, LiveServer, Upstreams

CLIENT_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def async_url(upstreams: Upstreams) -> Iterator[str]:
    with LiveServer(async_app.create_app(upstreams.settings())) as server:
        yield server.url


async def _stream(url: str) -> list[dict[str, Any]]:
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.ws_connect(url) as websocket:
            return [message.json() async for message in websocket]


def stream(url: str) -> list[dict[str, Any]]:
    """Every message until the server closes the socket."""
    return asyncio.run(_stream(url))


def test_each_source_arrives_as_it_answers_then_the_whole_answer(async_url: str) -> None:
    *arrived, whole = stream(f"{async_url.replace('http', 'ws')}/ws/news")
    # The sources in the order of their delays: fastest first, not the order asked.
    assert [m["result"]["name"] for m in arrived] == sorted(DELAYS_MS, key=DELAYS_MS.__getitem__)
    assert all(m["event"] == "source" and m["result"]["ok"] for m in arrived)
    assert (whole["gateway"], whole["mode"]) == ("async", "websocket")
    assert len(whole["articles"]) == sum(len(m["articles"]) for m in arrived) == 15


def test_a_hung_source_arrives_last_as_failed_at_the_deadline(async_url: str) -> None:
    base = async_url.replace("http", "ws")
    *arrived, whole = stream(f"{base}/ws/news?fault=wire:hang&deadline_ms={FAULT_DEADLINE_MS}")
    # wire is the fastest source; hung, it is the last to arrive, as a timeout.
    assert [m["result"]["name"] for m in arrived] == ["gazette", "chronicle", "wire"]
    assert arrived[-1]["result"]["error_kind"] == "timeout"
    assert whole["partial"] is True


@pytest.mark.parametrize(
    ("query", "field"),
    [("sources=nope", "sources"), ("deadline_ms=0", "deadline_ms"), ("fault=wire:x", "fault")],
)
def test_bad_input_is_refused_with_a_422_naming_the_field(
    async_url: str, query: str, field: str
) -> None:
    async def refused() -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session:
            # The refusal is an HTTP answer to the handshake: read it as one.
            async with session.get(
                f"{async_url}/ws/news?{query}",
                headers={
                    "Connection": "Upgrade",
                    "Upgrade": "websocket",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                },
            ) as response:
                return response.status, await response.json()

    status, body = asyncio.run(refused())
    assert status == 422
    assert body["detail"][0]["loc"] == ["query", field]


def test_the_sync_gateway_has_no_websocket(upstreams: Upstreams) -> None:
    # FastAPI awaits a WebSocket route: a def one would fail at the first connection.
    with LiveServer(sync_app.create_app(upstreams.settings())) as server:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            stream(f"{server.url.replace('http', 'ws')}/ws/news")


def test_fastapi_fails_a_def_websocket_route_at_its_first_connection() -> None:
    """Why the post says WebSockets need async def, and the sync gateway has none."""
    app = FastAPI()

    @app.websocket("/ws")
    def blocking(websocket: WebSocket) -> None:
        pass

    with TestClient(app) as client, pytest.raises(TypeError, match="await"):
        with client.websocket_connect("/ws"):
            pass
