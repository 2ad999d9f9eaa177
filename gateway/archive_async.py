"""The async gateway's archive: asyncpg's pool (the default), or psycopg's
AsyncConnectionPool, from `async def` routes (gateway/archive.py says how each query keeps
to the deadline)."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import psycopg
import psycopg.errors
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from gateway.archive import (
    ASYNCPG_QUERY,
    ASYNCPG_SET_TIMEOUT,
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
from gateway.archive_sync import CONNECT_TIMEOUT_S, psycopg_failed, wait_timeout
from gateway.calls import Call
from gateway.config import GatewaySettings
from gateway.fanout import FanOut, SourceOutcome
from gateway.sources import Source

logger = logging.getLogger(__name__)


class AsyncArchive(Protocol):
    @property
    def driver(self) -> str: ...

    async def fetch(self, call: Call, fan_out: FanOut) -> SourceOutcome: ...


@dataclass(frozen=True, slots=True)
class AsyncpgArchive:
    """A worker's archive queries through asyncpg's pool."""

    pool: asyncpg.Pool
    query: ArchiveQuery
    holders: Holders
    driver: str = "asyncpg"

    async def fetch(self, call: Call, fan_out: FanOut) -> SourceOutcome:
        """One awaited query within the fan-out's deadline; never raises: whatever the
        driver raises, on the query or on the connection's way back to the pool, is the
        archive's failure."""
        source = call.source
        started, late = started_with_time_left(fan_out, source)
        if late is not None:
            return late
        try:
            return await self._fetch(source, started, fan_out)
        except Exception as exc:
            logger.warning("archive: unexpected %r", exc, exc_info=exc)
            return database_failed(fan_out, source, started, exc, _sqlstate(exc))

    async def _fetch(self, source: Source, started: float, fan_out: FanOut) -> SourceOutcome:
        try:
            conn = await self.pool.acquire(timeout=fan_out.remaining())
            waited = time.perf_counter() - started
        except TimeoutError:
            return self.holders.no_connection(fan_out, source, started)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            return database_failed(fan_out, source, started, exc, _sqlstate(exc))
        try:
            with self.holders.holding():
                rows = await self._query(conn, fan_out)
        except TimeoutError:
            # asyncpg would cancel through a new connection and hold this one until the
            # server answers: a paused one never does. Closed now, the pool replaces it.
            conn.terminate()
            return no_answer(fan_out, source, started)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            return database_failed(fan_out, source, started, exc, _sqlstate(exc))
        finally:
            await self._release(conn, fan_out)
        return answered(fan_out, source, started, waited, map(dict, rows), self.query.limit)

    async def _release(self, conn: Any, fan_out: FanOut) -> None:
        """The connection back to the pool, which resets it with a round trip: within what
        remains of the deadline, or closed (the pool replaces it). A busy machine took
        more than 50 ms for a reset under load, and that timeout was a 500."""
        try:
            await self.pool.release(conn, timeout=max(fan_out.remaining(), CANCEL_GRACE_S))
        except Exception:
            conn.terminate()

    async def _query(self, conn: Any, fan_out: FanOut) -> list[Any]:
        remaining = fan_out.remaining()
        async with asyncio.timeout(remaining + CANCEL_GRACE_S):
            await conn.execute(ASYNCPG_SET_TIMEOUT, ArchiveQuery.timeout_ms(remaining))
            rows: list[Any] = await conn.fetch(ASYNCPG_QUERY, self.query.pause_s, self.query.limit)
            return rows


def _sqlstate(exc: BaseException) -> str | None:
    return getattr(exc, "sqlstate", None)


class AsyncDeadlineConnection(psycopg.AsyncConnection[Any]):
    """psycopg's async connection, whose every wait on the server ends by `deadline` when
    one is set: past it, the connection is closed and the pool replaces it. A cancelled
    task would instead ask the server to cancel, and wait up to 5 s for its answer."""

    deadline: float | None = None

    async def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        if self.deadline is None:
            return await super().wait(gen, interval, timeout)
        try:
            return await super().wait(gen, interval, wait_timeout(self.deadline, timeout))
        except psycopg.errors._WaitTimeout:
            await self.close()
            raise


@dataclass(frozen=True, slots=True)
class PsycopgAsyncArchive:
    """A worker's archive queries through psycopg's AsyncConnectionPool."""

    pool: AsyncConnectionPool[AsyncDeadlineConnection]
    query: ArchiveQuery
    holders: Holders
    driver: str = "psycopg"

    async def fetch(self, call: Call, fan_out: FanOut) -> SourceOutcome:
        """One awaited query within the fan-out's deadline; never raises."""
        source = call.source
        started, late = started_with_time_left(fan_out, source)
        if late is not None:
            return late
        try:
            async with self.pool.connection(timeout=fan_out.remaining()) as conn:
                waited = time.perf_counter() - started
                with self.holders.holding():
                    rows = await self._query(conn, fan_out)
        except PoolTimeout:
            return self.holders.no_connection(fan_out, source, started)
        except Exception as exc:
            return psycopg_failed(fan_out, source, started, exc)
        return answered(fan_out, source, started, waited, rows, self.query.limit)

    async def _query(self, conn: AsyncDeadlineConnection, fan_out: FanOut) -> list[Any]:
        remaining = fan_out.remaining()
        conn.deadline = fan_out.deadline + CANCEL_GRACE_S
        try:
            async with conn.cursor(row_factory=dict_row) as cursor:
                await cursor.execute(PSYCOPG_SET_TIMEOUT, [ArchiveQuery.timeout_ms(remaining)])
                await cursor.execute(PSYCOPG_QUERY, [self.query.pause_s, self.query.limit])
                return await cursor.fetchmany(self.query.limit + 1)
        finally:
            conn.deadline = None


@asynccontextmanager
async def async_archive(settings: GatewaySettings) -> AsyncIterator[AsyncArchive | None]:
    """The worker's pool for the driver the settings name, on this worker's event loop;
    None when no archive is configured. Neither pool connects before it starts serving, so
    a server that is down delays no start."""
    if settings.archive_url is None:
        yield None
        return
    size, query = settings.archive_pool_size, ArchiveQuery.of(settings)
    kwargs = connect_kwargs(settings, "async")
    if settings.archive_driver == "asyncpg":
        pool = asyncpg.create_pool(
            str(settings.archive_url),
            password=kwargs["password"],
            server_settings={"application_name": kwargs["application_name"]},
            min_size=0,
            max_size=size,
            timeout=CONNECT_TIMEOUT_S,
            command_timeout=None,
        )
        async with pool:
            yield AsyncpgArchive(pool, query, Holders(size))
        return
    psycopg_pool = AsyncConnectionPool(
        str(settings.archive_url),
        connection_class=AsyncDeadlineConnection,
        kwargs={**kwargs, "autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
        min_size=size,
        max_size=size,
        open=False,
        name="archive-async",
        reconnect_timeout=float("inf"),
    )
    await psycopg_pool.open(wait=False)
    try:
        yield PsycopgAsyncArchive(psycopg_pool, query, Holders(size))
    finally:
        await psycopg_pool.close(timeout=1.0)
