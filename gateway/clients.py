"""Every HTTP client the gateways use, built in one place, and the one call each makes.

The async gateway's client is a setting (``GATEWAY_HTTP_CLIENT``), and its routes speak
httpx's API whichever one runs underneath:

- ``httpx``: ``httpx.AsyncClient`` on its own httpcore pool. httpcore 1.x re-scans every
  pooled connection for each request it queues (encode/httpcore#1035), so its CPU per
  fan-out grows with concurrency: the lab's cautionary tale.
- ``httpx-aiohttp``: ``httpx.AsyncClient`` over httpx-aiohttp's ``AiohttpTransport``, which
  hands each request to aiohttp's connector: same API, a pool whose cost stays flat.
- ``httpx2``: ``httpx2.AsyncClient``, the maintained fork with a rewritten pool.
- ``aiohttp``: one ``aiohttp.ClientSession`` behind the same ``stream()`` API
  (``AiohttpClient``), without httpx's request layer on top: the same connector as
  httpx-aiohttp, at about half the CPU per call (docs/benchmark.md, "Where a fan-out's
  CPU goes").
"""

import asyncio
import dataclasses
import functools
import http.client
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, TypeVar

import aiohttp
import aiohttp.http_exceptions
import h11
import httpx
import httpx2
import requests
import stamina
import urllib3
import yarl
from httpx_aiohttp import AiohttpTransport

from core.news import FaultKind
from gateway.balancing import (
    MIN_WAIT_S,
    BoundedResolution,
    Resolver,
    RoundRobinAdapter,
    SocketOption,
    dead_peer_options,
    peer_went_silent,
    reads_until,
)
from gateway.config import AsyncClientName, GatewaySettings, SyncClientName
from gateway.fanout import FanOut, SourceOutcome
from gateway.models import ErrorKind
from gateway.sources import Source

logger = logging.getLogger(__name__)
T = TypeVar("T")


class StreamedResponse(Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def aiter_raw(self) -> AsyncIterator[bytes]: ...


class AsyncHTTPClient(Protocol):
    """The part of httpx's ``AsyncClient`` API the routes use; httpx2's has the same."""

    # `url` is the client's own URL type (httpx.URL or httpx2.URL), parsed once per worker.
    def stream(
        self,
        method: str,
        url: Any,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AbstractAsyncContextManager[StreamedResponse]: ...

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


class TimeoutConfig(TypedDict):
    connect: float
    read: float
    write: float
    pool: float


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
    """The client ``settings.http_client`` names, with every timeout and limit explicit.

    trust_env is off everywhere: the gateway calls only its configured sources, and a
    proxy variable in its environment must never reroute them.
    """
    rules = CallRules.of(settings)
    timeout, limits, query = rules.timeout, _limits(settings), rules.query
    sources = settings.source_list
    if settings.http_client == "aiohttp":
        urls = {s.name: yarl.URL(s.news_url).with_query(query) for s in sources}
        return AsyncUpstreamClient("aiohttp", AiohttpClient(settings), (aiohttp.ClientError,), urls)
    if settings.http_client == "httpx2":
        client2 = httpx2.AsyncClient(
            timeout=httpx2.Timeout(**timeout), limits=httpx2.Limits(**limits), trust_env=False
        )
        urls2 = {s.name: httpx2.URL(s.news_url, params=query) for s in sources}
        return AsyncUpstreamClient("httpx2", client2, (httpx2.HTTPError,), urls2)
    # AiohttpTransport gives aiohttp's connector limit=max_connections (no per-host cap)
    # and keepalive_timeout=keepalive_expiry; aiohttp keeps every idle connection, so
    # max_keepalive_connections does not apply. httpx maps aiohttp's errors to its own.
    httpx_limits = httpx.Limits(**limits)
    transport = None
    if settings.http_client == "httpx-aiohttp":
        transport = AiohttpTransport(limits=httpx_limits)
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(**timeout), limits=httpx_limits, transport=transport, trust_env=False
    )
    httpx_urls = {s.name: httpx.URL(s.news_url, params=query) for s in sources}
    return AsyncUpstreamClient(settings.http_client, client, (httpx.HTTPError,), httpx_urls)


@asynccontextmanager
async def async_upstream_client(settings: GatewaySettings) -> AsyncIterator[AsyncUpstreamClient]:
    """The worker's client for its lifetime, closed on shutdown whatever happens."""
    client = build_async_client(settings)
    try:
        yield client
    finally:
        await client.http.aclose()


# The sync gateway's client: a requests.Session or an httpx.Client (GATEWAY_SYNC_HTTP_CLIENT).
BlockingClient = requests.Session | httpx.Client


def build_blocking_client(settings: GatewaySettings) -> BlockingClient:
    """The client ``settings.sync_http_client`` names, pooled for the whole worker."""
    name: SyncClientName = settings.sync_http_client
    return build_httpx_client(settings) if name == "httpx" else build_session(settings)


def build_httpx_client(settings: GatewaySettings) -> httpx.Client:
    """One pooled ``httpx.Client`` for the whole worker, as large as the requests pool.

    Its limits count connections across all sources: every thread of threads mode may hold
    one at once (tokens x sources). New connections to a source with several replicas go
    to whichever address the resolver gives first: the round robin is requests' only.
    """
    connections = settings.executor_threads
    limits = httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=settings.keepalive_expiry_s,
    )
    options = dead_peer_options(settings.dead_peer_timeout_s)
    transport = httpx.HTTPTransport(limits=limits, socket_options=options)
    # Each name resolved within the connect timeout (gateway/balancing.py). httpx gives no
    # way to pass httpcore a network backend; its pool is httpx 0.28's, pinned, and the
    # hostile-upstream tests would see a resolver that hangs if this stopped applying.
    transport._pool._network_backend = BoundedResolution(Resolver())
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
    return session


