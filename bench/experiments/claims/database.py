"""The post's database advice, on the archive (PostgreSQL, gateway/archive.py): a sync
driver in `def`, the same driver on the event loop, a pool smaller than the threadpool under
Poisson arrivals, and asyncpg against psycopg's async pool."""

import asyncio
import statistics
import time
from dataclasses import dataclass

import aiohttp

from bench.experiments.claims.fan_out import burst_ratios, priced
from bench.experiments.claims.lab import Lab, alone_ms, wait_until_settled
from bench.experiments.claims.model import Claim, Claims, Point
from bench.harness.database import DatabaseProbe
from bench.harness.load import LoadSpec, open_loop_schedule, run_load
from core.theory import burst_ideal, mdc_wait, mean_wait_spread, replay_fifo_wait

ARCHIVE = "sources=archive"
# Bursts of archive fan-outs on the sync gateway: below, at and past min(tokens, pool).
DEF_AT_ONCE = (5, 10, 20, 40)
# The same queries on the event loop (psycopg's blocking pool in async def) run one at a
# time: a few, to keep each burst within a few seconds.
LOOP_AT_ONCE = (2, 4, 6)
# The pool's queue at this share of what `pool` connections serve: a wait large enough to
# rate (theory's mean is 33 ms at 10 connections and 300 ms), far from saturation.
POOL_RHO = 0.8
# The sweep's acceptance (docs/benchmark.md): the measured mean wait within this of the
# replayed queue's, and inside theory's range for the run's length.
REPLAY_TOLERANCE, REPLAY_SLACK_S = 0.30, 0.005
# The drivers' comparison, and the pool's against a connection per query: as many clients
# as the pool has connections, none waiting for one.
DRIVER_CLIENTS = 10
COMMAND = "python -m bench claims"


@dataclass(frozen=True)
class Connecting:
    """One way of connecting, priced: the gateway's CPU per answer (its window), and where
    the server can be read, its CPU and the sessions it opened per answer (the whole run,
    warm-up and drain included, less what it spends at rest)."""

    point: Point
    db_cpu_ms: float | None
    sessions: float | None


@dataclass(frozen=True)
class PoolWait:
    """A Poisson run on the sync gateway's archive: the wait for a pooled connection, as
    the gateway measured it, against M/D/c with c = the pool and a replayed FIFO queue."""

    pool: int
    tokens: int
    rate: float
    window_s: float
    answered: int
    service_ms: float
    measured_ms: float
    replayed_ms: float
    theory_ms: float
    spread_ms: tuple[float, float]

    @property
    def replay_ratio(self) -> float:
        return self.measured_ms / max(self.replayed_ms, 0.001)

    @property
    def accepted(self) -> bool:
        close = abs(self.measured_ms - self.replayed_ms) <= (
            REPLAY_TOLERANCE * self.replayed_ms + REPLAY_SLACK_S * 1000
        )
        low, high = self.spread_ms
        return close and low <= self.measured_ms <= high


def database(lab: Lab, claims: Claims) -> None:
    lab.on_step("the archive: def with a sync driver, the loop blocked, the pool's queue")
    health = lab.stack.health("sync")
    tokens, pool = health.threadpool_tokens, health.archive_pool_size
    lanes = min(tokens, pool)
    def_ratios = burst_ratios(f"{lab.sync_base}/news?{ARCHIVE}", DEF_AT_ONCE)
    loop_ratios = burst_ratios(f"{lab.async_base}/news/blocking?{ARCHIVE}", LOOP_AT_ONCE)
    biggest = max(LOOP_AT_ONCE)
    beside = {
        path: fan_out_beside(lab.async_base, path, biggest)
        for path in (f"/news/blocking?{ARCHIVE}", f"/news?{ARCHIVE}")
    }
    waited = pool_wait(lab, pool, tokens)
    connecting = {way: connecting_cost(lab, way) for way in ("pool", "new")}
    drivers = driver_cpu(lab)
    claims.figures["database"] = {
        "tokens": tokens,
        "pool": pool,
        "def": {str(k): v for k, v in def_ratios.items()},
        "def_ideal": {str(k): burst_ideal(k, lanes) for k in DEF_AT_ONCE},
        "loop": {str(k): v for k, v in loop_ratios.items()},
        "beside_extra_ms": {path: round(ms, 1) for path, ms in beside.items()},
        "pool_wait": {**vars(waited), "replay_ratio": round(waited.replay_ratio, 3)},
        "drivers": {driver: vars(point) for driver, point in drivers.items()},
        "connecting": {
            way: {**vars(c.point), "db_cpu_ms": c.db_cpu_ms, "sessions": c.sessions}
            for way, c in connecting.items()
        },
    }
    claims.rows += [
        def_row(def_ratios, tokens, pool),
        loop_row(loop_ratios, beside),
        pool_row(waited),
        pooling_row(connecting),
        driver_row(drivers),
    ]


