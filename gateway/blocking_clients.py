"""The sync gateway's two clients (GATEWAY_SYNC_HTTP_CLIENT) behind one call, as the async
gateway's are behind httpx's ``stream()``: a GET whose every socket wait ends by the
fan-out's deadline, since a blocking read cannot be cancelled."""

import socket
import time
from dataclasses import dataclass
from typing import Any

import httpx
import requests

from gateway.balancing import MIN_WAIT_S
from gateway.bodies import IDENTITY, READ_CHUNK, read_within
from gateway.calls import Call, CallRules
from gateway.fanout import FanOut
from gateway.httpcore_backend import reads_until


@dataclass(frozen=True, slots=True)
class RequestsClient:
    """A pooled ``requests.Session`` (gateway/clients.py builds it)."""

    session: requests.Session

    def get_within(
        self, call: Call, rules: CallRules, fan_out: FanOut, remaining: float
    ) -> tuple[int, bytes]:
        timeout = (min(rules.connect_timeout_s, remaining), min(rules.read_timeout_s, remaining))
        with self.session.get(
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
            return r.status_code, read_within(r.headers, reads, fan_out, rules.max_body_bytes)

    def close(self) -> None:
        self.session.close()


@dataclass(frozen=True, slots=True)
class HttpxClient:
    """A pooled ``httpx.Client`` whose network backend reads within the calling thread's
    deadline (gateway/httpcore_backend.py)."""

    client: httpx.Client

    def get_within(
        self, call: Call, rules: CallRules, fan_out: FanOut, remaining: float
    ) -> tuple[int, bytes]:
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
            self.client.stream(
                "GET", url, params=rules.query_for(call), headers=headers, timeout=timeout
            ) as r,
        ):
            # Whatever each read brings: with a chunk_size, httpx would wait to fill it, and
            # a dripping body would then run past the deadline between two checks.
            return r.status_code, read_within(
                r.headers, r.iter_raw(), fan_out, rules.max_body_bytes
            )

    def close(self) -> None:
        self.client.close()


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
