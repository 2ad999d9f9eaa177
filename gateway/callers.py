"""The one call each gateway makes to a source, within the fan-out's deadline: the body read
only while it stays within the cap, every failure a verdict, never an exception."""

import asyncio
import functools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
import requests
import stamina
import urllib3

from gateway.archive import not_queried_here
from gateway.archive_async import AsyncArchive
from gateway.archive_sync import BlockingArchive
from gateway.bodies import IDENTITY, DeadlinePassed, Refused, read_capped
from gateway.calls import BlockingHTTPClient, Call, CallRules
from gateway.clients import AsyncUpstreamClient
from gateway.failures import TIMEOUTS, broke_http, connect_failed, describe_failure, went_silent
from gateway.fanout import FanOut, SourceOutcome

logger = logging.getLogger(__name__)
T = TypeVar("T")


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
    # The archive's pool, when there is an archive: its calls are queries.
    archive: AsyncArchive | None = None

    async def fetch(self, call: Call, fan_out: FanOut) -> SourceOutcome:
        """One awaited call, cut off at the fan-out's deadline; never raises."""
        if call.source.kind == "archive":
            if self.archive is None:
                return not_queried_here(fan_out, call.source)
            return await self.archive.fetch(call, fan_out)
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
        never takes a proxy from the environment. Over TLS to the lab's upstreams, its
        context also trusts their private CA: the post's cost (the CA bundle), plus what
        lets it verify them.
        """
        if call.source.kind == "archive":
            return await self.fetch(call, fan_out)  # a query: no HTTP client to make
        url = str(self.client.news_urls[call.source.name])
        timeout = httpx.Timeout(**self.rules.timeout)
        verify: ssl.SSLContext | bool = True
        if self.rules.ca_file is not None:
            # What verify=True builds (the CA bundle), and the private CA besides.
            verify = httpx.create_ssl_context(trust_env=False)
            verify.load_verify_locations(cafile=self.rules.ca_file)
        async with httpx.AsyncClient(timeout=timeout, verify=verify, trust_env=False) as http:
            own = AsyncUpstreamClient("httpx", http, (httpx.HTTPError,), {call.source.name: url})
            return await AsyncCaller(own, self.rules).fetch(call, fan_out)


@dataclass(frozen=True, slots=True)
class BlockingCaller:
    """A worker's blocking source calls: its pooled client (gateway/blocking_clients.py),
    and the rules every call keeps. Built once, in the lifespan; shared by the worker's
    threads."""

    client: BlockingHTTPClient
    rules: CallRules
    # The archive's pool, when there is an archive: its calls are blocking queries.
    archive: BlockingArchive | None = None

    def fetch(self, call: Call, fan_out: FanOut) -> SourceOutcome:
        """One blocking call within the fan-out's deadline; never raises.

        A blocking read cannot be cancelled, so the deadline bounds it twice: every socket
        wait is at most what remains, and the body is read in chunks with the deadline
        checked between them. A body that drips can overrun it by one chunk's wait, no more.
        """
        if call.source.kind == "archive":
            if self.archive is None:
                return not_queried_here(fan_out, call.source)
            return self.archive.fetch(call, fan_out)
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
        return self.client.get_within(call, self.rules, fan_out, remaining)


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
