"""The post's claims about waiting on sources and sleeps: sum against max, sleeps in
``def`` and in ``async def``, a client per call against a shared one, fast routes, and
requests against httpx."""

import asyncio
import statistics
import time
from dataclasses import asdict

import aiohttp
import httpx

from bench.experiments.claims.lab import Lab, alone_ms
from bench.experiments.claims.model import (
    SYNC_FUNC_MS,
    WRONG_MS,
    Claim,
    Claims,
    Point,
    SyncClient,
    Verdict,
)
from core.theory import burst_ideal


def priced(measured: float | None, holds: bool) -> Verdict:
    """A verdict on a figure only a probe gives (CPU, connections): none without one."""
    if measured is None:
        return "not measured"
    return "holds" if holds else "does not hold"


def fan_out_lessons(lab: Lab, claims: Claims, delays_s: list[float]) -> None:
    lab.on_step("the first two lessons: sum and max")
    total, longest = sum(delays_s) * 1000, max(delays_s) * 1000
    sync_ms = alone_ms(f"{lab.sync_base}/news")
    async_ms = alone_ms(f"{lab.async_base}/news")
    claims.figures["fan_out"] = {"sync_ms": round(sync_ms, 1), "async_ms": round(async_ms, 1)}
    command = "python -m bench claims"
    claims.rows += [
        Claim(
            "sync_sum",
            "/sync-news: the calls run one after another, total = the sum",
            "Sync vs Async in FastAPI: Key Differences",
            "sync gateway, def /news, requests",
            "latency at C=1 / sum of the delays",
            round(sync_ms / total, 2),
            1.0,
            "holds",
            f"{sync_ms:.0f} ms against a sum of {total:.0f} ms",
            command,
        ),
        Claim(
            "async_max",
            "/async-news, /kkblogs: asyncio.gather, total ≈ the max",
            "Sync vs Async in FastAPI: Key Differences",
            "async gateway, async def /news, gather",
            "latency at C=1 / max of the delays",
            round(async_ms / longest, 2),
            1.0,
            "holds",
            f"{async_ms:.0f} ms against a max of {longest:.0f} ms",
            command,
        ),
    ]


async def _burst(url: str, at_once: int, timeout_s: float) -> float:
    """`at_once` requests sent together on their own connections; the whole burst's wall."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> None:
            async with session.get(url) as response:
                await response.read()
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(at_once)))
        return time.perf_counter() - started


def burst_ratios(url: str, at_once: tuple[int, ...]) -> dict[int, float]:
    """Each burst's wall time over one request alone (the median of three)."""
    alone = statistics.median(asyncio.run(_burst(url, 1, 60)) for _ in range(3))
    return {k: round(asyncio.run(_burst(url, k, 120)) / alone, 2) for k in at_once}


def sleeps(lab: Lab, claims: Claims) -> None:
    lab.on_step("/sync_func and /wrong: sleeps sent together")
    tokens = lab.stack.health("sync").threadpool_tokens
    at_once = lab.preset.at_once
    def_ratios = burst_ratios(f"{lab.sync_base}/sync_func?ms={SYNC_FUNC_MS}", at_once)
    loop_ratios = burst_ratios(f"{lab.async_base}/wrong?ms={WRONG_MS}", at_once)
    claims.figures["sleeps"] = {
        "tokens": tokens,
        "sync_func": {str(k): v for k, v in def_ratios.items()},
        "sync_func_ideal": {str(k): burst_ideal(k, tokens) for k in at_once},
        "wrong": {str(k): v for k, v in loop_ratios.items()},
        "wrong_ideal": {str(k): burst_ideal(k, 1) for k in at_once},
    }
    biggest = max(at_once)
    within = [k for k in at_once if k <= tokens]
    past = [k for k in at_once if k > tokens]
    def_text = "; ".join(f"{k} at once: {r:.2f}x one alone" for k, r in def_ratios.items())
    loop_text = "; ".join(f"{k} at once: {r:.2f}x" for k, r in loop_ratios.items())
    overlapped = all(def_ratios[k] < 1.5 for k in within)
    queued = all(def_ratios[k] >= 1.5 for k in past)
    claims.rows += [
        Claim(
            "sync_func",
            "/sync_func: time.sleep in a def route blocks the worker; no other request"
            " can be processed",
            "Examples: Synchronous Endpoint",
            f"sync gateway, def /sync_func?ms={SYNC_FUNC_MS}, one worker",
            f"{biggest} at once / one alone (ideal: ceil(K / {tokens} tokens))",
            def_ratios[biggest],
            burst_ideal(biggest, tokens),
            "holds with a limit" if overlapped and queued else "does not hold",
            f"{def_text}. A def route runs on Starlette's threadpool: up to its {tokens}"
            " tokens the sleeps overlap, so the claim is false; past them requests queue"
            " for a token, and there it holds",
            "python -m bench claims",
        ),
        Claim(
            "wrong",
            "/wrong: time.sleep in async def blocks the entire event loop",
            "Common Mistake: Blocking Calls",
            f"async gateway, async def /wrong?ms={WRONG_MS}, one worker",
            f"{biggest} at once / one alone (ideal: K)",
            loop_ratios[biggest],
            burst_ideal(biggest, 1),
            "holds" if all(loop_ratios[k] >= 0.8 * k for k in at_once) else "does not hold",
            f"{loop_text}: one at a time, whatever the count",
            "python -m bench claims",
        ),
    ]