@dataclass(frozen=True, slots=True)
class Call:
    """One source call: the source, a fault to ask it for, and headers to pass on."""

    source: Source
    fault: FaultKind | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallRules:
    """What every source call of a worker keeps to, read from its settings once, at start:
    each wait, the body cap, how many articles it takes, its retries, and its query."""

    connect_timeout_s: float
    read_timeout_s: float
    pool_timeout_s: float
    max_body_bytes: int
    articles_per_source: int
    connect_retries: int
    query: Mapping[str, str]  # what every call sends, but a fault

    @classmethod
    def of(cls, settings: GatewaySettings) -> "CallRules":
        same = {f.name for f in dataclasses.fields(cls)} - {"query"}
        query = {"limit": str(settings.articles_per_source)}
        return cls(**settings.model_dump(include=same), query=query)

    @property
    def timeout(self) -> "TimeoutConfig":
        """httpx's and httpx2's Timeout take the same keywords."""
        return {
            "connect": self.connect_timeout_s,
            "read": self.read_timeout_s,
            "write": self.connect_timeout_s,
            # Waiting for a free pooled connection counts too, so a full pool cannot hang us.
            "pool": self.pool_timeout_s,
        }

    def query_for(self, call: Call) -> Mapping[str, str]:
        """The whole query string this call sends."""
        return self.query if call.fault is None else {**self.query, "fault": call.fault}

    def retry_policy(self, budget_s: float) -> "RetryPolicy":
        """Retry a failed connect `connect_retries` times, with short waits, within the
        budget: what remains of the fan-out's deadline."""
        return {
            "attempts": 1 + self.connect_retries,
            "timeout": max(budget_s, 0.001),
            "wait_initial": 0.05,
            "wait_max": 0.2,
            "wait_jitter": 0.05,
        }


class DeadlinePassed(Exception):
    """The fan-out's deadline passed while a blocking call was still reading."""