def def_row(ratios: dict[int, float], tokens: int, pool: int) -> Claim:
    lanes = min(tokens, pool)
    biggest = max(ratios)
    within = all(ratios[k] < 1.5 for k in ratios if k <= lanes)
    queued = all(
        0.8 * burst_ideal(k, lanes) <= ratios[k] <= 1.3 * burst_ideal(k, lanes)
        for k in ratios
        if k > lanes
    )
    text = "; ".join(
        f"{k} at once: {r:.2f}x one alone (ideal {burst_ideal(k, lanes):g})"
        for k, r in ratios.items()
    )
    return Claim(
        "db_def",
        "use def routes when using synchronous database drivers",
        "When to Use def",
        f"sync gateway, def /news?{ARCHIVE}: psycopg's ConnectionPool, {pool} connections,"
        f" {tokens} tokens, one worker",
        f"{biggest} at once / one alone (ideal: ceil(K / min({tokens} tokens, {pool} pool)))",
        ratios[biggest],
        burst_ideal(biggest, lanes),
        "holds with a limit" if within and queued else "does not hold",
        f"{text}. The queries overlap on the threadpool up to the pool's {pool}"
        " connections; past them each waits for a connection, so the pool, not the"
        f" {tokens} tokens, is the limit",
        COMMAND,
    )


def loop_row(ratios: dict[int, float], beside: dict[str, float]) -> Claim:
    biggest = max(ratios)
    blocked, awaited = beside.values()
    text = "; ".join(f"{k} at once: {r:.2f}x" for k, r in ratios.items())
    holds = all(ratios[k] >= 0.8 * k for k in ratios) and blocked > awaited + 200
    return Claim(
        "db_wrong",
        "a synchronous database driver in async def blocks the entire event loop",
        "Common Mistake: Blocking Calls",
        f"async gateway, async def /news/blocking?{ARCHIVE}: psycopg's blocking pool on the"
        " loop, one worker",
        f"{biggest} at once / one alone (ideal: K)",
        ratios[biggest],
        float(biggest),
        "holds" if holds else "does not hold",
        f"{text}: one at a time. An HTTP fan-out sent 50 ms into {biggest} of them answered"
        f" {blocked:+.0f} ms late against one alone; beside {biggest} awaited asyncpg"
        f" queries, {awaited:+.0f} ms: the loop lag is the blocking driver's",
        COMMAND,
    )


def pool_row(waited: PoolWait) -> Claim:
    low, high = waited.spread_ms
    return Claim(
        "db_pool_wait",
        "use database connection pooling (a pool smaller than the threadpool queues)",
        "Best Practices",
        f"sync gateway, def /news?{ARCHIVE}, {waited.tokens} tokens, a pool of {waited.pool},"
        f" Poisson arrivals at {POOL_RHO:g} of {waited.pool} / service",
        "mean wait for a connection / the replayed FIFO queue's (ideal: 1)",
        round(waited.replay_ratio, 2),
        1.0,
        "holds" if waited.accepted else "does not hold",
        f"{waited.answered} answers at {waited.rate:.1f}/s over {waited.window_s:g} s, each"
        f" query {waited.service_ms:.0f} ms: they waited {waited.measured_ms:.1f} ms for a"
        f" connection on average; the same arrivals replayed through an ideal queue of"
        f" {waited.pool} servers wait {waited.replayed_ms:.1f} ms, M/D/{waited.pool}"
        f" {waited.theory_ms:.1f} ms (95% of runs this long: {low:.1f} to {high:.1f}). The"
        f" {waited.tokens} tokens never bind: the pool is the queue's servers",
        COMMAND,
    )


