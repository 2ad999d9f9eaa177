"""Real apps on loopback sockets, for the unit tests: each in a uvicorn thread of its own."""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.config import GatewaySettings
from upstream.config import UpstreamSettings
from upstream.main import create_app as create_upstream

# Short delays keep the suite fast; the assertions are about order and overlap, not speed.
DELAYS_MS = {"wire": 50, "gazette": 100, "chronicle": 250}
# The longest deadline a unit test sets for a fan-out with a fault: the three delays, one
# after another, take at most a third of it, so a busy machine cannot push them past it.
FAULT_DEADLINE_MS = 1500
assert 3 * sum(DELAYS_MS.values()) <= FAULT_DEADLINE_MS
# An injected hang or dripping body would run 5x past that deadline, and still ends: a
# gateway that waited it out cannot pass for one the deadline cut.
HANG_MS = DRIP_MS = 5 * FAULT_DEADLINE_MS


class LiveServer:
    """A uvicorn server for one app on an ephemeral loopback port, in a thread."""

    def __init__(
        self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0, tls_cert: str | None = None
    ) -> None:
        """`tls_cert`: a PEM with the key and its chain, to serve HTTPS."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.url = f"{'https' if tls_cert else 'http'}://{host}:{self.port}"
        # A request a fault holds open must not hold the server open at the end.
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_cert,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("server did not start in 10 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@dataclass(frozen=True)
class Upstreams:
    urls: dict[str, str]

    def settings(self, **overrides: object) -> GatewaySettings:
        fields: dict[str, object] = {"sources": dict(self.urls), "articles_per_source": 5}
        fields.update(overrides)
        return GatewaySettings.model_validate(fields)


@contextmanager
def running_upstreams(
    delays_ms: dict[str, int], tls_cert: str | None = None
) -> Iterator[Upstreams]:
    """One upstream per source; every one that started is stopped, whatever fails.
    `tls_cert`: each serves HTTPS with it (a key and its chain)."""
    with ExitStack() as stack:
        urls = {
            name: stack.enter_context(
                LiveServer(
                    create_upstream(
                        UpstreamSettings(
                            name=name, delay_ms=delay, hang_ms=HANG_MS, drip_ms=DRIP_MS
                        )
                    ),
                    tls_cert=tls_cert,
                )
            ).url
            for name, delay in delays_ms.items()
        }
        yield Upstreams(urls)


def unused_loopback_url() -> str:
    """A loopback URL on which nothing listens: connection refused, at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class HeaderRecorder:
    """Wraps an app and keeps the headers of every HTTP request it gets."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[dict[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await self.app(scope, receive, send)
