"""CPU per fan-out in each of the async gateway's clients, outside the gateway.

C concurrent fan-outs to three local upstream processes, through the very client the
gateway builds (gateway.clients, from the same GATEWAY_* settings). httpx 0.28 (httpcore
1.x) scans its whole pool for every request it queues, so its CPU per fan-out grows with
concurrency (encode/httpcore#1035); httpx over aiohttp's connector stays flat. Only this
process's CPU is counted; the upstreams run in processes of their own.
"""

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvloop
from rich.table import Table

from gateway.clients import async_upstream_client
from gateway.config import AsyncClientName, GatewaySettings

ROOT = Path(__file__).resolve().parents[1]
# The compose stack's delays, so the pool holds what it holds in the gateway.
DELAYS_MS = {"wire": 300, "gazette": 500, "chronicle": 800}
CLIENTS: tuple[AsyncClientName, ...] = ("httpx-aiohttp", "httpx2", "httpx")


@dataclass(frozen=True)
class PoolCost:
    client: str
    concurrency: int
    fan_outs: int
    wall_s: float
    cpu_s: float

    @property
    def cpu_ms_per_fan_out(self) -> float:
        return self.cpu_s / self.fan_outs * 1000


@contextmanager
def local_upstreams(first_port: int) -> Iterator[list[str]]:
    """One uvicorn process per source on loopback, stopped on exit whatever happens."""
    processes, urls = [], []
    try:
        for offset, (name, delay) in enumerate(DELAYS_MS.items()):
            port = first_port + offset
            env = {**os.environ, "UPSTREAM_NAME": name, "UPSTREAM_DELAY_MS": str(delay)}
            command = [sys.executable, "-m", "uvicorn", "--factory", "upstream.main:create_app"]
            command += ["--port", str(port)]
            command += ["--log-level", "warning", "--no-access-log", "--backlog", "4096"]
            processes.append(subprocess.Popen(command, cwd=ROOT, env=env))
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        for url in urls:
            while True:
                try:
                    urllib.request.urlopen(f"{url}/healthz", timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{url} did not start in 30 s") from None
                    time.sleep(0.1)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


async def _fan_outs(settings: GatewaySettings, concurrency: int, total: int) -> None:
    async with async_upstream_client(settings) as client:
        urls = list(client.news_urls.values())
        remaining = iter(range(total))

        async def fan_out_loop() -> None:
            for _ in remaining:
                responses = await asyncio.gather(*(client.http.get(url) for url in urls))
                if any(response.status_code != 200 for response in responses):
                    raise RuntimeError("an upstream failed: this measures CPU, not errors")

        await asyncio.gather(*(fan_out_loop() for _ in range(concurrency)))


def measure(client: AsyncClientName, urls: list[str], concurrency: int, fan_outs: int) -> PoolCost:
    # The gateway's client and pool limits, from the environment as the gateway reads them.
    # Only the timeouts differ: this measures CPU, not errors, and httpx's own pool, busy
    # scanning, misses a 1 s connect or a 5 s pool timeout at C=100.
    settings = GatewaySettings(
        sources=",".join(f"{name}={url}" for name, url in zip(DELAYS_MS, urls, strict=True)),
        http_client=client,
        connect_timeout_s=60,
        read_timeout_s=60,
        pool_timeout_s=60,
    )
    uvloop.run(_fan_outs(settings, concurrency, min(fan_outs, concurrency)))  # warm-up
    cpu, wall = time.process_time(), time.perf_counter()
    uvloop.run(_fan_outs(settings, concurrency, fan_outs))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return PoolCost(client, concurrency, fan_outs, wall, cpu)


def pool_cost(
    concurrencies: tuple[int, ...], fan_outs: int, first_port: int = 9201
) -> tuple[Table, list[PoolCost]]:
    table = Table(title=f"client CPU per fan-out (3 sources, {fan_outs} fan-outs per row)")
    for column in ("client", "C", "fan-outs/s", "CPU ms per fan-out", "CPU share of a core"):
        table.add_column(column, justify="right")
    costs = []
    with local_upstreams(first_port) as urls:
        for concurrency in concurrencies:
            for name in CLIENTS:
                cost = measure(name, urls, concurrency, fan_outs)
                costs.append(cost)
                table.add_row(
                    name,
                    str(concurrency),
                    f"{fan_outs / cost.wall_s:,.0f}",
                    f"{cost.cpu_ms_per_fan_out:.2f}",
                    f"{cost.cpu_s / cost.wall_s:.0%}",
                )
    return table, costs