def pooling_row(ways: dict[str, Connecting]) -> Claim:
    pooled, new = ways["pool"], ways["new"]

    def total(way: Connecting) -> float | None:
        gateway, db = way.point.cpu_ms, way.db_cpu_ms
        return None if gateway is None or db is None else gateway + db

    measured = None
    if (pooled_ms := total(pooled)) is not None and (new_ms := total(new)) is not None:
        measured = round(new_ms / pooled_ms, 2)
    opens = new.sessions is not None and new.sessions >= 0.9 and (pooled.sessions or 0) < 0.1

    def said(name: str, way: Connecting) -> str:
        return (
            f"{name}: gateway {way.point.cpu_ms} ms and PostgreSQL {way.db_cpu_ms} ms of CPU"
            f" per query, {way.sessions} sessions opened per query, p50 {way.point.p50_ms} ms"
        )

    return Claim(
        "db_pooling",
        "use database connection pooling",
        "Best Practices",
        f"sync gateway, def /news?{ARCHIVE}, C={DRIVER_CLIENTS}: psycopg's pool against a new"
        " connection per query (?archive_connection=new)",
        "CPU per query, gateway and PostgreSQL, a connection per query / the pool",
        measured,
        1.0,
        priced(measured, measured is not None and measured > 1.0 and opens),
        f"{said('pool', pooled)}; {said('a connection per query', new)}. Each new"
        " connection is a backend process forked, authenticated (SCRAM) and torn down",
        COMMAND,
    )


def connecting_cost(lab: Lab, way: str, rest_s: float = 3.0) -> Connecting:
    """The sync gateway's archive queries through its pool, or a new connection each."""
    db = lab.stack.database()
    base = lab.sync_base
    wait_until_settled(base)
    at_rest = _db_rate(db, rest_s) if db is not None else 0.0
    before = _db_reading(db)
    started = time.perf_counter()
    spec = LoadSpec(
        url=f"{base}/news",
        params={"sources": "archive", "archive_connection": way},
        concurrency=DRIVER_CLIENTS,
        duration_s=lab.preset.window_s,
        warmup_s=lab.preset.warmup_s,
        timeout_s=60,
        drain_s=15,
        keep_answers=True,
    )
    result, cost = lab.stack.measure("sync", spec)
    point = Point.of(result, cost, lab.idle_opens_per_s)
    after, took = _db_reading(db), time.perf_counter() - started
    if db is None or before is None or after is None or not result.answers:
        return Connecting(point, None, None)
    answers = len(result.answers)
    cpu = (after[0] - before[0] - at_rest * took) / answers
    return Connecting(point, round(cpu * 1000, 3), round((after[1] - before[1]) / answers, 3))


def _db_reading(db: DatabaseProbe | None) -> tuple[float, int] | None:
    return None if db is None else (db.cpu_seconds(), db.sessions())


def _db_rate(db: DatabaseProbe, seconds: float) -> float:
    """The server's CPU per second at rest: its healthchecks, its own processes."""
    first = db.cpu_seconds()
    time.sleep(seconds)
    return (db.cpu_seconds() - first) / seconds


def driver_row(points: dict[str, Point]) -> Claim:
    asyncpg, psycopg = points["asyncpg"].cpu_ms, points["psycopg"].cpu_ms
    measured = None if asyncpg is None or psycopg is None else round(asyncpg / psycopg, 2)
    cpu = "; ".join(f"{name} {p.cpu_ms} ms, p50 {p.p50_ms} ms" for name, p in points.items())
    return Claim(
        "db_async_driver",
        "async def suits DB queries with a real async driver (e.g. asyncpg)",
        "When to Use async def",
        f"async gateway, async def /news?{ARCHIVE}, C={DRIVER_CLIENTS}: asyncpg's pool"
        " against psycopg's AsyncConnectionPool",
        "gateway CPU per query, asyncpg / psycopg",
        measured,
        1.0,
        priced(measured, measured is not None and measured <= 1.0),
        f"CPU per answer: {cpu}. Both overlap every query; asyncpg, the post's example,"
        " is the default (ASYNC_ARCHIVE_DRIVER)",
        COMMAND,
    )


