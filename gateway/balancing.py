"""The sync gateway's connections, spread over every address a source's name resolves to.

Under Swarm's ``dnsrr`` endpoint mode (docs/scale-out.md) a source's name resolves to the
address of each of its replicas, and nothing balances but the client. urllib3 connects to
the first address that answers, and Docker's DNS answered in one order, so the sync
gateway's connections piled onto whichever replica came first (30/30/0 calls over three
replicas, measured). aiohttp's connector, under the async gateway, hands a name's cached
addresses out in turn, one per new connection. This gives urllib3 the same behaviour: a pool
whose every new connection goes to the next address, the name kept for the Host header.

A listed address may not answer: a replica that just stopped, one whose route has not
reached this node yet, or one on a node that died. A new connection then falls back to the
name's other addresses (`connect_in_turn`), as aiohttp's does. And every socket a gateway
opens to a source finds out when its peer has gone silent (`dead_peer_options`), which
ages the sync worker's other pooled connections (`PeerWatch`).
"""

import functools
import itertools
import math
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import urllib3
import urllib3.connection
import urllib3.exceptions
import urllib3.util.connection
from requests.adapters import HTTPAdapter

from gateway.failures import peer_went_silent

# How long a name's addresses are reused before it is resolved again: replicas that come
# or go are seen on the connections opened after that (aiohttp's default is 10 s too).
ADDRESS_TTL_S = 10.0
# A socket timeout of 0 would make it non-blocking: the last wait before a deadline is this.
MIN_WAIT_S = 0.001

# How long a new connection waits on one of a source's addresses before it tries the next:
# a live peer's kernel answers a SYN within a millisecond here (RFC 8305 waits 250 ms
# between attempts on the open internet). The last address gets all the time that is left.
FALLBACK_AFTER_S = 0.1

T = TypeVar("T")
SocketOption = tuple[int, int, int]


