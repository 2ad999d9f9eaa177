"""The sync gateway's archive: psycopg, with psycopg_pool's ConnectionPool, from `def`
routes (gateway/archive.py says how each query keeps to the deadline)."""

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
import psycopg.errors
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from gateway.archive import (
    CANCEL_GRACE_S,
    PSYCOPG_QUERY,
    PSYCOPG_SET_TIMEOUT,
    ArchiveQuery,
    Holders,
    answered,
    connect_kwargs,
    database_failed,
    no_answer,
    started_with_time_left,
)
from gateway.calls import Call
from gateway.config import GatewaySettings
from gateway.fanout import FanOut, SourceOutcome
from gateway.sources import Source

logger = logging.getLogger(__name__)

# libpq's own bound on opening a connection (whole seconds, at least 2): a server that
# accepts but never answers costs the pool's background worker this, never a request.
CONNECT_TIMEOUT_S = 2


def wait_timeout(deadline: float, timeout: float | None) -> float:
    """psycopg's wait timeout for a connection whose waits end by `deadline`."""
    left = max(deadline - time.perf_counter(), 0.001)
    return left if timeout is None else min(timeout, left)


def psycopg_failed(
    fan_out: FanOut, source: Source, started: float, exc: Exception
) -> SourceOutcome:
    """What a psycopg query that raised tells, on either gateway: no answer by the deadline,
    an error the server or the driver named, or anything else (logged), each the archive's
    failure. The database is untrusted: nothing it makes the driver raise is a 500."""
    if isinstance(exc, psycopg.errors._WaitTimeout):
        return no_answer(fan_out, source, started)
    if isinstance(exc, psycopg.Error):
        return database_failed(fan_out, source, started, exc, exc.sqlstate)
    logger.warning("archive: unexpected %r", exc, exc_info=exc)
    return database_failed(fan_out, source, started, exc, None)


class DeadlineConnection(psycopg.Connection[Any]):
    """psycopg's connection, whose every wait on the server ends by `deadline` (a
    perf_counter instant) when one is set. Past it, psycopg raises its wait timeout, and
    this closes the connection: the pool then replaces it."""

    deadline: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        if self.deadline is None:
            return super().wait(gen, interval, timeout)
        try:
            return super().wait(gen, interval, wait_timeout(self.deadline, timeout))
        except psycopg.errors._WaitTimeout:
            self.close()
            raise


class BlockingArchive(Protocol):
    def fetch(self, call: Call, fan_out: FanOut) -> SourceOutcome: ...


def query_within(
    conn: DeadlineConnection, fan_out: FanOut, query: ArchiveQuery
) -> list[dict[str, Any]]:
    """The archive's query on this connection, within the fan-out's deadline."""
    remaining = fan_out.remaining()
    conn.deadline = fan_out.deadline + CANCEL_GRACE_S
    try:
        with conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(PSYCOPG_SET_TIMEOUT, [ArchiveQuery.timeout_ms(remaining)])
            cursor.execute(PSYCOPG_QUERY, [query.pause_s, query.limit])
            return cursor.fetchmany(query.limit + 1)
    finally:
        conn.deadline = None


@dataclass(frozen=True, slots=True)
class ConnectingArchive:
    """The archive with no pool: a new connection for each query, closed after it. What
    "use database connection pooling" warns against, as a lab lever
    (`?archive_connection=new`). Opening one is libpq's to bound, in whole seconds, at
    least 2: a server that accepts and never answers can hold it past the deadline."""

    conninfo: str
    kwargs: dict[str, Any]
    query: ArchiveQuery

    def fetch(self, call: Call, fan_out: FanOut) -> SourceOutcome:
        source = call.source
        started, late = started_with_time_left(fan_out, source)
        if late is not None:
            return late
        timeout = max(CONNECT_TIMEOUT_S, math.ceil(fan_out.remaining()))
        try:
            with DeadlineConnection.connect(
                self.conninfo, **self.kwargs, connect_timeout=timeout
            ) as conn:
                waited = time.perf_counter() - started
                rows = query_within(conn, fan_out, self.query)
        except Exception as exc:
            return psycopg_failed(fan_out, source, started, exc)
        return answered(fan_out, source, started, waited, rows, self.query.limit)


@dataclass(frozen=True, slots=True)
class SyncArchive:
    """A worker's archive queries: its pool, what every query asks, and the same queries
    without the pool (the lab's lever)."""

    pool: ConnectionPool[DeadlineConnection]
    query: ArchiveQuery
    holders: Holders
    unpooled: ConnectingArchive

    def fetch(self, call: Call, fan_out: FanOut) -> SourceOutcome:
        """One blocking query within the fan-out's deadline; never raises."""
        source = call.source
        started, late = started_with_time_left(fan_out, source)
        if late is not None:
            return late
        try:
            with self.pool.connection(timeout=fan_out.remaining()) as conn:
                waited = time.perf_counter() - started
                with self.holders.holding():
                    rows = query_within(conn, fan_out, self.query)
        except PoolTimeout:
            return self.holders.no_connection(fan_out, source, started)
        except Exception as exc:
            return psycopg_failed(fan_out, source, started, exc)
        return answered(fan_out, source, started, waited, rows, self.query.limit)


@contextmanager
def sync_archive(
    settings: GatewaySettings, gateway: str = "sync", eager: bool = True
) -> Iterator[SyncArchive | None]:
    """The worker's pool, opened in the background (a server that is down delays no start),
    and closed at the end; None when no archive is configured. Not `eager`, it opens a
    connection only when a query waits for one."""
    if settings.archive_url is None:
        yield None
        return
    size = settings.archive_pool_size
    kwargs = {**connect_kwargs(settings, gateway), "autocommit": True}
    pool = ConnectionPool(
        str(settings.archive_url),
        connection_class=DeadlineConnection,
        kwargs={**kwargs, "connect_timeout": CONNECT_TIMEOUT_S},
        min_size=size if eager else 0,
        max_size=size,
        open=False,
        name=f"archive-{gateway}",
        reconnect_timeout=float("inf"),
    )
    pool.open(wait=False)
    try:
        query = ArchiveQuery.of(settings)
        unpooled = ConnectingArchive(str(settings.archive_url), kwargs, query)
        yield SyncArchive(pool, query, Holders(size), unpooled)
    finally:
        pool.close(timeout=1.0)