# aiohttp's timeouts subclass the builtin TimeoutError; requests wraps urllib3's.
TIMEOUTS = (
    httpx.TimeoutException,
    httpx2.TimeoutException,
    requests.Timeout,
    urllib3.exceptions.TimeoutError,
    TimeoutError,
)
# The call never reached the source: safe to repeat, even were it not a GET.
CONNECT_FAILURES = (httpx.ConnectError, httpx2.ConnectError, aiohttp.ClientConnectorError)


def _cause(exc: BaseException) -> BaseException:
    """The error that tells what happened.

    httpx-aiohttp maps every aiohttp connection error to httpx.ConnectTimeout, a refused
    connection included, so the aiohttp error it wraps is the one that tells. requests
    wraps urllib3's in its first argument.
    """
    if isinstance(exc.__cause__, aiohttp.ClientError):
        return exc.__cause__
    if isinstance(exc, requests.ConnectionError) and exc.args:
        reason = getattr(exc.args[0], "reason", None)
        if isinstance(reason, BaseException):
            return reason
    return exc


def went_silent(exc: BaseException) -> bool:
    """An established connection's peer went silent (gateway/balancing.py), with
    aiohttp's connect errors counted as connecting too."""
    return peer_went_silent(exc, (aiohttp.ClientConnectorError, httpx2.ConnectError))


def connect_failed(exc: Exception) -> bool:
    """Whether a call failed before it reached the source (the retry predicate)."""
    cause = _cause(exc)
    if isinstance(cause, urllib3.exceptions.NewConnectionError):
        return True
    return isinstance(cause, CONNECT_FAILURES) and not isinstance(cause, TIMEOUTS)


# What a parser raises on bytes that are not HTTP: h11's (under httpx, httpx2 and httpcore),
# aiohttp's, and http.client's (under requests). Each of them also raises for a connection
# that closed mid-answer, which is not broken HTTP but a dropped connection: DROPPED_MIDWAY.
PARSER_ERRORS = (
    h11.RemoteProtocolError,
    aiohttp.http_exceptions.HttpProcessingError,
    http.client.HTTPException,
)
DROPPED_MIDWAY = (
    aiohttp.http_exceptions.ContentLengthError,
    aiohttp.http_exceptions.TransferEncodingError,
    http.client.RemoteDisconnected,
)
# h11 says so only in its message: the end of the stream came before the end of the body.
H11_DROPPED = "peer closed connection"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, then what it was raised from or during: clients wrap parser errors."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def broke_http(exc: BaseException) -> BaseException | None:
    """The parser error in `exc`'s chain when the source sent bytes that are not HTTP."""
    for link in _chain(exc):
        if isinstance(link, http.client.IncompleteRead):
            # http.client raises it for a chunk size it cannot parse, from that ValueError.
            return link if isinstance(link.__context__, ValueError) else None
        if isinstance(link, DROPPED_MIDWAY):
            return None
        if isinstance(link, h11.RemoteProtocolError) and str(link).startswith(H11_DROPPED):
            return None
        if isinstance(link, PARSER_ERRORS):
            return link
    return None


def describe_failure(exc: Exception) -> tuple[ErrorKind, str]:
    """(kind, "<what>: <the class that tells>") for a failed call: timeout, protocol or
    connect."""
    if went_silent(exc):
        # Python calls ETIMEDOUT a TimeoutError, but no wait of ours ran out: the kernel gave
        # up on the connection (gateway/balancing.py, dead_peer_options).
        return "connect", "connection lost: the source stopped acknowledging (ETIMEDOUT)"
    cause = _cause(exc)
    # urllib3's NewConnectionError subclasses its ConnectTimeoutError: refused is not late.
    refused = isinstance(cause, urllib3.exceptions.NewConnectionError)
    if isinstance(cause, TIMEOUTS) and not refused:
        return "timeout", f"timeout: {type(cause).__name__}"
    parser_error = broke_http(exc)
    if parser_error is not None:
        # The class, not the message: the message may quote the source's bytes.
        return "protocol", f"broken HTTP: {type(parser_error).__name__}"
    return "connect", f"connection error: {type(cause).__name__}"


