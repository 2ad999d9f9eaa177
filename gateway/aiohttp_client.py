"""httpx's ``stream()`` API over one ``aiohttp.ClientSession``: the async gateway's
``aiohttp`` client (GATEWAY_HTTP_CLIENT), without httpx's request layer on top."""

import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp
import yarl

from gateway.balancing import SocketOption, dead_peer_options
from gateway.calls import StreamedResponse
from gateway.config import GatewaySettings


class AiohttpResponse:
    """An aiohttp answer as the routes read it: httpx's names for the same three things."""

    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    @property
    def status_code(self) -> int:
        return self._response.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers  # case-insensitive, as httpx's are

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        # As it arrives, never decoded: the session has auto_decompress off.
        async for chunk in self._response.content.iter_any():
            yield chunk


def socket_factory(options: list[SocketOption]) -> aiohttp.SocketFactoryType:
    """aiohttp's hook for the sockets its connector opens: each with `options` set."""

    def new_socket(addr_info: aiohttp.AddrInfoType) -> socket.socket:
        family, kind, proto, _, _ = addr_info
        sock = socket.socket(family, kind, proto)
        for option in options:
            sock.setsockopt(*option)
        return sock

    return new_socket


class AiohttpClient:
    """httpx's ``stream()`` over one ``aiohttp.ClientSession``, and nothing else.

    httpx's own layer (building the request, merging headers, the cookie jar, auth and
    redirect hooks) was a third of the async gateway's CPU per fan-out over the very same
    aiohttp connector. This keeps what the gateway needs of httpx's semantics: ``params``
    replace the URL's query, redirects are never followed, nothing is decompressed, no
    cookie is kept, and the environment's proxies are ignored.
    """

    def __init__(self, settings: GatewaySettings) -> None:
        connector = aiohttp.TCPConnector(
            limit=settings.max_connections,
            keepalive_timeout=settings.keepalive_expiry_s,
            socket_factory=socket_factory(dead_peer_options(settings.dead_peer_timeout_s)),
            ssl=settings.tls_context or True,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            # What httpx-aiohttp maps httpx's timeouts to: connect is the wait for a pooled
            # connection or a new one, sock_connect the TCP connect, sock_read each read.
            timeout=aiohttp.ClientTimeout(
                connect=settings.pool_timeout_s,
                sock_connect=settings.connect_timeout_s,
                sock_read=settings.read_timeout_s,
            ),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: yarl.URL,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        # httpx replaces the whole query when given params; aiohttp would append to it.
        target = url if params is None else url.with_query(params)
        async with self.session.request(
            method, target, headers=headers, allow_redirects=False
        ) as response:
            yield AiohttpResponse(response)

    async def aclose(self) -> None:
        await self.session.close()