def client_construction_ms(repeats: int = 20) -> float:
    """CPU to build and close one httpx.AsyncClient, in this process (the bench's host)."""

    async def build_and_close() -> None:
        async with httpx.AsyncClient():
            pass

    started = time.process_time()
    for _ in range(repeats):
        asyncio.run(build_and_close())
    return (time.process_time() - started) * 1000 / repeats


def client_per_call(lab: Lab, claims: Claims, longest_s: float) -> None:
    lab.on_step("the per-call client against the shared one")
    lab.measure_idle_opens()
    deadline = str(lab.stack.health("async").max_deadline_ms)
    url = f"{lab.async_base}/news"
    alone = {mode: alone_ms(url, client=mode) for mode in ("shared", "per-call")}
    points: dict[str, dict[str, Point]] = {"shared": {}, "per-call": {}}
    for concurrency in lab.preset.client_concurrency:
        for mode in ("shared", "per-call"):
            lab.on_step(f"async /news?client={mode} C={concurrency}")
            # The longest deadline, so that the cost shows as latency, not as cut calls.
            _, point = lab.load("async", "/news", concurrency, client=mode, deadline_ms=deadline)
            points[mode][str(concurrency)] = point
    build_ms = client_construction_ms()
    claims.figures["per_call"] = {
        "alone_ms": {mode: round(ms, 1) for mode, ms in alone.items()},
        "points": {mode: {c: asdict(p) for c, p in by_c.items()} for mode, by_c in points.items()},
        "construction_cpu_ms": round(build_ms, 2),
    }
    claims.rows += per_call_rows(points, alone, build_ms, longest_s)


def per_call_rows(
    points: dict[str, dict[str, Point]],
    alone: dict[str, float],
    build_ms: float,
    longest_s: float,
) -> list[Claim]:
    """The per-call client against the shared one: CPU and connections per fan-out."""
    low = min(points["shared"], key=int)
    shared, per_call = points["shared"][low], points["per-call"][low]
    cpu_ratio = None
    if shared.cpu_ms and per_call.cpu_ms:
        cpu_ratio = round(per_call.cpu_ms / shared.cpu_ms, 2)
    per_c = "; ".join(
        f"C={c}: {points['per-call'][c].throughput:.1f} against"
        f" {points['shared'][c].throughput:.1f} fan-outs/s, {points['per-call'][c].cpu_ms} against"
        f" {points['shared'][c].cpu_ms} ms of CPU each, {points['per-call'][c].failed_share:.0%}"
        f" against {points['shared'][c].failed_share:.0%} failed"
        for c in points["shared"]
    )
    return [
        Claim(
            "per_call_cpu",
            "use a client instance: connection reuse, better performance (while the post's"
            " own fetch_data opens a new AsyncClient per call)",
            "Recommended: Use a Client Instance; Concurrent External API Calls",
            "async gateway, /news?client=per-call against ?client=shared",
            f"CPU per fan-out, per-call / shared, C={low}",
            cpu_ratio,
            1.0,
            priced(cpu_ratio, cpu_ratio is not None and cpu_ratio > 1.5),
            f"{per_c}. At C=1: {alone['per-call']:.0f} ms against {alone['shared']:.0f} ms"
            f" (max of the delays: {longest_s * 1000:.0f} ms). Building and closing one"
            f" httpx.AsyncClient costs {build_ms:.1f} ms of CPU on the bench's host (its TLS"
            " context loads the CA bundle), three per fan-out",
            "python -m bench claims",
        ),
        Claim(
            "per_call_connections",
            "use connection pools with httpx.AsyncClient",
            "Performance Optimization Tips",
            "async gateway, /news?client=per-call against ?client=shared",
            f"connections the upstreams accepted per fan-out, per-call, C={low} (ideal: 3)",
            per_call.connections,
            3.0,
            priced(
                per_call.connections,
                shared.connections is not None
                and per_call.connections is not None
                and per_call.connections > 2 > shared.connections,
            ),
            f"per-call: {per_call.connections} per fan-out, one per call; shared:"
            f" {shared.connections}: its pool keeps them open (the upstreams' Docker"
            " healthchecks add about one every 3 s to each)",
            "python -m bench claims",
        ),
    ]