class RetryPolicy(TypedDict):
    attempts: int
    timeout: float
    wait_initial: float
    wait_max: float
    wait_jitter: float


# Every call asks for the body as it is: the gateway decompresses nothing, so a compressed
# bomb cannot expand inside it. A source that compresses anyway sent what was not asked for.
IDENTITY = {"Accept-Encoding": "identity"}
READ_CHUNK = 64 * 1024


class Refused(Exception):
    """A source's answer broke one of the gateway's rules: a failure of this kind."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


def check_headers(headers: Mapping[str, str], max_bytes: int) -> None:
    """Refuse, before a byte of the body is read, what the headers already give away."""
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise Refused("invalid_body", f"Content-Encoding {encoding}, when identity was asked")
    length = headers.get("content-length", "").strip()
    if length.isdigit() and int(length) > max_bytes:
        raise Refused("too_large", f"Content-Length {length}, past the {max_bytes}-byte cap")


class CappedBody:
    """A body gathered chunk by chunk, refused as soon as it passes the cap."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.size, self.chunks = max_bytes, 0, list[bytes]()

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise Refused("too_large", f"more than the {self.max_bytes}-byte cap")
        self.chunks.append(chunk)

    def content(self) -> bytes:
        return b"".join(self.chunks)


async def read_capped(
    http: AsyncHTTPClient,
    url: Any,
    params: Mapping[str, str] | None,
    headers: Mapping[str, str],
    max_bytes: int,
) -> tuple[int, bytes]:
    """GET as the gateway does: the body read only while it stays within the cap (leaving
    the block closes the connection of a body cut short). Returns (status, body)."""
    async with http.stream("GET", url, params=params, headers=headers) as response:
        check_headers(response.headers, max_bytes)
        body = CappedBody(max_bytes)
        async for chunk in response.aiter_raw():
            body.add(chunk)
        return response.status_code, body.content()


