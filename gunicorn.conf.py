"""gunicorn settings for every service, driven by environment variables."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True)

    web_concurrency: int = Field(1, ge=1, le=64, description="gunicorn worker processes.")
    bind: str = "0.0.0.0:8000"
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


_server = ServerSettings()


workers = _server.web_concurrency
worker_class = "uvicorn_worker.UvicornWorker"
bind = _server.bind
timeout = _server.gunicorn_timeout
graceful_timeout = _server.gunicorn_graceful_timeout
keepalive = _server.gunicorn_keepalive
max_requests = _server.gunicorn_max_requests
max_requests_jitter = _server.gunicorn_max_requests_jitter
accesslog = "-" if _server.access_log else None
errorlog = "-"
# The heartbeat file lives in memory: on a container's overlay disk it can stall workers.
worker_tmp_dir = "/dev/shm"
