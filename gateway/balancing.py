"""The sync gateway's connections, spread over every address a source's name resolves to.

Under Swarm's ``dnsrr`` endpoint mode (docs/scale-out.md) a source's name resolves to the
address of each of its replicas, and nothing balances but the client. urllib3 connects to
the first address that answers, and Docker's DNS answered in one order, so the sync
gateway's connections piled onto whichever replica came first (30/30/0 calls over three
replicas, measured). aiohttp's connector, under the async gateway, hands a name's cached
addresses out in turn, one per new connection. This gives urllib3 the same behaviour: a pool
whose every new connection goes to the next address, the name kept for the Host header.
"""

import contextlib
import functools
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

import httpcore
import urllib3
import urllib3.connection
import urllib3.exceptions
from requests.adapters import HTTPAdapter

# How long a name's addresses are reused before it is resolved again: replicas that come
# or go are seen on the connections opened after that (aiohttp's default is 10 s too).
ADDRESS_TTL_S = 10.0
# A socket timeout of 0 would make it non-blocking: the last wait before a deadline is this.
MIN_WAIT_S = 0.001


class Resolver:
    """Name resolution with a bound: `getaddrinfo` blocks for as long as the system's
    resolver takes (seconds per attempt, and a connect timeout does not count it), so it runs
    on a thread of its own and the caller waits at most its timeout.

    A resolution past its bound goes on in the background, which cannot cancel it; the
    threads are few, so a resolver that hangs holds a few of them, never the callers.
    """

    def __init__(self, threads: int = 4) -> None:
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="resolve")

    def addresses(self, host: str, port: int, timeout_s: float | None) -> tuple[str, ...]:
        """Every address of `host`, in the resolver's order, without duplicates. Raises
        TimeoutError past `timeout_s`, OSError when the name does not resolve."""
        infos = self.pool.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        return tuple(dict.fromkeys(str(info[4][0]) for info in infos.result(timeout_s)))


def seconds(timeout: object) -> float | None:
    """urllib3's connect timeout as seconds: a number, or None for its sentinel or none."""
    return float(timeout) if isinstance(timeout, int | float) else None


@dataclass
class AddressRotation:
    """One host's addresses, resolved at most every `ttl_s`, handed out in turn."""

    host: str
    port: int
    resolver: Resolver
    ttl_s: float = ADDRESS_TTL_S
    _addresses: tuple[str, ...] = ()
    _expires: float = 0.0
    _turns: "itertools.count[int]" = field(default_factory=itertools.count)

    def next(self, timeout_s: float | None) -> str:
        """The address for the next connection, resolving within `timeout_s` when the
        addresses have expired (TimeoutError past it, OSError if the name does not resolve)."""
        now = time.monotonic()
        if now >= self._expires or not self._addresses:
            self._addresses = self.resolver.addresses(self.host, self.port, timeout_s)
            self._expires = now + self.ttl_s
        return self._addresses[next(self._turns) % len(self._addresses)]


class RotatingConnection(urllib3.connection.HTTPConnection):
    """Connects to the address its pool's rotation gives, not to the name's first one."""

    rotation: AddressRotation | None = None

    def _new_conn(self) -> socket.socket:
        if self.rotation is None:
            return super()._new_conn()
        name, timeout_s = self._dns_host, seconds(self.timeout)
        try:
            address = self.rotation.next(timeout_s)
        except TimeoutError as exc:
            message = f"resolving {name} took longer than {timeout_s} s"
            raise urllib3.exceptions.ConnectTimeoutError(self, message) from exc
        except socket.gaierror as exc:
            raise urllib3.exceptions.NameResolutionError(name, self, exc) from exc
        # urllib3 connects to `_dns_host` and nothing else reads it while it connects;
        # the Host header is written after, from the name put back here.
        self._dns_host = address
        try:
            return super()._new_conn()
        finally:
            self._dns_host = name


class RoundRobinPool(urllib3.HTTPConnectionPool):
    """urllib3's pool for one host, whose each new connection takes the next address."""

    ConnectionCls = RotatingConnection

    def __init__(
        self, host: str, port: int | None = None, *, resolver: Resolver, **kwargs: Any
    ) -> None:
        super().__init__(host, port, **kwargs)
        self.rotation = AddressRotation(self.host, self.port or 80, resolver)

    def _new_conn(self) -> RotatingConnection:
        conn = cast(RotatingConnection, super()._new_conn())  # our ConnectionCls
        conn.rotation = self.rotation
        return conn


class RoundRobinAdapter(HTTPAdapter):
    """requests' adapter, with a round-robin pool for every plain-HTTP host, each resolving
    its name within the connect timeout."""

    def __init__(self, *args: Any, resolver: Resolver, **kwargs: Any) -> None:
        self.resolver = resolver  # init_poolmanager, which super() calls, reads it
        super().__init__(*args, **kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        classes = self.poolmanager.pool_classes_by_scheme
        pool = functools.partial(RoundRobinPool, resolver=self.resolver)
        self.poolmanager.pool_classes_by_scheme = {**classes, "http": pool}


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
        try:
            address = self.resolver.addresses(host, port, timeout)[0]
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        stream = super().connect_tcp(address, port, timeout, local_address, socket_options)
        return DeadlineStream(stream)
