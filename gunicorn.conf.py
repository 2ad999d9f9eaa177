"""gunicorn settings for every service, driven by environment variables."""

import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from observability.logs import log_config
from serving.cores import whole_cores


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True)

    # gunicorn worker processes; "auto": one per core the container may use (whole_cores).
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
    # Where the workers' metrics files live (observability/metrics.py); a fresh temporary
    # directory when unset. Compose puts it on a tmpfs.
    prometheus_multiproc_dir: str | None = None


_server = ServerSettings()


workers = _server.web_concurrency if _server.web_concurrency != "auto" else whole_cores()
# uvicorn-worker's worker, minus a race that dropped a request per recycle (serving/worker.py).
worker_class = "serving.worker.UvicornWorker"
bind = [_server.bind, *([f"0.0.0.0:{_server.admin_port}"] if _server.admin_port else [])]
timeout = _server.gunicorn_timeout
graceful_timeout = _server.gunicorn_graceful_timeout
keepalive = _server.gunicorn_keepalive
max_requests = _server.gunicorn_max_requests
max_requests_jitter = _server.gunicorn_max_requests_jitter
accesslog = "-" if _server.access_log else None
errorlog = "-"
# gunicorn's control socket (gunicornc) is unused here, and its default path is on the
# read-only root filesystem: off, not an error line at every start.
control_socket_disable = True
# The heartbeat file lives in memory: on a container's overlay disk it can stall workers.
worker_tmp_dir = "/dev/shm"
# One JSON object per log line, each with its request id (observability/logs.py).
logconfig_dict = log_config(_server.access_log)

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def on_starting(server: Any) -> None:
    """In the master, before any worker: an empty metrics directory for this run, and the
    worker count in the environment the workers inherit."""
    directory = _server.prometheus_multiproc_dir or tempfile.mkdtemp(prefix="fanout-metrics-")
    Path(directory).mkdir(parents=True, exist_ok=True)
    for stale in Path(directory).glob("*.db"):  # a previous run's workers
        stale.unlink()
    # Workers inherit it, before they import prometheus_client.
    os.environ[METRICS_ENV] = directory
    # The count the workers report in /healthz: "auto" resolved.
    os.environ["WEB_CONCURRENCY"] = str(workers)


def child_exit(server: Any, worker: Any) -> None:
    """A worker ended (recycled, or killed): its live gauges must stop counting, and its
    counters and histograms go into the archives, so that recycling adds no files."""
    from prometheus_client import multiprocess

    from observability.multiprocess import archive_dead_worker

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
    archive_dead_worker(os.environ[METRICS_ENV], worker.pid)


def on_exit(server: Any) -> None:
    if _server.prometheus_multiproc_dir is None:
        shutil.rmtree(os.environ.get(METRICS_ENV, ""), ignore_errors=True)
