"""An upstream that breaks HTTP on purpose: a raw asyncio server on loopback, in a thread.

Each misbehaviour has its own path prefix, so one server is every hostile source at once:
``GET /bad-status/news`` answers with a malformed status line, and so on. A gateway's
source URL is ``{server.url}/{case}``.
"""

import asyncio
import gzip
import json
import sys
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway.models import ErrorKind

# One valid article, as the upstreams write them.
ARTICLE = {
    "id": "x-1",
    "title": "t",
    "summary": "s",
    "source": "x",
    "published_at": "2026-01-01T00:00:00Z",
}
DRIP_EVERY_S = 0.05
# Just under a read timeout set at the start from a 1.5 s deadline: no single read times out,
# and the read that begins just before the deadline would wait about this long past it.
DRIP_SLOWLY_S = 1.4

Writer = asyncio.StreamWriter
Case = Callable[[Writer, "HostileServer"], Awaitable[None]]


def news(articles: int) -> bytes:
    return json.dumps(
        {"source": "x", "instance": "hostile", "delay_ms": 0, "articles": [ARTICLE] * articles}
    ).encode()


def head(status: str = "200 OK", length: int | None = None, *extra: str) -> bytes:
    # Each connection serves one request, then closes: the head says so, as a server that
    # closes must. Without it a client pools the connection, and its next request may go
    # out on it just as the close arrives: a reset that depends on the scheduler, which
    # failed a cap's test beside two CPU hogs.
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", "Connection: close", *extra]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def bad_status(writer: Writer, _: "HostileServer") -> None:
    writer.write(b"HTTP/1.1 abc OK\r\nContent-Length: 2\r\n\r\n{}")


async def not_http(writer: Writer, _: "HostileServer") -> None:
    writer.write(b"\x16\x03\x01 this is not HTTP at all\r\n\r\n")


async def http09(writer: Writer, _: "HostileServer") -> None:
    # A body with no status line and no headers, as HTTP/0.9 answered.
    writer.write(news(1))


async def bad_chunked(writer: Writer, _: "HostileServer") -> None:
    writer.write(head("200 OK", None, "Transfer-Encoding: chunked") + b"zz\r\nnot a chunk\r\n")


async def huge_header(writer: Writer, _: "HostileServer") -> None:
    body = news(1)
    writer.write(head("200 OK", len(body), "X-Huge: " + "a" * 2**20) + body)


async def many_headers(writer: Writer, _: "HostileServer") -> None:
    body = news(1)
    extra = [f"X-H{i}: v" for i in range(50_000)]
    writer.write(head("200 OK", len(body), *extra) + body)


async def drip_with_length(writer: Writer, _: "HostileServer") -> None:
    body = news(10)
    writer.write(head("200 OK", len(body)))
    for byte in body:  # ends long after any deadline: about 2 KB at 20 bytes a second
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(DRIP_EVERY_S)


async def drip_slowly(writer: Writer, _: "HostileServer") -> None:
    # A byte, then one every DRIP_SLOWLY_S: only a deadline that bounds every read stops it.
    body = news(1)
    writer.write(head("200 OK", len(body)))
    for byte in body:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(DRIP_SLOWLY_S)


