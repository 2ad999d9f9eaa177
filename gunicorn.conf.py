"""gunicorn settings for every service, driven by environment variables (serving/settings.py)."""

from typing import Any

from observability.logs import log_config
from serving.settings import (
    ServerSettings,
    prepare_workers_environment,
    remove_temporary_metrics,
    retire_worker_metrics,
)

_server = ServerSettings()


workers = _server.workers
# uvicorn-worker's worker, minus a race that dropped a request per recycle (serving/worker.py).
worker_class = "serving.worker.UvicornWorker"
bind = [_server.bind, *([f"0.0.0.0:{_server.admin_port}"] if _server.admin_port else [])]
timeout = _server.gunicorn_timeout
graceful_timeout = _server.gunicorn_graceful_timeout
keepalive = _server.gunicorn_keepalive
max_requests = _server.gunicorn_max_requests
max_requests_jitter = _server.gunicorn_max_requests_jitter
accesslog = "-" if _server.access_log else None
# HTTPS when TLS_CERT names a key and its chain (UPSTREAM_TLS=true); uvicorn's worker
# serves it.
certfile = keyfile = str(_server.tls_cert) if _server.tls_cert else None
errorlog = "-"
# gunicorn's control socket (gunicornc) is unused here, and its default path is on the
# read-only root filesystem: off, not an error line at every start.
control_socket_disable = True
# The heartbeat file lives in memory: on a container's overlay disk it can stall workers.
worker_tmp_dir = "/dev/shm"
# One JSON object per log line, each with its request id (observability/logs.py).
logconfig_dict = log_config(_server.access_log)


def on_starting(server: Any) -> None:
    """In the master, before any worker: an empty metrics directory for this run, and the
    worker count in the environment the workers inherit."""
    prepare_workers_environment(_server)


def child_exit(server: Any, worker: Any) -> None:
    """A worker ended (recycled, or killed): its metrics are archived (serving/settings.py)."""
    retire_worker_metrics(worker.pid)


def on_exit(server: Any) -> None:
    remove_temporary_metrics(_server)