def dead_peer_options(timeout_s: float) -> list[SocketOption]:
    """Socket options under which a connection to a peer that has gone silent fails within
    `timeout_s` of sending to it, or about 2 s after it last heard from it when idle,
    instead of hanging.

    A source's kernel acknowledges our bytes within a millisecond on any network this lab
    runs on, even when the source itself is slow or hung. When its host dies or its link is
    cut, nothing answers and nothing says so: TCP would retransmit for about 15 minutes,
    and a call on a pooled connection to it waits out the whole fan-out's deadline.
    - TCP_USER_TIMEOUT: a connection whose sent bytes stay unacknowledged this long is
      aborted (the call fails with ETIMEDOUT).
    - Keepalive, probing after a second idle (its least), once: a pooled connection to a
      dead peer is found a second later, and the pool drops it before a call picks it. A
      live peer's kernel answers the probe, so a slow or hung source is never mistaken for
      a dead one.
    TCP_NODELAY is urllib3's and aiohttp's default, kept.
    """
    idle_s = max(1, math.ceil(timeout_s))
    options = [
        (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    ]
    # Linux's names; elsewhere the connection still works, without the quick verdict.
    for name, value in (
        ("TCP_KEEPIDLE", idle_s),
        ("TCP_KEEPINTVL", idle_s),
        ("TCP_KEEPCNT", 1),
        ("TCP_USER_TIMEOUT", max(1, round(timeout_s * 1000))),
    ):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return options


def left_unanswered(sock: socket.socket | None) -> bool:
    """Whether the kernel has sent this connection's peer a keepalive probe or a resend
    that it has not acknowledged yet (struct tcp_info's tcpi_retransmits and tcpi_probes,
    its third and fourth bytes; Linux only). A live peer's kernel answers within a
    millisecond, so a call the deadline cut on such a connection was waiting on a peer
    that is gone, not on a slow source."""
    if sock is None or not hasattr(socket, "TCP_INFO"):
        return False
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except OSError:
        return False
    return info[2] > 0 or info[3] > 0


def time_left(timeout_s: float | None, since: float) -> float | None:
    """What is left of `timeout_s` counted from `since` (time.monotonic()). Resolving a name
    and connecting to it share one connect timeout, so that a new connection takes no
    longer than it (and the fan-out's deadline, which caps it) in all."""
    if timeout_s is None:
        return None
    return max(timeout_s - (time.monotonic() - since), MIN_WAIT_S)


def connect_in_turn(
    addresses: Sequence[str],
    timeout_s: float | None,
    connect: Callable[[str, float | None], T],
    errors: tuple[type[Exception], ...],
    failed: Callable[[str], None] = lambda address: None,
) -> T:
    """Connect to the first of `addresses` that answers, in their order. Each but the last
    may take its share of what is left of the timeout, and no more than FALLBACK_AFTER_S,
    so an address that never answers leaves time for the next; one that fails is reported
    to `failed`. Raises the last address's error."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    last = len(addresses) - 1
    for index, address in enumerate(addresses):
        share = None
        if deadline is not None:
            left = max(deadline - time.monotonic(), MIN_WAIT_S)
            share = left / (len(addresses) - index)
        if index < last:
            share = FALLBACK_AFTER_S if share is None else min(share, FALLBACK_AFTER_S)
        try:
            return connect(address, share)
        except errors:
            failed(address)
            if index == last:
                raise
    raise ValueError("no address to connect to")


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
class PeerWatch:
    """What a worker's sync connections know of peers gone silent, across every source.

    A silent peer most often means a node died, and its replicas of the other sources went
    with it: their pooled connections would each cost a call its dead-peer timeout. So each
    silence starts a new epoch, and every pooled connection from an earlier one is closed
    when drawn and connects again, in turn, to an address that answers.
    """

    epoch: int = 0

    def went_silent(self) -> None:
        self.epoch += 1


@dataclass
class AddressRotation:
    """One host's addresses, resolved at most every `ttl_s`, handed out in turn; an address
    that failed to connect goes last until the name is resolved again."""

    host: str
    port: int
    resolver: Resolver
    ttl_s: float = ADDRESS_TTL_S
    _addresses: tuple[str, ...] = ()
    _expires: float = 0.0
    _turns: "itertools.count[int]" = field(default_factory=itertools.count)
    _failed: set[str] = field(default_factory=set)
    # The sync gateway's threads share a rotation: one resolves, the others wait for it,
    # so a resolution cannot clear what another thread found failed after it.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, timeout_s: float | None) -> str:
        """The address for the next connection (see `in_turn`)."""
        return self.in_turn(timeout_s)[0]

    def in_turn(self, timeout_s: float | None) -> tuple[str, ...]:
        """Every address, the next connection's turn first and the others after it in their
        order, those that failed last; resolving within `timeout_s` when the addresses have
        expired (TimeoutError past it, OSError if the name does not resolve)."""
        with self._lock:
            now = time.monotonic()
            if now >= self._expires or not self._addresses:
                self._addresses = self.resolver.addresses(self.host, self.port, timeout_s)
                self._expires = now + self.ttl_s
                self._failed = set()
            addresses, failed = self._addresses, self._failed
        turn = next(self._turns) % len(addresses)
        order = addresses[turn:] + addresses[:turn]
        if not failed:
            return order
        return tuple(a for a in order if a not in failed) + tuple(a for a in order if a in failed)

    def failed(self, address: str) -> None:
        """`address` did not connect: later connections try it last, until the name is
        resolved again (a replica that is only starting is back within the TTL)."""
        with self._lock:
            self._failed = self._failed | {address}

    def has_failed(self, address: str) -> bool:
        return address in self._failed


class RotatingConnection(urllib3.connection.HTTPConnection):
    """Connects to the address its pool's rotation gives, not to the name's first one, and
    tells the rotation when that address went silent."""

    rotation: AddressRotation | None = None
    watch: PeerWatch | None = None
    peer: str | None = None  # the address it is connected to
    epoch = 0  # the watch's, when it connected

    def _new_conn(self) -> socket.socket:
        rotation = self.rotation
        if rotation is None:
            return super()._new_conn()
        name, timeout_s = self.host, seconds(self.timeout)
        since = time.monotonic()
        try:
            addresses = rotation.in_turn(timeout_s)
        except TimeoutError as exc:
            message = f"resolving {name} took longer than {timeout_s} s"
            raise urllib3.exceptions.ConnectTimeoutError(self, message) from exc
        except socket.gaierror as exc:
            raise urllib3.exceptions.NameResolutionError(name, self, exc) from exc

        def connect(address: str, share_s: float | None) -> socket.socket:
            return urllib3.util.connection.create_connection(
                (address, self.port),
                share_s,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )

        # The Host header is written after, from the name: only the socket gets an address.
        try:
            left_s = time_left(timeout_s, since)
            sock = connect_in_turn(addresses, left_s, connect, (OSError,), rotation.failed)
        except TimeoutError as exc:  # socket.timeout, or ETIMEDOUT under TCP_USER_TIMEOUT
            message = f"no address of {name} answered within {timeout_s} s: {exc}"
            raise urllib3.exceptions.ConnectTimeoutError(self, message) from exc
        except OSError as exc:
            message = f"Failed to establish a new connection: {exc}"
            raise urllib3.exceptions.NewConnectionError(self, message) from exc
        # Each address's share was for connecting; what follows gets the connection's own.
        sock.settimeout(self.timeout)
        self.peer = str(sock.getpeername()[0])
        self.epoch = self.watch.epoch if self.watch is not None else 0
        return sock

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().getresponse(*args, **kwargs)
        except OSError as exc:
            # The kernel gave up on the peer, or the deadline cut a wait on a peer that left
            # a probe unanswered (a call in flight when its node died): its other pooled
            # connections to that address are as dead (RoundRobinPool), and new ones try it
            # last.
            gone = peer_went_silent(exc) or left_unanswered(self.sock)
            if self.rotation is not None and self.peer is not None and gone:
                self.rotation.failed(self.peer)
                if self.watch is not None:
                    self.watch.went_silent()
            raise


class RoundRobinPool(urllib3.HTTPConnectionPool):
    """urllib3's pool for one host, whose each new connection takes the next address."""

    ConnectionCls = RotatingConnection

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        resolver: Resolver,
        watch: PeerWatch,
        **kwargs: Any,
    ) -> None:
        super().__init__(host, port, **kwargs)
        self.rotation = AddressRotation(self.host, self.port or 80, resolver)
        self.watch = watch

    def _new_conn(self) -> RotatingConnection:
        conn = cast(RotatingConnection, super()._new_conn())  # our ConnectionCls
        conn.rotation, conn.watch = self.rotation, self.watch
        return conn

    def _get_conn(self, timeout: float | None = None) -> Any:
        """A pooled connection, unless its address went silent on another one, or any peer
        did since it connected (PeerWatch): a node that died leaves every connection to it
        looking open until TCP gives up on each, and a call that picked one would wait to
        find out. Closed, it connects again, in turn."""
        conn = cast(RotatingConnection, super()._get_conn(timeout))
        if conn.sock is not None and conn.peer is not None:
            if self.rotation.has_failed(conn.peer) or conn.epoch < self.watch.epoch:
                conn.close()
        return conn


class RoundRobinAdapter(HTTPAdapter):
    """requests' adapter, with a round-robin pool for every plain-HTTP host, each resolving
    its name within the connect timeout."""

    def __init__(
        self,
        *args: Any,
        resolver: Resolver,
        socket_options: Sequence[SocketOption] = (),
        **kwargs: Any,
    ) -> None:
        # init_poolmanager, which super() calls, reads them.
        self.resolver, self.socket_options = resolver, list(socket_options)
        self.watch = PeerWatch()
        super().__init__(*args, **kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if self.socket_options:
            kwargs["socket_options"] = self.socket_options
        super().init_poolmanager(*args, **kwargs)
        classes = self.poolmanager.pool_classes_by_scheme
        pool = functools.partial(RoundRobinPool, resolver=self.resolver, watch=self.watch)
        self.poolmanager.pool_classes_by_scheme = {**classes, "http": pool}
