"""The post's claims about CPU work and a blocked loop: inline, ``def``, a thread, a
process pool, each beside a fan-out; and a loop blocked past gunicorn's timeout."""

import asyncio
import os
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
import requests

from bench.experiments.claims.lab import Lab, answers_again
from bench.experiments.claims.model import PLACEMENTS, Claim, Claims, Placement
from bench.harness.http import get_json, get_text
from core.theory import cpu_jobs_ideal, cpu_lanes


def loop_lag(base: str) -> tuple[float, float]:
    """The worker's event-loop lag so far: (sum of seconds, count of probes)."""
    text = get_text(f"{base}/metrics")
    found = dict(re.findall(r"^event_loop_lag_seconds_(sum|count) (\S+)$", text, re.M))
    return float(found.get("sum", 0)), float(found.get("count", 0))


@dataclass(frozen=True)
class CpuRun:
    jobs_per_s: float
    fan_out_ms: float  # the median concurrent fan-out
    lag_ms: float  # the mean event-loop lag during the run
    failed_calls: float  # the fan-outs' source calls that failed, a share
    cores: float | None  # the gateway container's CPU time over the run's wall time


async def _cpu_under_load(
    base: str, placement: str, work_ms: float, clients: int, window_s: float, deadline_ms: int
) -> tuple[int, list[float], float]:
    """`clients` loops of CPU jobs and one loop of fan-outs, together for `window_s`."""
    stop = time.perf_counter() + window_s
    jobs, fan_outs, failed, calls = 0, [], 0, 0
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def worker() -> None:
            nonlocal jobs
            while time.perf_counter() < stop:
                async with session.get(f"{base}/cpu/{placement}?work_ms={work_ms}") as r:
                    await r.read()
                    r.raise_for_status()
                jobs += time.perf_counter() < stop

        async def fan_out() -> None:
            nonlocal failed, calls
            await asyncio.sleep(min(0.5, window_s / 4))  # once the jobs are running
            while time.perf_counter() < stop:
                started = time.perf_counter()
                # The longest deadline: the delay shows as latency, not as a cut fan-out.
                async with session.get(f"{base}/news?deadline_ms={deadline_ms}") as r:
                    body = await r.json()
                fan_outs.append((time.perf_counter() - started) * 1000)
                # The gateway's own timeouts run on its loop's clock, so a stalled loop
                # can fail a source that answered in time.
                failed += sum(not source["ok"] for source in body["sources"])
                calls += len(body["sources"])

        await asyncio.gather(fan_out(), *(worker() for _ in range(clients)))
    return jobs, fan_outs, failed / max(calls, 1)


def cpu_run(
    base: str,
    placement: str,
    work_ms: float,
    clients: int,
    window_s: float,
    deadline_ms: int,
    cpu_seconds: Callable[[], float] | None,
) -> CpuRun:
    lag_before = loop_lag(base)
    cpu_before = cpu_seconds() if cpu_seconds else 0.0
    started = time.perf_counter()
    jobs, fan_outs, failed_share = asyncio.run(
        _cpu_under_load(base, placement, work_ms, clients, window_s, deadline_ms)
    )
    took = time.perf_counter() - started
    cpu_after = cpu_seconds() if cpu_seconds else None
    lag_after = loop_lag(base)
    probes = max(lag_after[1] - lag_before[1], 1)
    return CpuRun(
        jobs_per_s=round(jobs / min(took, window_s), 2),
        fan_out_ms=round(statistics.median(fan_outs), 1) if fan_outs else float("nan"),
        lag_ms=round((lag_after[0] - lag_before[0]) * 1000 / probes, 1),
        failed_calls=round(failed_share, 3),
        cores=None if cpu_after is None else round((cpu_after - cpu_before) / took, 2),
    )