async def again_if_gone(attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt`, made once more when its connection's peer went silent (the blocking
    calls' `again_if_gone_blocking`). aiohttp resends an idempotent request once on its own,
    on the next pooled connection, which may lead to the same dead node; the kernel drops
    those about 2 s after the node last answered (keepalive), and this one goes to a live
    replica. The fan-out's deadline bounds both (AsyncCaller.fetch)."""
    try:
        return await attempt()
    except Exception as exc:
        if not went_silent(exc):
            raise
    return await attempt()


@dataclass(frozen=True, slots=True)
class AsyncCaller:
    """A worker's source calls on its event loop: its pooled client, and the rules every
    call keeps. Built once, in the lifespan; a fetch takes only the call and its fan-out."""

    client: AsyncUpstreamClient
    rules: CallRules

    async def fetch(self, call: Call, fan_out: FanOut) -> SourceOutcome:
        """One awaited call, cut off at the fan-out's deadline; never raises."""
        client, rules = self.client, self.rules
        started, source = time.perf_counter(), call.source
        remaining = fan_out.remaining()
        if remaining <= 0:
            return fan_out.timed_out(source, started)
        url = client.news_urls[source.name]
        # httpx replaces a URL's whole query when given params, so a call with a fault sends
        # the full query; the others keep the URL parsed once, query and all.
        params = rules.query_for(call) if call.fault else None
        headers, max_bytes = {**call.headers, **IDENTITY}, rules.max_body_bytes
        read = functools.partial(read_capped, client.http, url, params, headers, max_bytes)
        try:
            async with asyncio.timeout(remaining):
                if rules.connect_retries:
                    policy = rules.retry_policy(remaining)
                    get = stamina.AsyncRetryingCaller(**policy).on(connect_failed)
                    status, body = await get(again_if_gone, read)
                else:
                    # No retries: no retry machinery either (it was 4% of a fan-out's CPU).
                    status, body = await again_if_gone(read)
        except TimeoutError:
            if fan_out.remaining() <= 0:
                return fan_out.timed_out(source, started)
            return fan_out.failed(source, started, *describe_failure(TimeoutError()))
        except Refused as exc:
            return fan_out.failed(source, started, exc.kind, exc.message)
        except client.request_errors as exc:
            return fan_out.failed(source, started, *describe_failure(exc))
        except Exception as exc:
            # An upstream is untrusted: whatever the transport underneath raises (aiohttp's
            # parser, for one, on broken HTTP) is this source's failure, never a 500.
            # Anything but broken HTTP is logged, since it may also be a bug of ours.
            if broke_http(exc) is None:
                logger.warning("source %s: unexpected %r", source.name, exc, exc_info=exc)
            return fan_out.failed(source, started, *describe_failure(exc))
        return fan_out.answered(source, started, status, body, rules.articles_per_source)

    async def fetch_with_own_client(self, call: Call, fan_out: FanOut) -> SourceOutcome:
        """The blog post's ``fetch_data``: a new ``httpx.AsyncClient`` for this one call.

        Each one builds its own TLS context and connection pool, opens a connection, and
        closes it all when the call ends, so no connection is ever reused. Only the timeouts
        and trust_env differ from the post's, so that it keeps the gateway's deadline and
        never takes a proxy from the environment.
        """
        url = str(self.client.news_urls[call.source.name])
        timeout = httpx.Timeout(**self.rules.timeout)
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as http:
            own = AsyncUpstreamClient("httpx", http, (httpx.HTTPError,), {call.source.name: url})
            return await AsyncCaller(own, self.rules).fetch(call, fan_out)


@dataclass(frozen=True, slots=True)
class BlockingCaller:
    """A worker's blocking source calls: its pooled session (or httpx.Client), and the
    rules every call keeps. Built once, in the lifespan; shared by the worker's threads."""

    session: BlockingClient
    rules: CallRules

    def fetch(self, call: Call, fan_out: FanOut) -> SourceOutcome:
        """One blocking call within the fan-out's deadline; never raises.

        A blocking read cannot be cancelled, so the deadline bounds it twice: every socket
        wait is at most what remains, and the body is read in chunks with the deadline
        checked between them. A body that drips can overrun it by one chunk's wait, no more.
        """
        started, source, rules = time.perf_counter(), call.source, self.rules
        get = functools.partial(self._get_within, call, fan_out)
        try:
            if rules.connect_retries:
                retrying = stamina.RetryingCaller(**rules.retry_policy(fan_out.remaining()))
                status, body = retrying.on(connect_failed)(again_if_gone_blocking, get, fan_out)
            else:
                status, body = again_if_gone_blocking(get, fan_out)
        except DeadlinePassed:
            return fan_out.timed_out(source, started)
        except Refused as exc:
            return fan_out.failed(source, started, exc.kind, exc.message)
        except Exception as exc:
            # requests' and httpx's errors, and urllib3's from the raw reads: whatever it
            # is, this source's failure, never a 500.
            if isinstance(exc, TIMEOUTS) and fan_out.remaining() <= 0:
                return fan_out.timed_out(source, started)
            known = (requests.RequestException, httpx.HTTPError, urllib3.exceptions.HTTPError)
            if not isinstance(exc, known):
                logger.warning("source %s: unexpected %r", source.name, exc, exc_info=exc)
            return fan_out.failed(source, started, *describe_failure(exc))
        return fan_out.answered(source, started, status, body, rules.articles_per_source)

    def _get_within(self, call: Call, fan_out: FanOut) -> tuple[int, bytes]:
        remaining = fan_out.remaining()
        if remaining <= 0:
            raise DeadlinePassed
        session, rules = self.session, self.rules
        if isinstance(session, httpx.Client):
            return self._httpx_get_within(session, call, fan_out, remaining)
        timeout = (min(rules.connect_timeout_s, remaining), min(rules.read_timeout_s, remaining))
        with session.get(
            call.source.news_url,
            params=rules.query_for(call),
            headers={**call.headers, **IDENTITY},
            timeout=timeout,
            stream=True,
            # A redirect is the source's answer, a status failure; it is never followed.
            allow_redirects=False,
        ) as r:
            # read1: whatever each read brings. iter_content's read(64 KiB) waits to fill
            # it, so a body with a Content-Length that drips ran past the deadline between
            # checks. And each read waits at most what remains: the socket's timeout was set
            # once, at connect, so a slow drip overran the deadline by one read's wait (0.8 s
            # measured).
            sock = response_socket(r.raw)

            def read_within_deadline() -> bytes:
                if sock is not None and sock.fileno() != -1:  # -1: the body ended, and closed it
                    sock.settimeout(max(fan_out.remaining(), MIN_WAIT_S))
                chunk: bytes = r.raw.read1(READ_CHUNK, decode_content=False)
                return chunk

            reads = iter(read_within_deadline, b"")
            return r.status_code, _read_within(r.headers, reads, fan_out, rules.max_body_bytes)

    def _httpx_get_within(
        self, client: httpx.Client, call: Call, fan_out: FanOut, remaining: float
    ) -> tuple[int, bytes]:
        """`_get_within` for an httpx.Client: each socket wait at most what remains."""
        rules = self.rules
        timeout = httpx.Timeout(
            connect=min(rules.connect_timeout_s, remaining),
            read=min(rules.read_timeout_s, remaining),
            write=min(rules.connect_timeout_s, remaining),
            pool=min(rules.pool_timeout_s, remaining),
        )
        url, headers = call.source.news_url, {**call.headers, **IDENTITY}
        # httpcore sets a read's timeout once per body: reads_until makes each read wait at
        # most what remains (BoundedResolution's streams read it).
        deadline = time.monotonic() + remaining
        with (
            reads_until(deadline),
            client.stream(
                "GET", url, params=rules.query_for(call), headers=headers, timeout=timeout
            ) as r,
        ):
            # Whatever each read brings: with a chunk_size, httpx would wait to fill it, and
            # a dripping body would then run past the deadline between two checks.
            return r.status_code, _read_within(
                r.headers, r.iter_raw(), fan_out, rules.max_body_bytes
            )


def again_if_gone_blocking(attempt: Callable[[], T], fan_out: FanOut) -> T:
    """`attempt`, made once more when its connection's peer went silent and time remains:
    what aiohttp does for an idempotent request on a pooled connection that failed
    (RFC 9112, section 9.3.1). The pool drops the dead connection, and the next one goes
    to a live replica: a node that died costs the calls it had in flight, not the calls
    that picked its connections after."""
    try:
        return attempt()
    except Exception as exc:
        if not went_silent(exc) or fan_out.remaining() <= 0:
            raise
    return attempt()


def response_socket(raw: Any) -> socket.socket | None:
    """The socket a streamed urllib3 answer reads from. http.client lets go of the
    connection's own reference when the answer says `Connection: close`, so it is read from
    the answer's file then: without it, each read of a dripping body waited the socket's
    whole timeout, past the deadline."""
    sock = getattr(raw.connection, "sock", None)
    if sock is None:  # http.client's HTTPResponse.fp: a buffered SocketIO over the socket
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _read_within(
    headers: Mapping[str, str], reads: Iterable[bytes], fan_out: FanOut, max_bytes: int
) -> bytes:
    """A blocking body: refused past the cap, and cut at the deadline after every read."""
    check_headers(headers, max_bytes)
    body = CappedBody(max_bytes)
    for chunk in reads:
        body.add(chunk)
        if fan_out.remaining() <= 0:
            raise DeadlinePassed
    return body.content()
