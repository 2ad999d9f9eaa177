"""Trust, checked: this tool against `hey`, and aiohttp against httpx as the load client.

`hey -n N -c C` runs exactly N/C rounds of C requests, so N / total time has no rounding
error. wrk runs for a fixed duration instead, and at 0.8-1.6 s per request its lockstep
connections finish in whole rounds: up to one round is cut off its count (see README).
"""

import asyncio
import re
import shutil
import subprocess
import time
from dataclasses import dataclass

import aiohttp
import httpx
import uvloop

from bench.harness.load import LoadSpec, run_load

AGREEMENT = 0.15


@dataclass(frozen=True)
class ToolPoint:
    tool: str
    throughput: float
    p50_ms: float
    requests: int


@dataclass(frozen=True)
class CrossCheck:
    url: str
    concurrency: int
    hey: ToolPoint
    bench: ToolPoint

    def difference(self, field: str) -> float:
        reference = getattr(self.hey, field)
        return float(abs(getattr(self.bench, field) - reference) / reference)

    @property
    def agrees(self) -> bool:
        return max(self.difference("throughput"), self.difference("p50_ms")) <= AGREEMENT


def parse_hey(output: str) -> tuple[float, float, int]:
    """Throughput, p50 in ms, and 200 responses, from hey's text summary."""
    throughput = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"50%+ in ([\d.]+) secs", output)
    ok = re.search(r"\[200\]\s+(\d+) responses", output)
    if not (throughput and p50 and ok):
        raise ValueError(f"unexpected hey output:\n{output}")
    return float(throughput.group(1)), float(p50.group(1)) * 1000, int(ok.group(1))


def run_hey(url: str, concurrency: int, requests: int) -> ToolPoint:
    if shutil.which("hey") is None:
        raise FileNotFoundError("hey is not installed: apt-get install hey")
    command = ["hey", "-n", str(requests), "-c", str(concurrency), "-t", "60", url]
    output = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    throughput, p50_ms, ok = parse_hey(output.stdout)
    if ok != requests:
        raise RuntimeError(f"hey got {ok} of {requests} answers with status 200")
    return ToolPoint("hey", throughput, p50_ms, ok)


def crosscheck(url: str, concurrency: int = 10, rounds: int = 8) -> CrossCheck:
    """One closed-loop point, measured by hey and by this tool, one after the other."""
    run_hey(url, concurrency, concurrency)  # warm-up: connections, one round
    started = time.perf_counter()
    hey = run_hey(url, concurrency, rounds * concurrency)
    hey_wall = time.perf_counter() - started
    result = run_load(LoadSpec(url=url, concurrency=concurrency, duration_s=hey_wall, warmup_s=2))
    ours = ToolPoint("bench", result.throughput, result.latency.percentile_ms(50), result.ok)
    return CrossCheck(url, concurrency, hey, ours)


async def _aiohttp_batch(url: str, concurrency: int, requests: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        remaining = iter(range(requests))

        async def client() -> None:
            for _ in remaining:
                async with session.get(url) as response:
                    await response.read()

        await asyncio.gather(*(client() for _ in range(concurrency)))


async def _httpx_batch(url: str, concurrency: int, requests: int) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:
        remaining = iter(range(requests))

        async def one_client() -> None:
            for _ in remaining:
                (await client.get(url)).read()

        await asyncio.gather(*(one_client() for _ in range(concurrency)))


@dataclass(frozen=True)
class ClientCost:
    client: str
    requests: int
    wall_s: float
    cpu_s: float


def client_check(url: str, concurrency: int = 50, requests: int = 3000) -> list[ClientCost]:
    """CPU per request of each candidate client, on a URL that answers at once."""
    costs = []
    for name, batch in (("aiohttp", _aiohttp_batch), ("httpx", _httpx_batch)):
        uvloop.run(batch(url, concurrency, min(requests, 200)))  # warm-up
        cpu, wall = time.process_time(), time.perf_counter()
        uvloop.run(batch(url, concurrency, requests))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        costs.append(ClientCost(name, requests, wall, cpu))
    return costs
