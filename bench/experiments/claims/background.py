"""The post's "long-running background tasks" want ``async def``: what a ``BackgroundTasks``
job holds once its answer is sent, seen by a fan-out sent while it runs."""

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from bench.experiments.claims.lab import Lab, alone_ms, wait_until_settled
from bench.experiments.claims.model import Claim, Claims
from bench.harness.http import get_json
from bench.harness.stack import GatewayName

# Each job sleeps this long after its answer: long against a fan-out's noise.
JOB_MS = 1000
REPEATS = 3


@dataclass(frozen=True)
class Delay:
    """A fan-out sent while jobs ran: how much later it answered than one alone, over how
    long the first job still had to run when the fan-out was sent."""

    job: str
    jobs: int
    extra_ms: float
    job_left_ms: float

    @property
    def share(self) -> float:
        return self.extra_ms / max(self.job_left_ms, 1.0)


async def _queue_jobs(url: str, count: int) -> float:
    """`count` jobs queued together; when the first answer came (perf_counter)."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        answered: list[float] = []

        async def one() -> None:
            async with session.get(url) as response:
                response.raise_for_status()
                await response.read()
                answered.append(time.perf_counter())

        await asyncio.gather(*(one() for _ in range(count)))
    return min(answered)


def fan_out_beside(base: str, job: str, jobs: int, alone: float) -> Delay:
    """One fan-out sent once `jobs` jobs were queued; the jobs are over when it returns."""
    wait_until_settled(base)
    first = asyncio.run(_queue_jobs(f"{base}/background?job={job}&ms={JOB_MS}", jobs))
    sent = time.perf_counter()
    get_json(f"{base}/news", timeout=60)
    took = (time.perf_counter() - sent) * 1000
    left = JOB_MS - (sent - first) * 1000
    # Whatever the fan-out waited for, every job has ended a little after this.
    time.sleep(max(0.0, (JOB_MS - (time.perf_counter() - first) * 1000) / 1000) + 0.2)
    return Delay(job, jobs, round(took - alone, 1), round(left, 1))


def median_delay(base: str, job: str, jobs: int, alone: float) -> Delay:
    runs = [fan_out_beside(base, job, jobs, alone) for _ in range(REPEATS)]
    return sorted(runs, key=lambda run: run.share)[len(runs) // 2]


def background(lab: Lab, claims: Claims) -> None:
    lab.on_step("/background: jobs after the answer, and a fan-out beside them")
    tokens = lab.stack.health("sync").threadpool_tokens
    bases: dict[GatewayName, str] = {"sync": lab.sync_base, "async": lab.async_base}
    alone = {gateway: alone_ms(f"{base}/news", repeats=3) for gateway, base in bases.items()}
    # Every token taken by a def job, against as many awaiting ones.
    held = median_delay(bases["sync"], "def", tokens, alone["sync"])
    held_control = median_delay(bases["sync"], "async", tokens, alone["sync"])
    # One blocking job in async def, against one that awaits.
    stalled = median_delay(bases["async"], "blocking", 1, alone["async"])
    stalled_control = median_delay(bases["async"], "async", 1, alone["async"])
    claims.figures["background"] = {
        "job_ms": JOB_MS,
        "alone_ms": {gateway: round(ms, 1) for gateway, ms in alone.items()},
        "runs": [vars(d) for d in (held, held_control, stalled, stalled_control)],
    }
    claims.rows += [
        def_job_row(held, held_control, tokens),
        blocking_job_row(stalled, stalled_control),
    ]


def _delay_text(delay: Delay) -> str:
    jobs = f"{delay.jobs} {delay.job} job{'s' if delay.jobs > 1 else ''}"
    return (
        f"beside {jobs}, a fan-out took {delay.extra_ms:+.0f} ms against one alone, with"
        f" {delay.job_left_ms:.0f} ms of the first job left ({delay.share:.2f})"
    )


def job_row(
    key: str, quote: str, where: str, control_name: str, waited: Delay, control: Delay, why: str
) -> Claim:
    """A fan-out held up by a job (most of the job's time left) against its control, a job
    that awaits (next to nothing)."""
    holds = waited.share >= 0.5 and control.share < 0.2
    return Claim(
        key,
        quote,
        "When You Must Use async def",
        where,
        f"the fan-out's extra latency / the job's time left ({control_name}: 0)",
        round(waited.share, 2),
        1.0,
        "holds" if holds else "does not hold",
        f"{_delay_text(waited)}; {_delay_text(control)}. {why}",
        "python -m bench claims",
    )


def def_job_row(held: Delay, control: Delay, tokens: int) -> Claim:
    return job_row(
        "background_def",
        "use async def for long-running background tasks",
        f"sync gateway, {tokens} x /background?job=def&ms={JOB_MS} (every token), then a"
        " def /news fan-out",
        "async def jobs",
        held,
        control,
        "Starlette runs a def job on the threadpool after the answer is sent, and it holds"
        " a token until it ends: with every token taken, each def route waits for one",
    )


def blocking_job_row(stalled: Delay, control: Delay) -> Claim:
    return job_row(
        "background_blocking",
        "(not in the post) a blocking call in an async def background job stops the loop",
        f"async gateway, one /background?job=blocking&ms={JOB_MS} (time.sleep in async def),"
        " then a fan-out",
        "an awaiting job",
        stalled,
        control,
        "The job runs on the event loop after the answer; a blocking call there stops every"
        " request on the worker, as /wrong does",
    )