@dataclass(frozen=True)
class CpuFindings:
    """Every placement's run beside a fan-out, and what each could do at best."""

    runs: dict[Placement, CpuRun]
    job_ms: float  # one job's cost at rest
    cores: float  # what the container may use
    processes: int  # the process pool's
    longest_ms: float  # the max of the delays: a fan-out's ideal
    work: str  # the load, for the rows

    @property
    def lanes(self) -> dict[Placement, float]:
        return {p: cpu_lanes(p, self.processes, self.cores) for p in PLACEMENTS}

    @property
    def used(self) -> dict[Placement, float]:
        """Cores each placement kept busy: the container's own CPU time where the host can
        read it; else the jobs' calibrated cost."""
        return {
            p: r.cores if r.cores is not None else round(r.jobs_per_s * self.job_ms / 1000, 2)
            for p, r in self.runs.items()
        }

    def ideal_jobs_per_s(self, placement: Placement) -> float:
        return cpu_jobs_ideal(self.job_ms / 1000, self.lanes[placement])

    def figures(self) -> dict[str, Any]:
        return {
            "job_ms": self.job_ms,
            "cores": self.cores,
            "runs": {p: asdict(r) for p, r in self.runs.items()},
            "cores_used": self.used,
            "lanes": self.lanes,
            "ideal_jobs_per_s": {p: round(self.ideal_jobs_per_s(p), 2) for p in PLACEMENTS},
        }

    def seen(self, p: Placement) -> str:
        r, lanes = self.runs[p], self.lanes[p]
        return (
            f"{r.jobs_per_s:.1f} jobs/s of an ideal {self.ideal_jobs_per_s(p):.1f}, the gateway"
            f" busy on {self.used[p]:.2f} of {lanes:g} core(s); a fan-out beside them took"
            f" {r.fan_out_ms:.0f} ms (max of the delays: {self.longest_ms:.0f}), loop lag"
            f" {r.lag_ms:.1f} ms, {r.failed_calls:.0%} of its calls failed"
        )


def cpu_work(lab: Lab, claims: Claims, longest_s: float) -> None:
    preset, base = lab.preset, lab.async_base
    lab.on_step("CPU work: one job's cost at rest")
    info = lab.stack.health("async")
    for _ in range(2):  # start the pool's processes
        get_json(f"{base}/cpu/process?work_ms={preset.work_ms}", timeout=60)
    job_ms = statistics.median(
        get_json(f"{base}/cpu/inline?work_ms={preset.work_ms}")["elapsed_ms"] for _ in range(5)
    )
    runs = {}
    for placement in PLACEMENTS:
        lab.on_step(f"/cpu/{placement}: {preset.cpu_clients} jobs at once, and a fan-out")
        runs[placement] = cpu_run(
            base,
            placement,
            preset.work_ms,
            preset.cpu_clients,
            2 * preset.window_s,
            info.max_deadline_ms,
            lab.gateway_cpu_seconds("async"),
        )
    findings = CpuFindings(
        runs=runs,
        job_ms=job_ms,
        cores=min(float(os.cpu_count() or 1), float(info.cpu_processes)),
        processes=info.cpu_processes,
        longest_ms=longest_s * 1000,
        work=f"{preset.cpu_clients} jobs of {job_ms:.0f} ms at once",
    )
    claims.figures["cpu"] = findings.figures()
    claims.rows += [inline_row(findings), *thread_rows(findings), process_row(findings)]


def inline_row(f: CpuFindings) -> Claim:
    inline_delay = f.runs["inline"].fan_out_ms - f.longest_ms
    process_delay = f.runs["process"].fan_out_ms - f.longest_ms
    return Claim(
        "cpu_inline",
        "keep async def routes lightweight: avoid CPU-heavy work inside async routes",
        "Performance Optimization Tips",
        f"async gateway, /cpu/inline, {f.work}",
        "a concurrent fan-out's latency / max of the delays",
        round(f.runs["inline"].fan_out_ms / f.longest_ms, 2),
        1.0,
        "holds"
        if inline_delay > f.job_ms / 2 and inline_delay > process_delay
        else "does not hold",
        f"{f.seen('inline')}: the loop runs nothing else while a job runs",
        "python -m bench claims",
    )


