"""How a service is served, from environment variables: which server, its workers, ports,
timeouts and recycling. gunicorn.conf.py and serving/serve.py both read it.

The timeouts keep their GUNICORN_ names (the lab's default server), and every server reads
the ones it has an equivalent for: docs/configuration.md has the table.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import Field, FilePath
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.environment import METRICS_DIR_ENV
from serving.cores import whole_cores

# gunicorn with uvicorn's worker (the lab's brief), granian's own workers, or uvicorn's own
# --workers (what `fastapi run` runs).
ServerName = Literal["gunicorn", "granian", "uvicorn"]
SERVERS: tuple[ServerName, ...] = get_args(ServerName)

# What a server lacks of gunicorn's features here, as each /healthz reports it.
SERVER_LACKS: dict[ServerName, tuple[str, ...]] = {
    "gunicorn": (),
    # Its supervisor pings a thread of the worker, which answers while the event loop is
    # blocked: a stuck loop is never killed.
    "uvicorn": ("blocked-loop timeout",),
    # One bound port; workers respawn when they die, and recycle by age only
    # (--workers-lifetime), not by request count; no hook sees a worker exit, so a dead
    # worker's metrics files stay.
    "granian": ("blocked-loop timeout", "recycling by request count", "admin port"),
}


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True)

    server: ServerName = "gunicorn"
    # Worker processes; "auto": one per core the container may use (whole_cores).
    web_concurrency: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = "auto"
    bind: str = "0.0.0.0:8000"
    # A second port for /docs, /openapi.json and /metrics alone (the gateways read
    # ADMIN_PORT too, and answer them nowhere else); 0: none.
    admin_port: int = Field(0, ge=0, le=65535)
    # A UvicornWorker heartbeats from its event loop: a loop blocked longer than this
    # (see /news/blocking) gets the worker killed and restarted by the arbiter.
    gunicorn_timeout: int = Field(30, ge=1)
    gunicorn_graceful_timeout: int = Field(10, ge=0)
    # Becomes uvicorn's timeout_keep_alive. It must outlast the clients' idle expiry
    # (httpx: 5 s), or a client reuses a socket the server is closing. gunicorn's own
    # default of 2 s is shorter than that.
    gunicorn_keepalive: int = Field(75, ge=0)
    # Recycle a worker after this many requests (0: never), give or take the jitter, so
    # that workers do not all restart at once. A recycled worker finishes what it took.
    gunicorn_max_requests: int = Field(0, ge=0)
    gunicorn_max_requests_jitter: int = Field(0, ge=0)
    access_log: bool = True
    # HTTPS instead of HTTP: one PEM file with the private key and its certificate chain
    # (serving/certs.py makes them when UPSTREAM_TLS=true); None: plain HTTP.
    tls_cert: FilePath | None = None
    # Serve HTTP/2 besides HTTP/1.1: over TLS each client picks by ALPN (UPSTREAM_HTTP2).
    # granian alone speaks it of the three servers.
    http2: bool = False
    # Each worker, once started: its heap frozen, and this many tracked objects allocated
    # less freed between two young collections (serving/heap.py); 700 is Python's own.
    gc_threshold: int = Field(100_000, ge=1, le=1_000_000)
    # Where the workers' metrics files live (observability/metrics.py); a fresh temporary
    # directory when unset. Compose puts it on a tmpfs.
    prometheus_multiproc_dir: str | None = None

    @property
    def workers(self) -> int:
        return self.web_concurrency if self.web_concurrency != "auto" else whole_cores()

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.bind.rpartition(":")
        return host or "0.0.0.0", int(port)


def prepare_workers_environment(settings: ServerSettings) -> str:
    """In the parent, before any worker: an empty metrics directory for this run, in the
    environment the workers inherit. Returns the directory."""
    directory = settings.prometheus_multiproc_dir or tempfile.mkdtemp(prefix="fanout-metrics-")
    Path(directory).mkdir(parents=True, exist_ok=True)
    for stale in Path(directory).glob("*.db"):  # a previous run's workers
        stale.unlink()
    # Workers inherit it, before they import prometheus_client: the library reads it from
    # the environment at import, so the environment is the one way to hand it over.
    os.environ[METRICS_DIR_ENV] = directory
    return directory


def retire_worker_metrics(pid: int) -> None:
    """A worker ended (recycled, or killed): its live gauges must stop counting, and its
    counters and histograms go into the archives, so that recycling adds no files."""
    from prometheus_client import multiprocess

    from observability.multiprocess import archive_dead_worker

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
    archive_dead_worker(os.environ[METRICS_DIR_ENV], pid)


def remove_temporary_metrics(settings: ServerSettings) -> None:
    if settings.prometheus_multiproc_dir is None:
        shutil.rmtree(os.environ.get(METRICS_DIR_ENV, ""), ignore_errors=True)


@contextmanager
def workers_environment(settings: ServerSettings) -> Iterator[str]:
    """The two steps above around a server that runs in this process (uvicorn, granian);
    gunicorn.conf.py takes them in its own hooks."""
    directory = prepare_workers_environment(settings)
    try:
        yield directory
    finally:
        remove_temporary_metrics(settings)
