"""httpx.Client's network under the sync gateway, through httpcore's public API: a backend
that resolves each name within the connect timeout and reads within the calling thread's
deadline, and the httpx transport over a connection pool that uses it.

httpx 0.28's ``HTTPTransport`` gives no way to pass its pool a network backend, so
``BoundedTransport`` hands httpx's requests to an ``httpcore.ConnectionPool`` built with
one (``network_backend=``), as ``HTTPTransport`` does with its own: the same request, the
same response stream, and httpcore's errors raised as httpx's of the same name.
"""

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

from gateway.balancing import MIN_WAIT_S, Resolver, connect_in_turn, time_left

# The deadline (time.monotonic()) of the call this thread is making, if any: httpcore sets
# a read's timeout once per body, so a body that drips could wait one read past it.
CALL_DEADLINE = threading.local()


@contextlib.contextmanager
def reads_until(deadline: float) -> Iterator[None]:
    """Every read this thread makes through BoundedResolution's streams waits at most until
    `deadline`, inside the block."""
    CALL_DEADLINE.at = deadline
    try:
        yield
    finally:
        CALL_DEADLINE.at = None


class DeadlineStream(httpcore.NetworkStream):
    """A connection's stream whose reads also end at the calling thread's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self.stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        deadline = getattr(CALL_DEADLINE, "at", None)
        if deadline is not None:
            left = max(deadline - time.monotonic(), MIN_WAIT_S)
            timeout = left if timeout is None else min(timeout, left)
        return self.stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.stream.write(buffer, timeout)

    def close(self) -> None:
        self.stream.close()

    def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return DeadlineStream(self.stream.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> Any:
        return self.stream.get_extra_info(info)


class BoundedResolution(httpcore.SyncBackend):
    """httpcore's blocking network backend (under httpx.Client), resolving each name within
    the connect timeout (httpcore's own hands the name to socket.create_connection, which
    resolves it for as long as the system's resolver takes), and reading within the calling
    thread's deadline (`reads_until`)."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        since = time.monotonic()
        try:
            addresses = self.resolver.addresses(host, port, timeout)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc

        def connect(address: str, share_s: float | None) -> httpcore.NetworkStream:
            return super(BoundedResolution, self).connect_tcp(
                address, port, share_s, local_address, socket_options
            )

        errors = (httpcore.ConnectError, httpcore.ConnectTimeout)
        left_s = time_left(timeout, since)
        return DeadlineStream(connect_in_turn(addresses, left_s, connect, errors))


# httpcore's errors and httpx's of the same name: what httpx.HTTPTransport maps, most
# specific first within each family.
HTTPX_ERROR_OF: dict[type[Exception], type[httpx.TransportError]] = {
    getattr(httpcore, name): getattr(httpx, name)
    for name in (
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "TimeoutException",
        "ConnectError",
        "ReadError",
        "WriteError",
        "NetworkError",
        "ProxyError",
        "UnsupportedProtocol",
        "LocalProtocolError",
        "RemoteProtocolError",
        "ProtocolError",
    )
}


@contextlib.contextmanager
def as_httpx_errors() -> Iterator[None]:
    """httpcore's errors inside the block raised as httpx's, the nearest class first."""
    try:
        yield
    except Exception as exc:
        for kind in type(exc).__mro__:
            if kind in HTTPX_ERROR_OF:
                raise HTTPX_ERROR_OF[kind](str(exc)) from exc
        raise


class BoundedStream(httpx.SyncByteStream):
    """A response body from the pool, its errors raised as httpx's."""

    def __init__(self, stream: Iterable[bytes]) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with as_httpx_errors():
            yield from self.stream

    def close(self) -> None:
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()


class BoundedTransport(httpx.BaseTransport):
    """httpx's transport over an ``httpcore.ConnectionPool`` on BoundedResolution."""

    def __init__(self, resolver: Resolver, **pool: Any) -> None:
        self.pool = httpcore.ConnectionPool(network_backend=BoundedResolution(resolver), **pool)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with as_httpx_errors():
            response = self.pool.handle_request(core_request)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=BoundedStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self.pool.close()
