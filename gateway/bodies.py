"""A source's body, read as the gateway reads every one: asked for as it is, refused past
the cap or on headers that already give it away, and (blocking) cut at the deadline."""

from collections.abc import Iterable, Mapping
from typing import Any

from gateway.calls import AsyncHTTPClient
from gateway.fanout import FanOut
from gateway.models import ErrorKind

# Every call asks for the body as it is: the gateway decompresses nothing, so a compressed
# bomb cannot expand inside it. A source that compresses anyway sent what was not asked for.
IDENTITY = {"Accept-Encoding": "identity"}
READ_CHUNK = 64 * 1024


class DeadlinePassed(Exception):
    """The fan-out's deadline passed while a blocking call was still reading."""


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
    the block closes the connection of a body cut short). Returns (status, body).

    The async call's deadline is its task's (asyncio.timeout, in AsyncCaller.fetch)."""
    async with http.stream("GET", url, params=params, headers=headers) as response:
        check_headers(response.headers, max_bytes)
        body = CappedBody(max_bytes)
        async for chunk in response.aiter_raw():
            body.add(chunk)
        return response.status_code, body.content()


def read_within(
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
