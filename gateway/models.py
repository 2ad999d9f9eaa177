"""The response contract both gateways share, and the upstream payload they consume."""

from typing import Literal

from pydantic import BaseModel, Field

from core.news import Article
from serving.admission import Overloaded
from serving.settings import ServerName

# What went wrong with a source: it ran out of time, could not be reached (or dropped the
# connection), sent bytes that are not HTTP, answered with an error status (a redirect
# included: none is followed), answered with a body that is not news, or sent more than the
# gateway takes; or the archive's database failed, whatever way (the error says which).
ErrorKind = Literal[
    "timeout", "connect", "tls", "protocol", "status", "invalid_body", "too_large", "database"
]


class UpstreamNews(BaseModel):
    """What an upstream's ``GET /news`` returns; anything else is a failed source."""

    source: str
    instance: str = Field(description="The replica that answered: its hostname.")
    node: str | None = Field(None, description="The swarm node it runs on; null elsewhere.")
    delay_ms: int
    articles: list[Article]


class SourceResult(BaseModel):
    name: str
    ok: bool
    status: int | None = Field(
        description="Upstream HTTP status; null when none arrived, and for the archive."
    )
    started_ms: float = Field(description="When the call started, from the fan-out start.")
    elapsed_ms: float
    articles: int = Field(description="How many articles this source contributed.")
    instance: str | None = Field(
        None, description="The replica of the source that answered; null when none did."
    )
    node: str | None = Field(
        None, description="The swarm node of that replica; null off a swarm or when none did."
    )
    error_kind: ErrorKind | None = None
    error: str | None = Field(None, description="What happened, for people.")
    waited_ms: float | None = Field(
        None,
        description="The archive's wait for a connection, within elapsed_ms: a pooled one,"
        " or a new one's connect (?archive_connection=new); null for an HTTP source, and"
        " when none came.",
    )


class NewsResponse(BaseModel):
    gateway: Literal["sync", "async"]
    mode: str
    instance: str = Field(description="The gateway replica that answered: its hostname.")
    node: str | None = Field(None, description="The swarm node it runs on; null elsewhere.")
    worker_pid: int
    elapsed_ms: float = Field(description="The gateway's own fan-out time.")
    queued_ms: float = Field(
        description="From the request's arrival at its route to its fan-out's start: on the"
        " sync gateway, the wait for a threadpool token."
    )
    deadline_ms: float = Field(description="The most the fan-out was allowed to take.")
    partial: bool = Field(description="Some sources answered and some failed.")
    sources: list[SourceResult]
    articles: list[Article] = Field(description="Every source's articles, newest first.")


# What a fan-out route may answer besides 200 and 422, for the OpenAPI schema.
class SourceArrived(BaseModel):
    """One message of the async gateway's ``/ws/news``: a source's result, as it arrives."""

    event: Literal["source"] = "source"
    result: SourceResult
    articles: list[Article]


FAN_OUT_RESPONSES: dict[int | str, dict[str, object]] = {
    502: {"model": NewsResponse, "description": "Every source failed; the body says how."},
    503: {"model": Overloaded, "description": "Past the overload bound: see Retry-After."},
    504: {"model": NewsResponse, "description": "Every source ran out of time."},
}


class GatewayHealth(BaseModel):
    """A gateway's ``GET /healthz``: liveness, plus every limit a benchmark draws its ideal
    lines from. The route returns it, and the bench validates what it reads against it."""

    status: Literal["ok"] = "ok"
    gateway: Literal["sync", "async"]
    instance: str = Field(description="The replica: its hostname.")
    node: str | None = Field(description="The swarm node it runs on; null elsewhere.")
    sources: list[str] = Field(description="Every source a fan-out may call, in order.")
    default_sources: list[str] = Field(
        description="What a fan-out calls when ?sources= is not given."
    )
    archive_driver: str | None = Field(
        description="The archive's PostgreSQL driver (gateway/archive.py); null: no archive."
    )
    archive_pool_size: int = Field(description="The archive's connections per worker.")
    archive_delay_ms: int = Field(description="How long the archive's query pauses.")
    upstream_tls: bool = Field(
        False,
        description="Every source is https://, verified against the lab's private CA alone"
        " when one is set (UPSTREAM_TLS=true).",
    )
    http_client: str
    http2: bool = Field(False, description="The async client asks the sources for HTTP/2.")
    workers: int = Field(description="Worker processes in this replica.")
    server: ServerName
    server_lacks: list[str] = Field(description="What this server lacks of gunicorn's features.")
    # The caps per worker that core/theory.py draws each ideal line from.
    threadpool_tokens: int
    executor_threads: int
    requests_pool_maxsize: int
    max_connections: int
    max_keepalive_connections: int
    deadline_ms: int
    max_deadline_ms: int
    connect_retries: int
    max_in_flight: int = Field(description="The overload bound per worker; 0: none.")
    queue_timeout_ms: int
    retry_after_s: int
    max_hold_ms: int
    cpu_rounds_per_ms: float = Field(description="/cpu/*'s calibration: rounds per ms.")
    cpu_processes: int = Field(description="The processes /cpu/process may use.")
