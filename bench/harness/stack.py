"""The running stack, as the benchmark reaches it: each gateway's URL and /healthz, the
compose restarts through scripts/up.sh, the source delays, and the probe that prices a
window. The matrix and the claims take a stack as an argument, so a test can hand them a
fake one instead of patching this module.
"""

import os
import statistics
import subprocess
from typing import Literal, Protocol

from bench.harness.database import DatabaseProbe, compose_database
from bench.harness.http import get_json
from bench.harness.load import LoadResult, LoadSpec, run_load
from bench.harness.probe import StackProbe, WindowCost, compose_probe
from bench.harness.topology import ROOT
from gateway.models import GatewayHealth

GatewayName = Literal["sync", "async"]
GATEWAY_SERVICES: dict[GatewayName, str] = {"sync": "sync-gateway", "async": "async-gateway"}
UPSTREAM_SERVICES = ("upstream-wire", "upstream-gazette", "upstream-chronicle")
PROJECT = "fanout-lab"  # compose's project name, unless COMPOSE_PROJECT_NAME says another


class DrivenStack(Protocol):
    """What an experiment needs of a running stack: ComposeStack is the real one; the unit
    tests hand the experiments fakes, or both gateways in process."""

    def base(self, gateway: GatewayName) -> str: ...

    def health(self, gateway: GatewayName) -> GatewayHealth: ...

    def calibrate(self) -> dict[str, float]: ...

    def measure(
        self, gateway: GatewayName, spec: LoadSpec
    ) -> tuple[LoadResult, WindowCost | None]: ...

    def restart(self, gateway: GatewayName, env: dict[str, str]) -> None: ...


def healthz(base: str) -> GatewayHealth:
    """The gateway's /healthz, validated against the model its route returns."""
    return GatewayHealth.model_validate(get_json(f"{base}/healthz"))


def calibrate(async_base: str, repeats: int = 5) -> dict[str, float]:
    """Each source's delay as the gateway sees it at rest: the input to every ideal line."""
    get_json(f"{async_base}/news")  # warm the connections
    timings: dict[str, list[float]] = {}
    for _ in range(repeats):
        for source in get_json(f"{async_base}/news")["sources"]:
            timings.setdefault(source["name"], []).append(source["elapsed_ms"] / 1000)
    return {name: statistics.median(values) for name, values in timings.items()}


def measure(spec: LoadSpec, probe: StackProbe | None) -> tuple[LoadResult, WindowCost | None]:
    """One load run, priced by the probe over its measured window when there is one."""
    if probe is None:
        return run_load(spec), None
    with probe.running():
        result = run_load(spec)
    return result, probe.cost(result.window_start, result.window_end)


def compose_project() -> str:
    """The compose project the scripts drive: COMPOSE_PROJECT_NAME, or the lab's own."""
    return os.environ.get("COMPOSE_PROJECT_NAME", PROJECT)


class ProbedStack:
    """What both stacks do with their probe: one per gateway, built on first use, dropped
    when the gateway restarts (a restart makes new containers, and new cgroups to read)."""

    _probes: dict[GatewayName, StackProbe | None]

    def __init__(self) -> None:
        self._probes = {}

    def new_probe(self, gateway: GatewayName) -> StackProbe | None:
        """The probe of this gateway's workers and the sources, or None where the host
        cannot read their cgroups."""
        raise NotImplementedError

    def probe(self, gateway: GatewayName) -> StackProbe | None:
        if gateway not in self._probes:
            self._probes[gateway] = self.new_probe(gateway)
        return self._probes[gateway]

    def forget_probe(self, gateway: GatewayName) -> None:
        self._probes.pop(gateway, None)

    def measure(self, gateway: GatewayName, spec: LoadSpec) -> tuple[LoadResult, WindowCost | None]:
        return measure(spec, self.probe(gateway))

    def priced(self, gateway: GatewayName) -> bool:
        """Whether this host can read the gateway's cgroups: without, every cost is None."""
        return self.probe(gateway) is not None


class ComposeStack(ProbedStack):
    """The compose stack `make up` started, driven as a user drives it."""

    def __init__(self, sync_base: str, async_base: str, project: str | None = None) -> None:
        super().__init__()
        self.sync_base, self.async_base = sync_base, async_base
        self.project = project or compose_project()

    def base(self, gateway: GatewayName) -> str:
        return self.sync_base if gateway == "sync" else self.async_base

    def health(self, gateway: GatewayName) -> GatewayHealth:
        return healthz(self.base(gateway))

    def calibrate(self) -> dict[str, float]:
        return calibrate(self.async_base)

    def new_probe(self, gateway: GatewayName) -> StackProbe | None:
        return compose_probe(self.project, GATEWAY_SERVICES[gateway], UPSTREAM_SERVICES)

    def database(self) -> DatabaseProbe | None:
        return compose_database(self.project)

    def restart_stack(self, env: dict[str, str]) -> None:
        """Recreate every service whose compose variables these change (UPSTREAM_TLS: all
        of them), and wait until the stack is healthy. Every probe is made anew."""
        subprocess.run(
            [str(ROOT / "scripts" / "up.sh"), "--no-build", "-t", "2"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
            timeout=600,
        )
        for gateway in GATEWAY_SERVICES:
            self.forget_probe(gateway)

    def restart(self, gateway: GatewayName, env: dict[str, str]) -> None:
        """Recreate one gateway with these compose variables, and wait until the stack is
        healthy."""
        # -t 2: a worker stuck in /news/blocking is killed after 2 s instead of draining.
        # --no-deps: SERVER is every service's variable, and only this gateway may change.
        subprocess.run(
            [
                str(ROOT / "scripts" / "up.sh"),
                "--no-build",
                "-t",
                "2",
                "--no-deps",
                GATEWAY_SERVICES[gateway],
            ],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
            timeout=300,
        )
        self.forget_probe(gateway)
