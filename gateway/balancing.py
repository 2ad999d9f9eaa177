"""The sync gateway's connections, spread over every address a source's name resolves to.

Under Swarm's ``dnsrr`` endpoint mode (docs/scale-out.md) a source's name resolves to the
address of each of its replicas, and nothing balances but the client. urllib3 connects to
the first address that answers, and Docker's DNS answered in one order, so the sync
gateway's connections piled onto whichever replica came first (30/30/0 calls over three
replicas, measured). aiohttp's connector, under the async gateway, hands a name's cached
addresses out in turn, one per new connection. This gives urllib3 the same behaviour: a pool
whose every new connection goes to the next address, the name kept for the Host header.
"""

import itertools
import socket
import time
from dataclasses import dataclass, field
from typing import Any, cast

import urllib3
import urllib3.connection
from requests.adapters import HTTPAdapter

# How long a name's addresses are reused before it is resolved again: replicas that come
# or go are seen on the connections opened after that (aiohttp's default is 10 s too).
ADDRESS_TTL_S = 10.0


@dataclass
class AddressRotation:
    """One host's addresses, resolved at most every `ttl_s`, handed out in turn."""

    host: str
    port: int
    ttl_s: float = ADDRESS_TTL_S
    _addresses: tuple[str, ...] = ()
    _expires: float = 0.0
    _turns: "itertools.count[int]" = field(default_factory=itertools.count)

    def next(self) -> str:
        """The address for the next connection; the name itself if it does not resolve
        (urllib3 then reports the failure as it would have)."""
        now = time.monotonic()
        if now >= self._expires or not self._addresses:
            try:
                infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            except OSError:
                return self.host
            # Stable, without duplicates: one entry per address, whatever its families.
            self._addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
            self._expires = now + self.ttl_s
        return self._addresses[next(self._turns) % len(self._addresses)]


class RotatingConnection(urllib3.connection.HTTPConnection):
    """Connects to the address its pool's rotation gives, not to the name's first one."""

    rotation: AddressRotation | None = None

    def _new_conn(self) -> socket.socket:
        if self.rotation is None:
            return super()._new_conn()
        name = self._dns_host
        # urllib3 connects to `_dns_host` and nothing else reads it while it connects;
        # the Host header is written after, from the name put back here.
        self._dns_host = self.rotation.next()
        try:
            return super()._new_conn()
        finally:
            self._dns_host = name


class RoundRobinPool(urllib3.HTTPConnectionPool):
    """urllib3's pool for one host, whose each new connection takes the next address."""

    ConnectionCls = RotatingConnection

    def __init__(self, host: str, port: int | None = None, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self.rotation = AddressRotation(self.host, self.port or 80)

    def _new_conn(self) -> RotatingConnection:
        conn = cast(RotatingConnection, super()._new_conn())  # our ConnectionCls
        conn.rotation = self.rotation
        return conn


class RoundRobinAdapter(HTTPAdapter):
    """requests' adapter, with a round-robin pool for every plain-HTTP host."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        classes = self.poolmanager.pool_classes_by_scheme
        self.poolmanager.pool_classes_by_scheme = {**classes, "http": RoundRobinPool}
