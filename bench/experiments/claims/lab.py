"""The running stack as the claims reach it: loads priced on it, restarts, and the waits
a measurement needs (one request alone, a gateway settled, a worker back)."""

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bench.experiments.claims.model import ALONE_REPEATS, ClaimsPreset, Point
from bench.experiments.plan import GatewayConfig
from bench.harness.database import DatabaseProbe
from bench.harness.http import get_json
from bench.harness.load import LoadResult, LoadSpec
from bench.harness.probe import StackProbe, container_cpu_seconds
from bench.harness.stack import DrivenStack, GatewayName


class ClaimsStack(DrivenStack, Protocol):
    """What the claims need of a stack: its probe, for the whole container's CPU
    (tests/unit/test_claims_steps.py runs both gateways in process, with none)."""

    def probe(self, gateway: GatewayName) -> StackProbe | None: ...

    def restart_stack(self, env: dict[str, str]) -> None:
        """Every service recreated with these variables: UPSTREAM_TLS changes them all."""
        ...

    def database(self) -> DatabaseProbe | None:
        """The archive server's CPU and sessions, where this host can read them."""
        ...


@dataclass
class Lab:
    """The running stack, as the measurements reach it."""

    stack: ClaimsStack
    preset: ClaimsPreset
    on_step: Callable[[str], None]
    idle_opens_per_s: float = 0.0
    # The variables the stack was last restarted with as a whole (UPSTREAM_TLS, ...): a
    # gateway restarted alone keeps them.
    stack_env: dict[str, str] = field(default_factory=dict)

    @property
    def sync_base(self) -> str:
        return self.stack.base("sync")

    @property
    def async_base(self) -> str:
        return self.stack.base("async")

    def load(
        self, gateway: GatewayName, path: str, concurrency: int, **params: str
    ) -> tuple[LoadResult, Point]:
        wait_until_settled(self.stack.base(gateway))
        spec = LoadSpec(
            url=f"{self.stack.base(gateway)}{path}",
            params=params,
            concurrency=concurrency,
            duration_s=self.preset.window_s,
            warmup_s=self.preset.warmup_s,
            timeout_s=60,
            drain_s=15,
        )
        result, cost = self.stack.measure(gateway, spec)
        return result, Point.of(result, cost, self.idle_opens_per_s)

    def measure_idle_opens(self, seconds: float = 3.0) -> None:
        """The rate at which the upstreams accept connections with no load on them."""
        probe = self.stack.probe("async")
        if probe is None:
            return
        with probe.running():
            start = time.perf_counter()
            time.sleep(seconds)
            end = time.perf_counter()
        cost = probe.cost(start, end)
        self.idle_opens_per_s = 0.0 if cost is None else cost.upstream_connections / seconds

    def gateway_cpu_seconds(self, gateway: GatewayName) -> Callable[[], float] | None:
        """The whole gateway container's CPU so far, process pool included."""
        probe = self.stack.probe(gateway)
        if probe is None:
            return None
        (container,) = probe.gateways
        return lambda: container_cpu_seconds(container)

    def restart(self, gateway: GatewayName, **env: str) -> None:
        self.on_step(f"restarting the {gateway} gateway: {env or 'as found'}")
        as_running = GatewayConfig.running(self.stack.health(gateway)).env()
        self.stack.restart(gateway, {**as_running, **self.stack_env, **env})

    def restart_stack(self, **env: str) -> None:
        """The whole stack anew with these variables, each gateway as it runs now."""
        self.on_step(f"restarting the stack: {env}")
        as_running: dict[str, str] = {}
        for gateway in ("sync", "async"):
            as_running |= GatewayConfig.running(self.stack.health(gateway)).env()
        self.stack_env |= env
        self.stack.restart_stack({**as_running, **self.stack_env})


def alone_ms(url: str, repeats: int = ALONE_REPEATS, **params: str) -> float:
    """The median latency of `repeats` requests one at a time, after two warm ones."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    full = f"{url}?{query}" if query else url
    for _ in range(2):
        get_json(full, timeout=60)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        get_json(full, timeout=60)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


# A gateway with nothing left to do answers /healthz in a few ms, on a busy machine too.
SETTLED_MS = 50.0


def wait_until_settled(base: str, within_s: float = 120.0) -> float:
    """Seconds until the gateway's /healthz answers within SETTLED_MS, polled every 0.2 s.

    A point's clients stop waiting at its window's end, but the gateway goes on with what
    they sent: after the per-call client's C=200, a backlog of fan-outs that outlasted the
    drain took the next point's CPU, and its window got no answer at all.
    """
    started = time.perf_counter()
    while time.perf_counter() - started < within_s:
        asked = time.perf_counter()
        get_json(f"{base}/healthz", timeout=within_s)
        if (time.perf_counter() - asked) * 1000 < SETTLED_MS:
            return time.perf_counter() - started
        time.sleep(0.2)
    raise RuntimeError(f"{base} was still busy after {within_s:g} s")


def answers_again(url: str, within_s: float) -> float:
    """Seconds until `url` answers again, polled every 0.1 s."""
    started = time.perf_counter()
    while time.perf_counter() - started < within_s:
        try:
            get_json(url, timeout=5)
            return time.perf_counter() - started
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {within_s:g} s")
