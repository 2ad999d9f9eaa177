"""Every HTTP client the gateways use, built in one place, and the one call each makes.

The async gateway's client is a setting (``GATEWAY_HTTP_CLIENT``), and its routes speak
httpx's API whichever one runs underneath:

- ``httpx``: ``httpx.AsyncClient`` on its own httpcore pool. httpcore 1.x re-scans every
  pooled connection for each request it queues (encode/httpcore#1035), so its CPU per
  fan-out grows with concurrency: the lab's cautionary tale.
- ``httpx-aiohttp``: ``httpx.AsyncClient`` over httpx-aiohttp's ``AiohttpTransport``, which
  hands each request to aiohttp's connector: same API, a pool whose cost stays flat.
- ``httpx2``: ``httpx2.AsyncClient``, the maintained fork with a rewritten pool.
"""

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import httpx
import httpx2
import requests
from httpx_aiohttp import AiohttpTransport
from requests.adapters import HTTPAdapter

from gateway.config import AsyncClientName, GatewaySettings
from gateway.fanout import FanOutClock, SourceOutcome
from gateway.sources import Source


class UpstreamResponse(Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def content(self) -> bytes: ...


class AsyncHTTPClient(Protocol):
    """The part of httpx's ``AsyncClient`` API the routes use; httpx2's has the same."""

    # `url` is the client's own URL type (httpx.URL or httpx2.URL), parsed once per worker.
    async def get(self, url: Any) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


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


def _httpx_config(settings: GatewaySettings) -> tuple[httpx.Timeout, httpx.Limits]:
    timeout = httpx.Timeout(
        connect=settings.connect_timeout_s,
        read=settings.read_timeout_s,
        write=settings.connect_timeout_s,
        # Waiting for a free pooled connection counts too, so a full pool cannot hang us.
        pool=settings.pool_timeout_s,
    )
    # max_connections caps sockets across all sources for this worker: a fan-out of N at
    # concurrency C wants N x C of them, and each fan-out holds its connections for
    # sum(delays) in all, so one worker serves at most max_connections / sum(d) req/s.
    limits = httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_keepalive_connections,
        keepalive_expiry=settings.keepalive_expiry_s,
    )
    return timeout, limits


def build_async_client(settings: GatewaySettings) -> AsyncUpstreamClient:
    """The client ``settings.http_client`` names, with every timeout and limit explicit.

    trust_env is off everywhere: the gateway calls only its configured sources, and a
    proxy variable in its environment must never reroute them.
    """
    timeout, limits = _httpx_config(settings)
    query = {"limit": settings.articles_per_source}
    if settings.http_client == "httpx2":
        client2 = httpx2.AsyncClient(
            timeout=httpx2.Timeout(
                connect=timeout.connect,
                read=timeout.read,
                write=timeout.write,
                pool=timeout.pool,
            ),
            limits=httpx2.Limits(
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
            ),
            trust_env=False,
        )
        urls2 = {s.name: httpx2.URL(s.news_url, params=query) for s in settings.source_list}
        return AsyncUpstreamClient("httpx2", client2, (httpx2.HTTPError,), urls2)
    # AiohttpTransport gives aiohttp's connector limit=max_connections (no per-host cap)
    # and keepalive_timeout=keepalive_expiry; aiohttp keeps every idle connection, so
    # max_keepalive_connections does not apply. httpx maps aiohttp's errors to its own.
    transport = AiohttpTransport(limits=limits) if settings.http_client == "httpx-aiohttp" else None
    client = httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport, trust_env=False)
    urls = {s.name: httpx.URL(s.news_url, params=query) for s in settings.source_list}
    return AsyncUpstreamClient(settings.http_client, client, (httpx.HTTPError,), urls)


@asynccontextmanager
async def async_upstream_client(settings: GatewaySettings) -> AsyncIterator[AsyncUpstreamClient]:
    """The worker's client for its lifetime, closed on shutdown whatever happens."""
    client = build_async_client(settings)
    try:
        yield client
    finally:
        await client.http.aclose()


def build_session(settings: GatewaySettings) -> requests.Session:
    """One pooled ``requests`` session for the whole worker."""
    session = requests.Session()
    session.trust_env = False
    # Up to `threadpool_tokens` requests run at once, and each holds at most one
    # connection per source, so the pool keeps tokens connections per source host:
    # tokens x fan-out in all. requests' default (pool_maxsize=10) would make every
    # thread past the tenth open and drop a fresh connection per call.
    adapter = HTTPAdapter(
        pool_connections=len(settings.sources), pool_maxsize=settings.requests_pool_maxsize
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


async def fetch_awaited(
    client: AsyncUpstreamClient, source: Source, clock: FanOutClock, settings: GatewaySettings
) -> SourceOutcome:
    """One awaited call to one source; never raises, a failure is part of the answer."""
    started = time.perf_counter()
    try:
        response = await client.http.get(client.news_urls[source.name])
    except client.request_errors as exc:
        return clock.failed(source, started, describe_failure(exc))
    return clock.answered(source, started, response.status_code, response.content)


# aiohttp's timeouts subclass the builtin TimeoutError.
TIMEOUTS = (httpx.TimeoutException, httpx2.TimeoutException, TimeoutError)


def describe_failure(exc: Exception) -> str:
    """ "timeout: <class>" or "connection error: <class>", from what really went wrong.

    httpx-aiohttp maps every aiohttp connection error to httpx.ConnectTimeout, a refused
    connection included, so the aiohttp error it wraps is the one that tells.
    """
    cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError) else exc
    kind = "timeout" if isinstance(cause, TIMEOUTS) else "connection error"
    return f"{kind}: {type(cause).__name__}"


def fetch_blocking(
    session: requests.Session, source: Source, clock: FanOutClock, settings: GatewaySettings
) -> SourceOutcome:
    """One blocking call to one source; never raises, a failure is part of the answer."""
    started = time.perf_counter()
    try:
        response = session.get(
            source.news_url,
            params={"limit": settings.articles_per_source},
            timeout=(settings.connect_timeout_s, settings.read_timeout_s),
        )
    except requests.Timeout as exc:
        return clock.failed(source, started, f"timeout: {type(exc).__name__}")
    except requests.RequestException as exc:
        return clock.failed(source, started, f"connection error: {type(exc).__name__}")
    return clock.answered(source, started, response.status_code, response.content)
