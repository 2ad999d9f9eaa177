"""Why the async gateway falls short at high concurrency: CPU per fan-out in the HTTP client.

The async gateway's fan-out, outside the gateway: C concurrent fan-outs to three local
upstream processes, with the gateway's client settings. httpx 0.28 (httpcore 1.x) scans
its whole pool for every request it queues, so its CPU per fan-out grows with concurrency
(encode/httpcore#1035). httpx2, the fork Starlette's TestClient now uses, fixed that scan.
Only this process's CPU is counted; the upstreams run in processes of their own.
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
from types import ModuleType

import httpx
import httpx2
import uvloop
from rich.table import Table

from gateway.config import GatewaySettings

ROOT = Path(__file__).resolve().parents[1]
# The compose stack's delays, so the pool holds what it holds in the gateway.
DELAYS_MS = {"wire": 300, "gazette": 500, "chronicle": 800}
CLIENTS: dict[str, ModuleType] = {"httpx": httpx, "httpx2": httpx2}


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


async def _fan_outs(module: ModuleType, urls: list[str], concurrency: int, total: int) -> None:
    # The pool exactly as the async gateway sizes it (gateway.async_app.build_client, from
    # the same GATEWAY_* settings). The timeout is not the gateway's: its 5 s pool timeout
    # would fail fan-outs at C=100, and this measures CPU, not errors.
    settings = GatewaySettings()
    limits = module.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_keepalive_connections,
        keepalive_expiry=settings.keepalive_expiry_s,
    )
    timeout = module.Timeout(60.0)
    async with module.AsyncClient(limits=limits, timeout=timeout) as client:
        remaining = iter(range(total))

        async def fan_out_loop() -> None:
            for _ in remaining:
                responses = await asyncio.gather(*(client.get(f"{u}/news") for u in urls))
                for response in responses:
                    response.raise_for_status()

        await asyncio.gather(*(fan_out_loop() for _ in range(concurrency)))


def measure(module_name: str, urls: list[str], concurrency: int, fan_outs: int) -> PoolCost:
    module = CLIENTS[module_name]
    uvloop.run(_fan_outs(module, urls, concurrency, min(fan_outs, concurrency)))  # warm-up
    cpu, wall = time.process_time(), time.perf_counter()
    uvloop.run(_fan_outs(module, urls, concurrency, fan_outs))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return PoolCost(module_name, concurrency, fan_outs, wall, cpu)


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
