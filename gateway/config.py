"""Settings shared by both gateways, read from ``GATEWAY_*`` environment variables."""

import functools
import re
import socket
import ssl
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    FilePath,
    HttpUrl,
    PostgresDsn,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.news import SOURCE_NAME
from gateway.sources import ARCHIVE, Source
from serving.admission import AdmissionPolicy
from serving.levers import LAB_LEVERS
from serving.settings import ServerSettings

# The default first: bench compare runs the client axis in this order.
AsyncClientName = Literal["httpx-aiohttp", "aiohttp", "httpx2", "httpx"]
SyncClientName = Literal["requests", "httpx"]
# The async gateway's PostgreSQL driver, each with its own pool (gateway/archive.py).
ArchiveDriver = Literal["asyncpg", "psycopg"]
# The async clients that cannot speak HTTP/2: aiohttp underneath.
NO_HTTP2: frozenset[AsyncClientName] = frozenset({"httpx-aiohttp", "aiohttp"})


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", frozen=True)

    # "name=url,name=url": the only hosts a gateway ever calls. Clients pick among the
    # names; they never supply a URL.
    sources: Annotated[dict[str, HttpUrl], NoDecode] = Field(
        default_factory=lambda: {"wire": HttpUrl("http://127.0.0.1:9101")}
    )
    # The one CA a gateway trusts for https:// sources (UPSTREAM_TLS=true: the private CA
    # serving/certs.py makes); None: the usual bundle. The per-call client of the lab's
    # levers is the post's own, which loads the usual bundle, and trusts this CA besides.
    ca_file: FilePath | None = None
    # The archive, a source that is a PostgreSQL table the gateway queries itself: its
    # server, as postgresql://USER@HOST:PORT/DB, and the password apart (never in the URL,
    # so that no answer or log can show it). None: no archive.
    archive_url: PostgresDsn | None = None
    archive_password: SecretStr | None = None
    # How long the archive's query takes, like an upstream's delay: a pg_sleep in the
    # statement, bound as a parameter.
    archive_delay_ms: int = Field(300, ge=0, le=60_000)
    # Connections in each worker's pool. A `def` route holds one for its whole query, so
    # with fewer connections than threadpool tokens, requests queue twice.
    archive_pool_size: int = Field(10, ge=1, le=1000)
    # The async gateway's driver: asyncpg, or psycopg's AsyncConnectionPool.
    archive_driver: ArchiveDriver = "asyncpg"
    # The sources a fan-out calls when ?sources= is not given; None: every HTTP source.
    # The archive is opt-in, so that every figure measured without it stays comparable.
    default_sources: Annotated[list[str] | None, NoDecode] = None
    articles_per_source: int = Field(10, ge=1, le=100)
    # An upstream is untrusted: its body is read up to this many bytes and no further (10
    # articles are about 3 KB). A source that sends more, or more articles than were asked
    # for, is too_large, and its connection is dropped.
    max_body_bytes: int = Field(1_048_576, ge=1024, le=2**30)
    # A source slower than this is reported as a timeout and the others still answer:
    # a slow upstream costs at most this long, never a hang.
    connect_timeout_s: float = Field(1.0, gt=0)
    read_timeout_s: float = Field(5.0, gt=0)
    # Starlette runs `def` routes on anyio's threadpool, 40 tokens by default. It caps how
    # many sync requests one worker serves at once, so it is a setting, not a constant.
    threadpool_tokens: int = Field(40, ge=1, le=1000)
    # The async gateway's client (gateway/clients.py explains each). The default is the
    # post's `httpx.AsyncClient`, over aiohttp's connector: httpx's own pool costs more per
    # fan-out the more are in flight, aiohttp's stays flat from C=10 to C=1000
    # (docs/benchmark.md, "Why the client matters"). `aiohttp` drops httpx's request layer
    # for less CPU per call ("Where a fan-out's CPU goes"); it is a setting, not the default.
    async_http_client: AsyncClientName = "httpx-aiohttp"
    # HTTP/2 from the async gateway's client (ASYNC_HTTP2): over TLS it asks each source for
    # it by ALPN, and multiplexes a source's calls over a connection or a few. httpx and
    # httpx2 speak it; aiohttp, under the other two, has no HTTP/2, so they are refused.
    http2: bool = False
    # The sync gateway's client: one requests.Session, or one httpx.Client ("just like
    # requests, but with better performance", says the blog post; bench claims measures it).
    sync_http_client: SyncClientName = "requests"
    # httpx defaults to Limits(max_connections=100, max_keepalive_connections=20). A
    # fan-out holds its connections for sum(delays) in all, so 100 would cap one worker at
    # 100 / 1.6 s = 62 req/s. 3000 lets 3 sources x C=1000 (the full benchmark's largest
    # point) all be in flight at once; keeping every connection alive avoids a reconnect
    # storm under load.
    max_connections: int = Field(3000, ge=1, le=10_000)
    max_keepalive_connections: int = Field(3000, ge=0, le=10_000)
    # Client-side idle expiry must stay below the upstream's keepalive (GUNICORN_KEEPALIVE),
    # or the client reuses a socket the server is closing: a RemoteProtocolError.
    keepalive_expiry_s: float = Field(5.0, ge=0)
    pool_timeout_s: float = Field(5.0, gt=0)
    # A source whose kernel leaves our bytes unacknowledged this long has gone: its host died
    # or its link was cut (a slow or hung source still acknowledges). The connection fails
    # then, where it would otherwise hang until the fan-out's deadline, and idle pooled
    # connections to it are dropped within about 2 s (gateway/balancing.py,
    # dead_peer_options). It bounds a connect too: a SYN unanswered this long fails it.
    # A live peer acknowledges within a millisecond here (0.1 to 0.2 ms measured on
    # loopback), and Linux delays an ACK by 40 ms, 200 ms at most. 0.25 s lets the sync
    # gateway's sequential fan-out (1.6 s) meet a dead connection on each of its three
    # sources and still answer within the 2.5 s deadline.
    dead_peer_timeout_s: float = Field(0.25, gt=0, le=60)
    # One fan-out, all its calls included, takes at most this long: a hung source costs the
    # deadline, never the read timeout. Above every mode's normal fan-out (the sequential
    # ones take the sum of the delays, 1.6 s). ?deadline_ms= may ask for up to the maximum.
    deadline_ms: int = Field(2500, ge=1, le=600_000)
    max_deadline_ms: int = Field(10_000, ge=1, le=600_000)
    # Retries of a call that could not connect (a GET is safe to repeat), within the
    # deadline. 0 keeps a down source's cost visible: one failed connect.
    connect_retries: int = Field(0, ge=0, le=5)
    # Overload, per worker (serving/admission.py): at most this many fan-outs in flight,
    # 0 for no bound (the default: today's queueing stays visible). A request that finds
    # no slot within the queue timeout gets a 503 with Retry-After at once.
    max_in_flight: int = Field(0, ge=0, le=100_000)
    queue_timeout_ms: int = Field(100, ge=0, le=60_000)
    retry_after_s: int = Field(1, ge=0, le=3600)
    # The longest the blog's example routes (gateway/blog.py) may sleep or compute per
    # request: enough to outlast GUNICORN_TIMEOUT on /wrong, and no more.
    max_hold_ms: int = Field(60_000, ge=1, le=600_000)
    # The lab's levers, read from LAB_LEVERS (the upstreams read it too). ?fault=, deadlines
    # past the default, /news/blocking, the per-call client and the blog's routes exist only
    # to teach, and each lets a caller hold a worker or an upstream. Off ("exposed" in
    # docs/configuration.md), each is refused with a 404 or a 422, and the schema omits it.
    lab_levers: bool = Field(True, validation_alias=LAB_LEVERS)
    # How the gateway is served (SERVER, WEB_CONCURRENCY, ADMIN_PORT): the server's own
    # settings, read once, as serving/serve.py reads them. /healthz reports the server with
    # what it lacks of gunicorn's features and the worker count, and the admin port alone
    # serves /docs, /openapi.json and /metrics.
    serving: ServerSettings = Field(default_factory=ServerSettings)
    # Which replica this is, in every answer: the container's hostname by default.
    instance: str = Field(default_factory=socket.gethostname, min_length=1, max_length=64)
    # The node that runs it, on a swarm (NODE_NAME, from the stack's template); None elsewhere.
    node: str | None = Field(None, validation_alias="NODE_NAME", max_length=64)

    @field_validator("sources", mode="before")
    @classmethod
    def parse_sources(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        parsed: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            name, sep, url = item.partition("=")
            if not sep:
                raise ValueError(f"expected name=url, got {item!r}")
            parsed[name.strip()] = url.strip()
        return parsed

    @field_validator("sources")
    @classmethod
    def check_sources(cls, value: dict[str, HttpUrl]) -> dict[str, HttpUrl]:
        if not value:
            raise ValueError("at least one source is required")
        for name in value:
            if not re.fullmatch(SOURCE_NAME, name):
                raise ValueError(f"source name {name!r} must match {SOURCE_NAME}")
        return value

    @field_validator("default_sources", mode="before")
    @classmethod
    def parse_default_sources(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()] or None
        return value

    @model_validator(mode="after")
    def default_sources_exist(self) -> "GatewaySettings":
        names = [source.name for source in self.fan_out_sources]
        unknown = [name for name in self.default_sources or () if name not in names]
        if unknown:
            raise ValueError(
                f"default_sources: unknown source(s) {', '.join(unknown)};"
                f" valid sources: {', '.join(names)}"
            )
        return self

    @model_validator(mode="after")
    def archive_has_password(self) -> "GatewaySettings":
        if self.archive_url is not None and self.archive_url.hosts()[0]["password"]:
            raise ValueError("archive_url: give the password in GATEWAY_ARCHIVE_PASSWORD")
        return self

    @model_validator(mode="after")
    def http2_client(self) -> "GatewaySettings":
        if self.http2 and self.async_http_client in NO_HTTP2:
            raise ValueError(
                f"http2: {self.async_http_client} runs on aiohttp, which has no HTTP/2;"
                " use ASYNC_HTTP_CLIENT=httpx or httpx2"
            )
        return self

    @model_validator(mode="after")
    def deadline_within_max(self) -> "GatewaySettings":
        if self.deadline_ms > self.max_deadline_ms:
            raise ValueError("deadline_ms must not exceed max_deadline_ms")
        return self

    @property
    def admission(self) -> AdmissionPolicy:
        return AdmissionPolicy(self.max_in_flight, self.queue_timeout_ms / 1000, self.retry_after_s)

    @property
    def requests_pool_maxsize(self) -> int:
        """Connections the sync gateway's requests pool keeps per source host."""
        return self.threadpool_tokens

    @property
    def executor_threads(self) -> int:
        """threads mode: every request in flight may run one call per source at once."""
        return self.threadpool_tokens * len(self.sources)

    @functools.cached_property
    def tls_context(self) -> ssl.SSLContext | None:
        """What every pooled client verifies the sources with: `ca_file` alone, or None for
        each client's own default. One per worker: loading a bundle costs milliseconds."""
        return None if self.ca_file is None else ssl.create_default_context(cafile=self.ca_file)

    # Computed once per settings object (they are frozen): the fan-out route reads it on
    # every request.
    @functools.cached_property
    def source_list(self) -> tuple[Source, ...]:
        return tuple(Source(name, str(url).rstrip("/")) for name, url in self.sources.items())

    @functools.cached_property
    def fan_out_sources(self) -> tuple[Source, ...]:
        """Every source a fan-out may call: the HTTP ones, then the archive, if any."""
        if self.archive_url is None:
            return self.source_list
        host = self.archive_url.hosts()[0]
        server = f"postgresql://{host['host']}:{host['port'] or 5432}{self.archive_url.path}"
        return (*self.source_list, Source(ARCHIVE, server, kind="archive"))
