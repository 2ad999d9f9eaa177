"""The blog post's other examples, as routes on both gateways, so the lab can measure them.

- ``/sync_func`` (``def`` + ``time.sleep``), ``/wrong`` (``async def`` + ``time.sleep``) and
  ``/right`` (``async def`` + ``await asyncio.sleep``): who else a sleeping route lets in.
- ``/fast/def`` and ``/fast/async``: the same trivial answer from a ``def`` and an
  ``async def`` route, for "use ``def`` for fast-return endpoints".
- ``/cpu/{inline,def,thread,process}``: a fixed amount of CPU work, in each place the post
  suggests putting it (``bench claims`` runs them all, docs/results/claims.md).
- ``/background?job=``: the post's "long-running background tasks", a ``BackgroundTasks``
  job that runs once the answer is sent: a ``def`` job holds a threadpool token all the
  while, a blocking call in an ``async def`` job stops the loop, an awaiting one costs
  neither.

The CPU work is a pure-Python loop: it holds the GIL, as most Python CPU work does.
``hashlib`` would not be a fair stand-in: it releases the GIL on large buffers, so threads
would look like they scale.
"""

import asyncio
import multiprocessing
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from gateway.config import GatewaySettings
from observability.metrics import Lifespan
from serving.cores import whole_cores

# Rounds of `burn` in one calibration sample: about 20 ms of a core here.
CALIBRATION_ROUNDS = 200_000
CALIBRATION_SAMPLES = 5


def burn(rounds: int) -> int:
    """`rounds` steps of a linear congruential generator: pure Python, GIL held throughout.

    Returns the pid it ran in."""
    x = 1
    for _ in range(rounds):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return os.getpid()


def calibrate(samples: int = CALIBRATION_SAMPLES, rounds: int = CALIBRATION_ROUNDS) -> float:
    """Rounds of `burn` per millisecond of this process's own CPU time.

    Process CPU time, not the wall clock, so a busy neighbour at start-up does not make
    every later job shorter. The fastest sample wins: anything else only adds time.
    """
    best = float("inf")
    for _ in range(samples):
        started = time.process_time()
        burn(rounds)
        best = min(best, time.process_time() - started)
    return rounds / max(best * 1000, 1e-6)


@dataclass(frozen=True, slots=True)
class CpuWork:
    """This worker's CPU work: how many rounds make a millisecond, and where to run them."""

    rounds_per_ms: float
    processes: ProcessPoolExecutor
    process_count: int

    def rounds(self, work_ms: float) -> int:
        return max(1, round(work_ms * self.rounds_per_ms))


@asynccontextmanager
async def cpu_work() -> AsyncIterator[CpuWork]:
    """Calibrated once per worker, at start; the process pool is closed on shutdown."""
    # Processes for /cpu/process: one per core the container may use, started on first
    # use. forkserver, not fork: a forked copy of a threaded worker can inherit a held lock.
    count = whole_cores()
    pool = ProcessPoolExecutor(
        max_workers=count, mp_context=multiprocessing.get_context("forkserver")
    )
    try:
        yield CpuWork(calibrate(), pool, count)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class Slept(BaseModel):
    route: str
    slept_ms: int
    # The sleep's own start and end on the wall clock (Unix seconds): who overlapped whom.
    started_at: float
    ended_at: float
    worker_pid: int


# A background job: `def` runs on the threadpool, `blocking` is `async def` with time.sleep,
# `async` awaits asyncio.sleep.
JobKind = Literal["def", "blocking", "async"]


def sleeping_job(ms: int) -> None:
    """A `def` job: Starlette runs it on the threadpool, holding one of its tokens."""
    time.sleep(ms / 1000)


async def blocking_job(ms: int) -> None:
    """An `async def` job with a blocking call: the event loop runs nothing else."""
    time.sleep(ms / 1000)


async def awaiting_job(ms: int) -> None:
    """An `async def` job that awaits: the loop is free while it waits."""
    await asyncio.sleep(ms / 1000)


JOBS = {"def": sleeping_job, "blocking": blocking_job, "async": awaiting_job}


class Queued(BaseModel):
    job: JobKind
    ms: int
    worker_pid: int


class Worked(BaseModel):
    placement: str
    work_ms: float
    rounds: int
    # Wall time of the work alone, where it ran: more than work_ms when it waited for the
    # GIL or for a free process.
    elapsed_ms: float
    worker_pid: int
    # The process the work ran in: the worker's own, or one of the pool's.
    ran_in_pid: int