def fast_return(lab: Lab, claims: Claims) -> None:
    concurrency = lab.preset.fast_concurrency
    points: dict[str, Point] = {}
    for route in ("def", "async"):
        lab.on_step(f"/fast/{route} C={concurrency}")
        _, points[route] = lab.load("async", f"/fast/{route}", concurrency)
    claims.figures["fast"] = {route: asdict(point) for route, point in points.items()}
    ratio = None
    if points["def"].cpu_ms and points["async"].cpu_ms:
        ratio = round(points["def"].cpu_ms / points["async"].cpu_ms, 2)
    verdict = priced(ratio, ratio is not None and ratio < 0.9)
    claims.rows.append(
        Claim(
            "fast_def",
            "use def for fast-return endpoints; async unnecessarily can slow things down",
            "When It's Better to Use def",
            f"async gateway, /fast/def against /fast/async, one worker, C={concurrency}",
            "CPU per request, def / async def",
            ratio,
            1.0,
            verdict,
            f"def: {points['def'].throughput:.0f} req/s, {points['def'].cpu_ms} ms of CPU"
            f" each; async def: {points['async'].throughput:.0f} req/s,"
            f" {points['async'].cpu_ms} ms. A def route pays a trip to the threadpool and"
            " back; the async one runs on the loop",
            "python -m bench claims",
        ),
    )


def sync_clients(lab: Lab, claims: Claims) -> None:
    found: SyncClient = "httpx" if lab.stack.health("sync").http_client == "httpx" else "requests"
    points: dict[str, Point] = {}
    try:
        for client in ("requests", "httpx"):
            if lab.stack.health("sync").http_client != client:
                lab.restart("sync", SYNC_HTTP_CLIENT=client)
            for mode in ("sequential", "threads"):
                for concurrency in lab.preset.sync_concurrency:
                    lab.on_step(f"sync /news?mode={mode} with {client}, C={concurrency}")
                    _, point = lab.load("sync", "/news", concurrency, mode=mode)
                    points[f"{client} {mode} C={concurrency}"] = point
    finally:
        if lab.stack.health("sync").http_client != found:
            lab.restart("sync", SYNC_HTTP_CLIENT=found)
    claims.figures["sync_clients"] = {name: asdict(p) for name, p in points.items()}
    ratios = {}
    for mode in ("sequential", "threads"):
        for concurrency in lab.preset.sync_concurrency:
            req = points[f"requests {mode} C={concurrency}"].cpu_ms
            hx = points[f"httpx {mode} C={concurrency}"].cpu_ms
            if req and hx:
                ratios[f"{mode} C={concurrency}"] = round(hx / req, 2)
    claims.figures["sync_client_cpu_ratio"] = ratios
    cheaper = [name for name, r in ratios.items() if r < 0.9]
    dearer = [name for name, r in ratios.items() if r > 1.1]
    verdict: Verdict = "holds with a limit"
    if not ratios:
        verdict = "not measured"  # no probe: no CPU to compare
    elif len(cheaper) == len(ratios):
        verdict = "holds"
    elif not cheaper:
        verdict = "does not hold"
    low = min(lab.preset.sync_concurrency)
    detail = "; ".join(
        f"{name}: {points[f'httpx {name}'].cpu_ms} against {points[f'requests {name}'].cpu_ms}"
        f" ms, {points[f'httpx {name}'].throughput:.1f} against"
        f" {points[f'requests {name}'].throughput:.1f} fan-outs/s"
        for name in ratios
    )
    where_better = f"; cheaper at {', '.join(cheaper)}" if cheaper else ""
    where_worse = f"; dearer at {', '.join(dearer)}" if dearer else ""
    claims.rows.append(
        Claim(
            "sync_httpx",
            "httpx: just like requests, but with better performance",
            "Why Use httpx?",
            "sync gateway, SYNC_HTTP_CLIENT=httpx against requests, both modes",
            f"CPU per fan-out, httpx / requests, sequential C={low}",
            ratios.get(f"sequential C={low}"),
            1.0,
            verdict,
            f"httpx against requests, CPU per fan-out: {detail}{where_better}{where_worse}",
            "python -m bench claims",
        )
    )
