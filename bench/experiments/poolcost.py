"""CPU per fan-out in each of the async gateway's clients, outside the gateway.

C concurrent fan-outs to three local upstream processes, through the very client the
gateway builds (gateway.clients, from the same GATEWAY_* settings). httpx 0.28 (httpcore
1.x) scans its whole pool for every request it queues, so its CPU per fan-out grows with
concurrency (encode/httpcore#1035); httpx over aiohttp's connector stays flat. Only this
process's CPU is counted; the upstreams run in processes of their own.
"""

import asyncio
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvloop

from bench.harness.topology import SOURCE_NAMES, Topology, local_mode
from gateway.bodies import IDENTITY, read_capped
from gateway.clients import async_upstream_client
from gateway.config import AsyncClientName, GatewaySettings

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
    """The three sources as local mode runs them (`scripts/local.sh upstreams`: the stack's
    delays and keep-alive), on first_port and the next two; stopped on exit whatever
    happens."""
    with tempfile.TemporaryDirectory(prefix="fanout-pool-cost-") as run_dir:
        env = {
            **os.environ,
            "LOCAL_RUN_DIR": run_dir,
            "LOCAL_UPSTREAM_PORT": str(first_port),
            "ACCESS_LOG": "false",
        }
        try:
            started = local_mode("upstreams", env)
            if started.returncode != 0:
                raise RuntimeError(f"local upstreams did not start:\n{started.stderr[-2000:]}")
            yield [f"http://127.0.0.1:{first_port + offset}" for offset in range(3)]
        finally:
            local_mode("down", env)


async def _fan_outs(settings: GatewaySettings, concurrency: int, total: int) -> None:
    async with async_upstream_client(settings) as client:
        urls, cap = list(client.news_urls.values()), settings.max_body_bytes
        remaining = iter(range(total))

        async def fan_out_loop() -> None:
            for _ in remaining:
                calls = (read_capped(client.http, url, None, IDENTITY, cap) for url in urls)
                answers = await asyncio.gather(*calls)
                if any(status != 200 for status, _ in answers):
                    raise RuntimeError("an upstream failed: this measures CPU, not errors")

        await asyncio.gather(*(fan_out_loop() for _ in range(concurrency)))


def measure(client: AsyncClientName, urls: list[str], concurrency: int, fan_outs: int) -> PoolCost:
    # The gateway's client and the stack's pool limits (.env). Only the timeouts differ: this
    # measures CPU, not errors, and httpx's own pool, busy scanning, misses a 1 s connect or
    # a 5 s pool timeout at C=100.
    topology = Topology()
    settings = GatewaySettings(
        sources=",".join(f"{name}={url}" for name, url in zip(SOURCE_NAMES, urls, strict=True)),
        async_http_client=client,
        max_connections=topology.async_max_connections,
        max_keepalive_connections=topology.async_max_keepalive_connections,
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
) -> list[PoolCost]:
    """Each client at each concurrency, against the same three local upstreams."""
    with local_upstreams(first_port) as urls:
        return [
            measure(name, urls, concurrency, fan_outs)
            for concurrency in concurrencies
            for name in CLIENTS
        ]
