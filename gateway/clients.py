"""Every HTTP client the gateways use, built in one place from the settings.

The async gateway's client is a setting (``GATEWAY_ASYNC_HTTP_CLIENT``), and its routes speak
httpx's API whichever one runs underneath:

- ``httpx``: ``httpx.AsyncClient`` on its own httpcore pool. httpcore 1.x re-scans every
  pooled connection for each request it queues (encode/httpcore#1035), so its CPU per
  fan-out grows with concurrency: the lab's cautionary tale.
- ``httpx-aiohttp``: ``httpx.AsyncClient`` over httpx-aiohttp's ``AiohttpTransport``, which
  hands each request to aiohttp's connector: same API, a pool whose cost stays flat.
- ``httpx2``: ``httpx2.AsyncClient``, the maintained fork with a rewritten pool.
- ``aiohttp``: one ``aiohttp.ClientSession`` behind the same ``stream()`` API
  (gateway/aiohttp_client.py), without httpx's request layer on top: the same connector as
  httpx-aiohttp, at about half the CPU per call (docs/benchmark.md, "Where a fan-out's
  CPU goes").

The sync gateway's is ``GATEWAY_SYNC_HTTP_CLIENT``: a ``requests.Session`` or an
``httpx.Client``. gateway/callers.py makes the calls with them.
"""

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypedDict

import aiohttp
import httpx
import httpx2
import requests
import yarl
from httpx_aiohttp import AiohttpTransport

from gateway.aiohttp_client import AiohttpClient
from gateway.balancing import Resolver, RoundRobinAdapter, dead_peer_options
from gateway.blocking_clients import HttpxClient, RequestsClient
from gateway.calls import AsyncHTTPClient, BlockingHTTPClient, CallRules
from gateway.config import AsyncClientName, GatewaySettings, SyncClientName
from gateway.httpcore_backend import BoundedTransport


@dataclass(frozen=True, slots=True)
class AsyncUpstreamClient:
    """One worker's pooled client, and which of its exceptions mean what."""

    name: AsyncClientName
    http: AsyncHTTPClient
    # What a failed call raises: httpx.HTTPError, or httpx2's own.
    request_errors: tuple[type[Exception], ...]
    # Each source's full news URL, query included. Parsing it and merging ?limit= on every
    # call was a tenth of the gateway's CPU per fan-out.
    news_urls: Mapping[str, Any]


class LimitsConfig(TypedDict):
    max_connections: int
    max_keepalive_connections: int
    keepalive_expiry: float


def _limits(settings: GatewaySettings) -> LimitsConfig:
    """httpx's and httpx2's Limits take the same keywords.

    max_connections caps sockets across all sources for this worker: a fan-out of N at
    concurrency C wants N x C of them, and each fan-out holds its connections for
    sum(delays) in all, so one worker serves at most max_connections / sum(d) req/s.
    """
    return {
        "max_connections": settings.max_connections,
        "max_keepalive_connections": settings.max_keepalive_connections,
        "keepalive_expiry": settings.keepalive_expiry_s,
    }


def build_async_client(settings: GatewaySettings) -> AsyncUpstreamClient:
    """The client ``settings.async_http_client`` names, with every timeout and limit explicit.

    trust_env is off everywhere: the gateway calls only its configured sources, and a
    proxy variable in its environment must never reroute them.
    """
    rules = CallRules.of(settings)
    timeout, limits, query = rules.timeout, _limits(settings), rules.query
    verify = settings.tls_context or True
    sources = settings.source_list
    if settings.async_http_client == "aiohttp":
        urls = {s.name: yarl.URL(s.news_url).with_query(query) for s in sources}
        return AsyncUpstreamClient("aiohttp", AiohttpClient(settings), (aiohttp.ClientError,), urls)
    if settings.async_http_client == "httpx2":
        client2 = httpx2.AsyncClient(
            timeout=httpx2.Timeout(**timeout),
            limits=httpx2.Limits(**limits),
            verify=verify,
            http2=settings.http2,
            trust_env=False,
        )
        urls2 = {s.name: httpx2.URL(s.news_url, params=query) for s in sources}
        return AsyncUpstreamClient("httpx2", client2, (httpx2.HTTPError,), urls2)
    # AiohttpTransport gives aiohttp's connector limit=max_connections (no per-host cap)
    # and keepalive_timeout=keepalive_expiry; aiohttp keeps every idle connection, so
    # max_keepalive_connections does not apply. httpx maps aiohttp's errors to its own.
    httpx_limits = httpx.Limits(**limits)
    transport = None
    if settings.async_http_client == "httpx-aiohttp":
        transport = AiohttpTransport(limits=httpx_limits, verify=verify)
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(**timeout),
        limits=httpx_limits,
        transport=transport,
        verify=verify,
        # Refused with httpx-aiohttp (gateway/config.py): its transport has no HTTP/2.
        http2=settings.http2,
        trust_env=False,
    )
    httpx_urls = {s.name: httpx.URL(s.news_url, params=query) for s in sources}
    return AsyncUpstreamClient(settings.async_http_client, client, (httpx.HTTPError,), httpx_urls)


@asynccontextmanager
async def async_upstream_client(settings: GatewaySettings) -> AsyncIterator[AsyncUpstreamClient]:
    """The worker's client for its lifetime, closed on shutdown whatever happens."""
    client = build_async_client(settings)
    try:
        yield client
    finally:
        await client.http.aclose()


def build_blocking_client(settings: GatewaySettings) -> BlockingHTTPClient:
    """The client ``settings.sync_http_client`` names, pooled for the whole worker."""
    name: SyncClientName = settings.sync_http_client
    if name == "httpx":
        return HttpxClient(build_httpx_client(settings))
    return RequestsClient(build_session(settings))


def build_httpx_client(settings: GatewaySettings) -> httpx.Client:
    """One pooled ``httpx.Client`` for the whole worker, as large as the requests pool.

    Its limits count connections across all sources: every thread of threads mode may hold
    one at once (tokens x sources). New connections to a source with several replicas go
    to whichever address the resolver gives first: the round robin is requests' only.
    """
    connections = settings.executor_threads
    # Each name resolved within the connect timeout, each read within the call's deadline
    # (gateway/httpcore_backend.py): the hostile-upstream tests hold both.
    transport = BoundedTransport(
        Resolver(),
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=settings.keepalive_expiry_s,
        socket_options=dead_peer_options(settings.dead_peer_timeout_s),
        ssl_context=settings.tls_context,
    )
    return httpx.Client(
        timeout=httpx.Timeout(**CallRules.of(settings).timeout),
        transport=transport,
        trust_env=False,
    )


def build_session(settings: GatewaySettings) -> requests.Session:
    """One pooled ``requests`` session for the whole worker."""
    session = requests.Session()
    session.trust_env = False
    # Up to `threadpool_tokens` requests run at once, and each holds at most one
    # connection per source, so the pool keeps tokens connections per source host:
    # tokens x fan-out in all. requests' default (pool_maxsize=10) would make every
    # thread past the tenth open and drop a fresh connection per call.
    # Each new connection to a source takes the next of its replicas' addresses.
    adapter = RoundRobinAdapter(
        pool_connections=len(settings.sources),
        pool_maxsize=settings.requests_pool_maxsize,
        resolver=Resolver(),
        socket_options=dead_peer_options(settings.dead_peer_timeout_s),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if settings.ca_file is not None:
        session.verify = str(settings.ca_file)
    return session
