"""The archive: a source that is a PostgreSQL table, which each gateway queries itself.

The post's database advice, as the lab runs it. The sync gateway's `def` routes use a
synchronous driver with a pool: psycopg, and psycopg_pool's ConnectionPool; a query blocks
its thread, as a requests call does. The async gateway's `async def` routes use an async
driver with its own pool: asyncpg (the default) or psycopg's AsyncConnectionPool
(GATEWAY_ARCHIVE_DRIVER).

A database is as untrusted and fallible as an upstream, so each query keeps to the
fan-out's deadline three ways:
- the wait for a pooled connection is at most what remains ("pool exhausted");
- the server cancels the statement when what remains runs out: its statement_timeout is
  set, as a bound parameter, just before it;
- the client stops waiting a moment later, for a server that cannot cancel (paused, or its
  host gone): the connection is closed, and the pool replaces it.
Whatever happens, the archive is one failed source (error kind "database"), never a 500.
"""

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from core.news import Article
from gateway.config import GatewaySettings
from gateway.fanout import FanOut, SourceOutcome
from gateway.sources import ARCHIVE, Source

# How long the client waits past the statement's own timeout, for the server's answer that
# it cancelled it: a server that cannot answer costs the deadline and this, no more.
CANCEL_GRACE_S = 0.05
# Every value reaches SQL as a bound parameter: the pause, the row cap and the timeout. The
# pause runs once, before the index scan that reads the newest articles.
QUERY = """
SELECT a.id, a.title, a.summary, a.published_at
FROM pg_sleep({pause}) AS pause
CROSS JOIN LATERAL (
    SELECT id, title, summary, published_at
    FROM archive.articles
    ORDER BY published_at DESC
    LIMIT {limit}
) AS a
"""
SET_TIMEOUT = "SELECT set_config('statement_timeout', {timeout}, false)"
# psycopg's placeholders, and asyncpg's (PostgreSQL's own).
PSYCOPG_QUERY = QUERY.format(pause="%s", limit="%s")
PSYCOPG_SET_TIMEOUT = SET_TIMEOUT.format(timeout="%s")
ASYNCPG_QUERY = QUERY.format(pause="$1::float8", limit="$2::int8")
ASYNCPG_SET_TIMEOUT = SET_TIMEOUT.format(timeout="$1::text")
# SQLSTATE 57014, query_canceled: here, the statement_timeout that the deadline set.
QUERY_CANCELED = "57014"


class ArchiveFailed(Exception):
    """The archive's answer or failure, said for people: never the server's own words,
    which may carry anything."""


@dataclass(frozen=True, slots=True)
class ArchiveQuery:
    """What every archive query of a worker asks: how long the server pauses, and at most
    how many articles come back."""

    pause_s: float
    limit: int

    @classmethod
    def of(cls, settings: GatewaySettings) -> "ArchiveQuery":
        return cls(settings.archive_delay_ms / 1000, settings.articles_per_source)

    @staticmethod
    def timeout_ms(remaining_s: float) -> str:
        """The statement_timeout for what remains of the deadline: at least 1 ms, since 0
        turns it off."""
        return str(max(1, int(remaining_s * 1000)))


def connect_kwargs(settings: GatewaySettings, gateway: str) -> dict[str, Any]:
    """The password apart from the URL, a bounded connect, and a name in pg_stat_activity."""
    password = settings.archive_password
    return {
        "password": None if password is None else password.get_secret_value(),
        "application_name": f"fanout-{gateway}-gateway",
    }


def articles_of(rows: Iterable[Mapping[str, Any]], limit: int) -> list[Article]:
    """The rows as articles, checked like an upstream's body: the right shape, and no more
    than were asked for."""
    rows = list(rows)
    if len(rows) > limit:
        raise ArchiveFailed(f"{len(rows)} rows, when {limit} were asked for")
    try:
        return [Article.model_validate({**row, "source": ARCHIVE}) for row in rows]
    except ValidationError as exc:
        raise ArchiveFailed(f"invalid rows: {exc.error_count()} error(s)") from exc


def answered(
    fan_out: FanOut,
    source: Source,
    started: float,
    waited_s: float,
    rows: Iterable[Mapping[str, Any]],
    limit: int,
) -> SourceOutcome:
    """The archive's outcome from its rows, and how long it waited for a connection."""
    try:
        articles = articles_of(rows, limit)
    except ArchiveFailed as exc:
        return fan_out.failed(source, started, "database", str(exc))
    return fan_out.fetched(source, started, articles, waited_s)


@dataclass(slots=True)
class Holders:
    """How many of a worker's pooled connections its queries hold: what tells, when no
    connection came before the deadline, a pool exhausted from a server that would not
    open the rest."""

    size: int
    held: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def holding(self) -> Iterator[None]:
        with self.lock:
            self.held += 1
        try:
            yield
        finally:
            with self.lock:
                self.held -= 1

    def no_connection(self, fan_out: FanOut, source: Source, started: float) -> SourceOutcome:
        held = self.held
        if held >= self.size:
            error = f"pool exhausted: all {self.size} connections stayed in use past the deadline"
        else:
            error = (
                f"no connection before the deadline: {held} of {self.size} in use, and the"
                " server opened none of the rest"
            )
        return fan_out.failed(source, started, "database", error)


def no_answer(fan_out: FanOut, source: Source, started: float) -> SourceOutcome:
    error = "no answer before the deadline: the server neither answered nor cancelled"
    return fan_out.failed(source, started, "database", error)


def database_failed(
    fan_out: FanOut, source: Source, started: float, exc: BaseException, sqlstate: str | None
) -> SourceOutcome:
    """A query the server refused or cancelled, or a connection that failed: the class and
    the SQLSTATE tell which."""
    if sqlstate == QUERY_CANCELED:
        error = "cancelled on the server: its statement_timeout, the deadline, ran out"
    else:
        code = f" (SQLSTATE {sqlstate})" if sqlstate else ""
        error = f"database error: {type(exc).__name__}{code}"
    return fan_out.failed(source, started, "database", error)


def started_with_time_left(fan_out: FanOut, source: Source) -> tuple[float, SourceOutcome | None]:
    """When the archive's call started, and its failure if no time was left for it."""
    started = time.perf_counter()
    if fan_out.remaining() <= 0:
        return started, fan_out.failed(source, started, "database", "the deadline had passed")
    return started, None


def not_queried_here(fan_out: FanOut, source: Source) -> SourceOutcome:
    """The archive asked of a route that has no pool for it."""
    started = time.perf_counter()
    return fan_out.failed(source, started, "database", "this route has no archive pool")
