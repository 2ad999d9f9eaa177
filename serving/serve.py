"""Start one service under the server SERVER names: every image's command.

    python -m serving.serve gateway.async_app:create_app

- gunicorn (the default): gunicorn.conf.py's arbiter with uvicorn's worker; this process
  becomes gunicorn.
- uvicorn: uvicorn's own workers, what ``fastapi run`` and ``uvicorn --workers`` run: one
  process alone, or its supervisor when there are more workers or recycling.
- granian: granian's own workers, a Rust HTTP server with a process per worker.

Each gets the same settings (serving/settings.py) where it has them: worker count from the
CPU quota, the ports, keep-alive, graceful stop, recycling, the JSON logs and the metrics
directory. What one lacks, /healthz and docs/configuration.md say.
"""

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import uvicorn
from granian.constants import HTTPModes, Interfaces, Loops
from granian.http import HTTP1Settings

# granian's process-per-worker server: what `granian.Granian` is on a GIL build of Python.
from granian.server import MPServer
from uvicorn.supervisors import Multiprocess

from observability.logs import log_config
from serving.settings import (
    ServerName,
    ServerSettings,
    retire_worker_metrics,
    workers_environment,
)
from serving.worker import GracefulServer

GUNICORN_CONF = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"
# gunicorn's default, for the servers that take one: connections the kernel holds for a
# worker before it accepts them.
BACKLOG = 2048
# granian closes a connection that sends no request headers for this long, idle keep-alive
# ones included (measured: 30 s by default), and takes at most 60 s.
GRANIAN_MAX_HEADER_READ_TIMEOUT_S = 60


class ServerSettingError(ValueError):
    """A setting this server cannot honour: the service refuses to start, and says why."""


def gunicorn_argv(app: str) -> list[str]:
    # gunicorn calls a factory written as a call: "module:create_app()".
    return [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF), f"{app}()"]


def serve_gunicorn(app: str, settings: ServerSettings) -> None:
    """Become gunicorn: its arbiter then receives the container's signals itself."""
    argv = gunicorn_argv(app)
    os.execv(argv[0], argv)


def uvicorn_config(app: str, settings: ServerSettings, port: int | None = None) -> uvicorn.Config:
    host, public_port = settings.host_port
    return uvicorn.Config(
        app,
        factory=True,
        host=host,
        port=public_port if port is None else port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        backlog=BACKLOG,
        timeout_keep_alive=settings.gunicorn_keepalive,
        timeout_graceful_shutdown=settings.gunicorn_graceful_timeout,
        limit_max_requests=settings.gunicorn_max_requests or None,
        limit_max_requests_jitter=settings.gunicorn_max_requests_jitter,
        log_config=log_config(settings.access_log),
        access_log=settings.access_log,
        # Behind no proxy here: the client address is the peer's.
        proxy_headers=False,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_cert,
    )


class ArchivingSupervisor(Multiprocess):
    """uvicorn's supervisor, which replaces a dead or recycled worker, and here also
    archives its metrics, as gunicorn's child_exit does."""

    def keep_subprocess_alive(self) -> None:
        before = {process.pid for process in self.processes}
        super().keep_subprocess_alive()
        for pid in before - {process.pid for process in self.processes}:
            if pid is not None:
                retire_worker_metrics(pid)


def serve_uvicorn(app: str, settings: ServerSettings) -> None:
    config = uvicorn_config(app, settings)
    sockets = [config.bind_socket()]
    if settings.admin_port:
        # uvicorn serves any sockets it is given: the admin port is a second one.
        sockets.append(uvicorn_config(app, settings, port=settings.admin_port).bind_socket())
    with workers_environment(settings):
        if settings.workers > 1 or settings.gunicorn_max_requests:
            ArchivingSupervisor(config, sockets=sockets).run()
        else:
            # One process, as `uvicorn --workers 1` runs: no supervisor to restart it.
            # GracefulServer: the same shutdown as under gunicorn (serving/worker.py).
            GracefulServer(config).run(sockets=sockets)


def granian_server(app: str, settings: ServerSettings) -> MPServer:
    if settings.admin_port:
        raise ServerSettingError(
            "SERVER=granian binds one port: set ADMIN_PORT=0, or use SERVER=gunicorn or "
            "SERVER=uvicorn for an admin port"
        )
    host, port = settings.host_port
    return MPServer(
        app,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=settings.workers,
        loop=Loops.uvloop,
        # auto: HTTP/1.1, and HTTP/2 where the client asks for it (ALPN over TLS).
        http=HTTPModes.auto if settings.http2 else HTTPModes.http1,
        websockets=False,
        backlog=BACKLOG,
        # The keep-alive: still longer than the clients' idle expiry (aiohttp 15 s, httpx 5 s).
        http1_settings=HTTP1Settings(
            header_read_timeout=1000
            * max(1, min(settings.gunicorn_keepalive, GRANIAN_MAX_HEADER_READ_TIMEOUT_S))
        ),
        log_dictconfig=log_config(settings.access_log),
        log_access=settings.access_log,
        # A stop lets each worker finish what it took, for this long at most.
        workers_kill_timeout=max(1, settings.gunicorn_graceful_timeout),
        respawn_failed_workers=True,
        ssl_cert=settings.tls_cert,
        ssl_key=settings.tls_cert,
    )


def serve_granian(app: str, settings: ServerSettings) -> None:
    server = granian_server(app, settings)
    with workers_environment(settings):
        server.serve()


SERVE: dict[ServerName, Callable[[str, ServerSettings], None]] = {
    "gunicorn": serve_gunicorn,
    "uvicorn": serve_uvicorn,
    "granian": serve_granian,
}


def refuse_http2(settings: ServerSettings) -> None:
    """gunicorn's and uvicorn's workers speak HTTP/1.1 only."""
    if settings.http2:
        raise ServerSettingError(
            f"SERVER={settings.server} has no HTTP/2: use SERVER=granian, or set HTTP2=false"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or ":" not in args[0]:
        print("usage: python -m serving.serve MODULE:FACTORY", file=sys.stderr)
        return 2
    settings = ServerSettings()
    try:
        if settings.server != "granian":
            refuse_http2(settings)
        SERVE[settings.server](args[0], settings)
    except ServerSettingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