async def _beside(base: str, path: str, at_once: int) -> float:
    """A fan-out's latency, sent 50 ms after `at_once` requests to `path`."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(url: str) -> None:
            async with session.get(url) as response:
                await response.read()
                response.raise_for_status()

        held = [asyncio.ensure_future(one(f"{base}{path}")) for _ in range(at_once)]
        await asyncio.sleep(0.05)
        sent = time.perf_counter()
        await one(f"{base}/news")
        took = time.perf_counter() - sent
        await asyncio.gather(*held)
        return took


def fan_out_beside(base: str, path: str, at_once: int) -> float:
    """How much later than one alone an HTTP fan-out answered beside `path`'s requests."""
    wait_until_settled(base)
    alone = alone_ms(f"{base}/news", repeats=3)
    return asyncio.run(_beside(base, path, at_once)) * 1000 - alone


def pool_wait(lab: Lab, pool: int, tokens: int) -> PoolWait:
    """Poisson arrivals at POOL_RHO of the pool's capacity; each answer's wait for a pooled
    connection is the gateway's own (`waited_ms`)."""
    base = lab.sync_base
    service_s = alone_ms(f"{base}/news", sources="archive") / 1000
    rate = POOL_RHO * pool / service_s
    spec = LoadSpec(
        url=f"{base}/news",
        params={"sources": "archive"},
        loop="open",
        concurrency=5000,
        rate=rate,
        duration_s=lab.preset.db_window_s,
        warmup_s=5.0,
        timeout_s=30.0,
        drain_s=30.0,
        arrivals="poisson",
        seed=0,
        keep_answers=True,
    )
    wait_until_settled(base)
    result = run_load(spec)
    answers = sorted(result.answers, key=lambda answer: answer.intended)
    start, end = result.window_start, result.window_start + spec.duration_s
    kept = [i for i, answer in enumerate(answers) if start <= answer.intended < end]
    services = [answer.fan_out_s - answer.pool_wait_s for answer in answers]
    replayed = replay_fifo_wait([a.intended for a in answers], services, pool)
    service_mean = statistics.fmean(services[i] for i in kept)
    spread = mean_wait_spread(pool, rate, service_mean, spec.warmup_s, spec.duration_s)
    due = sum(
        spec.warmup_s <= t
        for t in open_loop_schedule(rate, spec.warmup_s + spec.duration_s, "poisson", 0)
    )
    if len(kept) < 0.95 * due:
        raise RuntimeError(f"the pool's run answered {len(kept)} of {due} due in its window")
    return PoolWait(
        pool=pool,
        tokens=tokens,
        rate=round(rate, 2),
        window_s=spec.duration_s,
        answered=len(kept),
        service_ms=round(service_mean * 1000, 1),
        measured_ms=round(statistics.fmean(answers[i].pool_wait_s for i in kept) * 1000, 2),
        replayed_ms=round(statistics.fmean(replayed[i] for i in kept) * 1000, 2),
        theory_ms=round(mdc_wait(pool, rate, service_mean).mean_s * 1000, 2),
        spread_ms=(round(spread[0] * 1000, 2), round(spread[1] * 1000, 2)),
    )


def driver_cpu(lab: Lab) -> dict[str, Point]:
    """The async gateway's CPU per archive query on each driver, the same load, one run;
    then the driver it ran before."""
    running = lab.stack.health("async").archive_driver or "asyncpg"
    points = {}
    for driver in ("asyncpg", "psycopg"):
        if driver != running:
            lab.restart("async", ASYNC_ARCHIVE_DRIVER=driver)
        _, points[driver] = lab.load("async", "/news", DRIVER_CLIENTS, sources="archive")
        if driver != running:
            lab.restart("async", ASYNC_ARCHIVE_DRIVER=running)
    return points