async def cut_midway(writer: Writer, _: "HostileServer") -> None:
    # Valid HTTP, then the connection drops a tenth of the way into the promised body.
    body = news(10)
    writer.write(head("200 OK", len(body)) + body[: len(body) // 10])
    await writer.drain()
    writer.transport.abort()


async def no_answer(writer: Writer, _: "HostileServer") -> None:
    writer.transport.abort()  # the request is read, and the connection closed at once


async def redirect(writer: Writer, server: "HostileServer") -> None:
    # To a path of this same server that counts its callers: a gateway must not go there.
    writer.write(head("302 Found", 0, f"Location: {server.url}/redirected/news"))


async def redirected(writer: Writer, _: "HostileServer") -> None:
    body = news(1)
    writer.write(head("200 OK", len(body)) + body)


async def big_body(writer: Writer, server: "HostileServer") -> None:
    # Valid news, far past any sane cap: 64 MiB of padding in a field the model ignores.
    pad_bytes = 64 * 2**20
    prefix = b'{"source":"x","instance":"hostile","delay_ms":0,"articles":[],"pad":"'
    suffix = b'"}'
    writer.write(head("200 OK", len(prefix) + pad_bytes + len(suffix)) + prefix)
    chunk = b"a" * 2**16
    for _ in range(pad_bytes // len(chunk)):
        writer.write(chunk)
        await writer.drain()  # a reader that stops reading stops this loop too
    writer.write(suffix)


async def big_chunked(writer: Writer, _: "HostileServer") -> None:
    # The same flood with no Content-Length to give it away: only counting the bytes stops it.
    writer.write(head("200 OK", None, "Transfer-Encoding: chunked"))
    chunk = b"a" * 2**16
    for _sent in range(1024):  # 64 MiB
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
    writer.write(b"0\r\n\r\n")


async def many_articles(writer: Writer, _: "HostileServer") -> None:
    body = news(400)  # the gateway asked for 10
    writer.write(head("200 OK", len(body)) + body)


# 64 MiB of zeros, about 64 KiB on the wire: built once, so that serving it costs nothing.
GZIP_BOMB = gzip.compress(b"0" * 64 * 2**20)


async def gzip_bomb(writer: Writer, _: "HostileServer") -> None:
    # Sent though the gateway asked for identity.
    writer.write(head("200 OK", len(GZIP_BOMB), "Content-Encoding: gzip") + GZIP_BOMB)


CASES: dict[str, Case] = {
    "bad-status": bad_status,
    "not-http": not_http,
    "http09": http09,
    "bad-chunked": bad_chunked,
    "huge-header": huge_header,
    "many-headers": many_headers,
    "drip-length": drip_with_length,
    "drip-slowly": drip_slowly,
    "cut-midway": cut_midway,
    "no-answer": no_answer,
    "redirect": redirect,
    "redirected": redirected,
    "big-body": big_body,
    "big-chunked": big_chunked,
    "many-articles": many_articles,
    "gzip-bomb": gzip_bomb,
}


# What each misbehaviour is, whichever client met it: bytes that are not HTTP are protocol,
# a connection that drops is connect. "redirected" is the redirect's target, never called.
EXPECTED_KIND: dict[str, ErrorKind] = {
    "bad-status": "protocol",
    "not-http": "protocol",
    "http09": "protocol",
    "bad-chunked": "protocol",
    "huge-header": "protocol",
    "many-headers": "protocol",
    "cut-midway": "connect",
    "no-answer": "connect",
    "drip-length": "timeout",
    "drip-slowly": "timeout",
    "redirect": "status",
    "big-body": "too_large",
    "big-chunked": "too_large",
    "many-articles": "too_large",
    "gzip-bomb": "invalid_body",
}
assert set(EXPECTED_KIND) | {"redirected"} == set(CASES)
# The one case a client sees otherwise: an HTTP/0.9 answer has no end of head, so h11 (under
# httpx and httpx2) waits for one until the connection closes, and reports that close.
H11_CLIENTS = ("sync-httpx", "async-httpx", "async-httpx2")
EXPECTED_OTHERWISE: dict[tuple[str, str], ErrorKind] = {
    ("http09", client): "connect" for client in H11_CLIENTS
}


def expected_kind(case: str, client: str) -> ErrorKind:
    """The kind a gateway reports for `case` with `client` ("sync", "async-httpx", ...)."""
    return EXPECTED_OTHERWISE.get((case, client), EXPECTED_KIND[case])


@dataclass
class HostileServer:
    """Serves every case on one port (loopback and a free one by default); counts the
    requests each case got."""

    host: str = "127.0.0.1"
    port: int = 0
    url: str = ""
    hits: Counter[str] = field(default_factory=Counter)
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _thread: threading.Thread | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode()
            case = path.strip("/").split("/", 1)[0]
            self.hits[case] += 1
            await CASES[case](writer, self)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, KeyError, IndexError):
            pass  # the gateway hung up, as it should past a cap or a deadline
        finally:
            writer.close()

    def __enter__(self) -> "HostileServer":
        started = threading.Event()

        async def serve() -> None:
            server = await asyncio.start_server(self._handle, self.host, self.port)
            self.url = f"http://{self.host}:{server.sockets[0].getsockname()[1]}"
            started.set()
            async with server:
                await server.serve_forever()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(serve())
            except asyncio.CancelledError:
                pass
            finally:  # let every cancelled handler finish, then close the loop itself
                pending = asyncio.all_tasks(self._loop)
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                self._loop.close()

        self._thread = threading.Thread(target=run, name="hostile-upstream", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the hostile server did not start in 10 s")
        return self

    def __exit__(self, *exc: object) -> None:
        def cancel_all() -> None:
            for task in asyncio.all_tasks(self._loop):
                task.cancel()

        self._loop.call_soon_threadsafe(cancel_all)
        if self._thread is not None:
            self._thread.join(timeout=10)


def main() -> None:
    """``python -m tests.hostile HOST PORT``: serve every case until stopped (the hostile
    service of tests/integration/docker-compose.hostile.yml)."""
    host, port = sys.argv[1], int(sys.argv[2])
    with HostileServer(host, port) as server:
        print(f"hostile upstream on {server.url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