def blog_router(settings: GatewaySettings) -> APIRouter:
    """The routes, with their bounds from the settings."""
    router = APIRouter(tags=["the blog post's examples"])
    max_ms = settings.max_hold_ms
    SleepMs = Annotated[
        int, Query(ge=0, le=max_ms, description=f"How long to sleep; at most {max_ms}.")
    ]
    WorkMs = Annotated[
        float,
        Query(gt=0, le=max_ms, description=f"CPU time to spend, ms; at most {max_ms}."),
    ]

    @router.get("/sync_func")
    def sync_func(ms: SleepMs = 1000) -> Slept:
        """The post's `/sync_func`: `time.sleep` in a `def` route. It blocks one of the
        threadpool's threads, not the event loop: 40 of them sleep at once."""
        started = time.time()
        time.sleep(ms / 1000)
        return _slept("sync_func", ms, started)

    @router.get("/wrong")
    async def wrong(ms: SleepMs = 1000) -> Slept:
        """The post's `/wrong`: `time.sleep` in an `async def` route stops the event loop.
        Past GUNICORN_TIMEOUT, gunicorn kills the worker."""
        started = time.time()
        time.sleep(ms / 1000)
        return _slept("wrong", ms, started)

    @router.get("/right")
    async def right(ms: SleepMs = 1000) -> Slept:
        """The post's `/right1` and `/async_func`: `await asyncio.sleep`."""
        started = time.time()
        await asyncio.sleep(ms / 1000)
        return _slept("right", ms, started)

    @router.get("/background")
    async def background(
        tasks: BackgroundTasks,
        job: Annotated[JobKind, Query(description="def, blocking (async def) or async.")],
        ms: SleepMs = 1000,
    ) -> Queued:
        """The post's "long-running background tasks": a job that sleeps `ms` once this
        answer is sent. What it holds meanwhile depends on how it is written."""
        tasks.add_task(JOBS[job], ms)
        return Queued(job=job, ms=ms, worker_pid=os.getpid())

    @router.get("/fast/def")
    def fast_def() -> dict[str, bool]:
        """A fast-return endpoint as a `def` route: it costs a trip to the threadpool."""
        return {"ok": True}

    @router.get("/fast/async")
    async def fast_async() -> dict[str, bool]:
        """The same endpoint as an `async def` route: it runs on the event loop."""
        return {"ok": True}

    @router.get("/cpu/inline")
    async def cpu_inline(work: Work, work_ms: WorkMs = 50) -> Worked:
        """CPU work inside `async def`: the event loop waits until it ends."""
        return _worked("inline", work_ms, work)

    @router.get("/cpu/def")
    def cpu_def(work: Work, work_ms: WorkMs = 50) -> Worked:
        """CPU work in a `def` route: on the threadpool, the loop stays free, but the
        GIL lets one thread run Python at a time."""
        return _worked("def", work_ms, work)

    @router.get("/cpu/thread")
    async def cpu_thread(work: Work, work_ms: WorkMs = 50) -> Worked:
        """`async def` that hands the work to the threadpool: what a `def` route does."""
        rounds, started = work.rounds(work_ms), time.perf_counter()
        ran_in = await run_in_threadpool(burn, rounds)
        return _result("thread", work_ms, rounds, started, ran_in)

    @router.get("/cpu/process")
    async def cpu_process(work: Work, work_ms: WorkMs = 50) -> Worked:
        """`async def` that hands the work to a process pool: every core, for the price
        of sending the job and its answer between processes."""
        rounds, started = work.rounds(work_ms), time.perf_counter()
        ran_in = await asyncio.get_running_loop().run_in_executor(work.processes, burn, rounds)
        return _result("process", work_ms, rounds, started, ran_in)

    return router


async def cpu_work_of(request: Request) -> CpuWork:
    work: CpuWork = request.state.cpu_work
    return work


Work = Annotated[CpuWork, Depends(cpu_work_of)]


def _worked(placement: str, work_ms: float, work: CpuWork) -> Worked:
    """Run the work right here, on whichever thread called."""
    rounds, started = work.rounds(work_ms), time.perf_counter()
    ran_in = burn(rounds)
    return _result(placement, work_ms, rounds, started, ran_in)


def _slept(route: str, ms: int, started: float) -> Slept:
    ended = time.time()
    return Slept(
        route=route, slept_ms=ms, started_at=started, ended_at=ended, worker_pid=os.getpid()
    )


def _result(placement: str, work_ms: float, rounds: int, started: float, ran_in: int) -> Worked:
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    return Worked(
        placement=placement,
        work_ms=work_ms,
        rounds=rounds,
        elapsed_ms=elapsed_ms,
        worker_pid=os.getpid(),
        ran_in_pid=ran_in,
    )


def with_calibrated_cpu_work(lifespan: Lifespan) -> Lifespan:
    """The gateway's lifespan, with this worker's `CpuWork` in its state."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with cpu_work() as work, lifespan(app) as state:
            yield {**(state or {}), "cpu_work": work}

    return run