def thread_rows(f: CpuFindings) -> list[Claim]:
    used, lanes = f.used, f.lanes
    return [
        Claim(
            "cpu_def",
            "use def for pure CPU-bound computations",
            "When It's Better to Use def",
            f"async gateway, def /cpu/def, {f.work}",
            "cores the jobs used / one core (the GIL)",
            used["def"],
            lanes["def"],
            "holds with a limit",
            f"{f.seen('def')}. The loop stays free, but one worker's threads share one GIL:"
            f" one core at most, of the {f.cores:g} the container may use",
            "python -m bench claims",
        ),
        Claim(
            "cpu_thread",
            "offload long-running CPU tasks to threads",
            "Performance Optimization Tips",
            f"async gateway, /cpu/thread (run_in_threadpool), {f.work}",
            "cores the jobs used / one core (the GIL)",
            used["thread"],
            lanes["thread"],
            "holds with a limit",
            f"{f.seen('thread')}. The same as a def route: one core at most",
            "python -m bench claims",
        ),
    ]


def process_row(f: CpuFindings) -> Claim:
    used, lanes = f.used, f.lanes
    return Claim(
        "cpu_process",
        "offload long-running CPU tasks to process pools",
        "Performance Optimization Tips",
        f"async gateway, /cpu/process (a pool of {f.processes}), {f.work}",
        f"cores the jobs used / {lanes['process']:g} (the pool and the container's cores)",
        used["process"],
        lanes["process"],
        "holds" if used["process"] > 1.2 * max(used["def"], used["thread"]) else "does not hold",
        f"{f.seen('process')}. Every core, for the price of a process per core and of"
        " sending each job and its answer between processes",
        "python -m bench claims",
    )


def _blocked_past_timeout(base: str, hold_ms: int) -> tuple[str, float]:
    """What a client sees from /wrong held past the timeout, and after how long.

    One plain request, never repeated: aiohttp, for one, sends a GET again when the
    connection drops, and the repeat blocks (and kills) the next worker too.
    """
    started = time.perf_counter()
    try:
        # requests' adapter retries no read: a dropped connection is raised, not resent.
        requests.get(f"{base}/wrong?ms={hold_ms}", timeout=hold_ms / 1000 + 30)
        seen = "an answer"
    except requests.ConnectionError as exc:
        seen = f"the connection dropped ({type(exc).__name__})"
    return seen, time.perf_counter() - started


def gunicorn_timeout(lab: Lab, claims: Claims) -> None:
    timeout_s = lab.preset.gunicorn_timeout_s
    lab.restart("async", GATEWAY_GUNICORN_TIMEOUT=str(timeout_s))
    try:
        before = get_json(f"{lab.async_base}/wrong?ms=0")["worker_pid"]
        hold_ms = (timeout_s + 6) * 1000
        lab.on_step(f"/wrong?ms={hold_ms} with GUNICORN_TIMEOUT={timeout_s}")
        seen, failed_after = _blocked_past_timeout(lab.async_base, hold_ms)
        back_after = answers_again(f"{lab.async_base}/wrong?ms=0", within_s=60)
        after = get_json(f"{lab.async_base}/wrong?ms=0")["worker_pid"]
    finally:
        lab.restart("async")
    claims.figures["gunicorn_timeout"] = {
        "timeout_s": timeout_s,
        "held_ms": hold_ms,
        "client_saw": seen,
        "failed_after_s": round(failed_after, 2),
        "back_after_s": round(back_after, 2),
        "worker_replaced": before != after,
    }
    # A worker's heartbeat comes every half timeout, and the arbiter checks it every second:
    # a loop blocked right after a heartbeat is killed half a timeout later at the earliest.
    killed = before != after and failed_after < hold_ms / 1000
    claims.rows.append(
        Claim(
            "gunicorn_timeout",
            "(not in the post) /wrong blocked past GUNICORN_TIMEOUT",
            "Common Mistake: Blocking Calls",
            f"async gateway, /wrong?ms={hold_ms}, GATEWAY_GUNICORN_TIMEOUT={timeout_s}",
            "when the request failed / GUNICORN_TIMEOUT (expected: from half the timeout to"
            " the timeout plus the arbiter's 1 s check)",
            round(failed_after / timeout_s, 2),
            1.0,
            "holds" if killed else "does not hold",
            f"the arbiter killed the worker (pid {before} became {after}): the client saw"
            f" {seen} after {failed_after:.1f} s of a {hold_ms / 1000:.0f} s sleep, and a new"
            f" worker answered {back_after:.1f} s later. Every request on that worker is lost",
            "python -m bench claims",
        )
    )
