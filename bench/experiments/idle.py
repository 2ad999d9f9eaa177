"""The stack at rest: what the machine spends while nobody asks it anything.

#19's figure for the idle stack is the machine's busy share, healthchecks included. One
window of rest, read from the host, splits it four ways that do not overlap:
- services: the project's containers' long-lived processes (their servers, idle);
- engine: Docker's own processes (dockerd, containerd, every containerd-shim, docker-proxy),
  their own CPU;
- execs: what the shims reaped in the window: each `runc exec` of a healthcheck and the
  check's own process it started (bash and its /dev/tcp here). Nothing else execs at rest;
- other: the rest of the machine (this command, the host's daemons).

With no load, nearly all of engine and execs is the healthchecks: Docker runs one exec per
container every HEALTHCHECK_INTERVAL, and each costs the engine far more than the check.
"""

import json
import os
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.harness import probe
from bench.harness.probe import (
    Container,
    comm,
    cpu_seconds,
    labelled_containers,
    machine_busy_seconds,
    processes,
    resolve,
)

COMPOSE_SERVICE = "com.docker.compose.service"
# Docker's processes, by their (15-character) comm: containerd-shim-runc-v2 shows as the first.
ENGINE = ("dockerd", "containerd", "containerd-shim", "docker-proxy")
DEFAULT_INTERVAL_S = 30.0  # Docker's, for a check that sets none
WINDOW_S = 60.0
# The split's rows, as the console and docs/benchmark.md print them: (what, key).
SHARES = (
    ("the whole machine", "machine_cores"),
    ("Docker's engine: dockerd, containerd, shims, proxies", "engine_cores"),
    ("the healthchecks' execs: runc, and each check's bash", "execs_cores"),
    ("the services' own processes, idle", "services_cores"),
    ("the rest of the machine", "other_cores"),
)


@dataclass(frozen=True)
class ProcessTimes:
    own_s: float  # the process's user and system time
    reaped_s: float  # its children's, once it has waited for them


@dataclass(frozen=True)
class Healthcheck:
    service: str
    interval_s: float


@dataclass(frozen=True)
class Rest:
    """One window of rest, in cores (1.0 = one core busy all the window)."""

    window_s: float
    machine_cores: float
    services_cores: float
    engine_cores: float
    execs_cores: float
    by_service: Mapping[str, float]
    checks: tuple[Healthcheck, ...]

    @property
    def other_cores(self) -> float:
        return self.machine_cores - self.services_cores - self.engine_cores - self.execs_cores

    @property
    def checks_per_s(self) -> float:
        return sum(1 / check.interval_s for check in self.checks)

    @property
    def ms_per_check(self) -> float | None:
        """The engine's and the execs' CPU per healthcheck: an upper bound, the engine's
        own idle counted in. None unless every check ran in the window."""
        if not self.checks or max(c.interval_s for c in self.checks) > self.window_s:
            return None
        return (self.engine_cores + self.execs_cores) / self.checks_per_s * 1000

    def record(self) -> dict[str, object]:
        per_check = self.ms_per_check
        return {
            "window_s": round(self.window_s, 1),
            "machine_cores": round(self.machine_cores, 4),
            "services_cores": round(self.services_cores, 4),
            "engine_cores": round(self.engine_cores, 4),
            "execs_cores": round(self.execs_cores, 4),
            "other_cores": round(self.other_cores, 4),
            "by_service": {name: round(cores, 4) for name, cores in self.by_service.items()},
            "healthchecks": [
                {"service": c.service, "interval_s": c.interval_s} for c in self.checks
            ],
            "checks_per_s": round(self.checks_per_s, 3),
            "ms_per_check": None if per_check is None else round(per_check, 1),
        }


def process_times(pid: int) -> ProcessTimes | None:
    """utime + stime and cutime + cstime of /proc/PID/stat, or None once it is gone."""
    try:
        fields = (probe.PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    # After the comm: state is field 3 of stat(5), so utime (14) is index 11 here.
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return ProcessTimes((utime + stime) / tick, (cutime + cstime) / tick)


def engine_processes() -> list[int]:
    """The engine's processes, by name (/proc as bench.harness.probe reads it)."""
    pids = (int(p.name) for p in probe.PROC.iterdir() if p.name.isdigit())
    return [pid for pid in pids if comm(pid) in ENGINE]


def described(config: Mapping[str, Any], container_id: str) -> tuple[str, Healthcheck | None]:
    """A container's compose service, and its healthcheck as Docker runs it (None: none),
    from the `Config` of `docker inspect`."""
    service = (config.get("Labels") or {}).get(COMPOSE_SERVICE) or container_id[:12]
    check = config.get("Healthcheck") or {}
    if not check.get("Test") or check["Test"][0] == "NONE":
        return service, None
    interval_ns = check.get("Interval") or DEFAULT_INTERVAL_S * 1e9
    return service, Healthcheck(service, interval_ns / 1e9)


def inspected(container_id: str) -> tuple[str, Healthcheck | None]:
    inspect = ["docker", "inspect", "-f", "{{json .Config}}", container_id]
    result = subprocess.run(inspect, capture_output=True, text=True, timeout=30, check=True)
    return described(json.loads(result.stdout), container_id)


def _services_cpu(containers: Iterable[Container]) -> dict[tuple[str, int], float]:
    return {(c.service, pid): cpu_seconds(pid) for c in containers for pid in processes(c)}


def measure_rest(project: str, window_s: float = WINDOW_S) -> Rest:
    """The machine at rest for `window_s`, with this compose project's containers up."""
    ids = labelled_containers({"com.docker.compose.project": project})
    if not ids:
        raise RuntimeError(f"no container of the compose project {project!r} is running")
    containers, checks = [], []
    for cid in ids:
        service, check = inspected(cid)
        container = resolve(service, cid)
        if container is None:
            raise RuntimeError(f"cannot read {service}'s cgroup from this host")
        containers.append(container)
        if check is not None:
            checks.append(check)
    engine = engine_processes()
    before_engine = {pid: process_times(pid) for pid in engine}
    before_services, before_machine = _services_cpu(containers), machine_busy_seconds()
    started = time.perf_counter()
    time.sleep(window_s)
    after_services, after_machine = _services_cpu(containers), machine_busy_seconds()
    window = time.perf_counter() - started
    own = reaped = 0.0
    for pid, before in before_engine.items():
        after = process_times(pid)
        if before is not None and after is not None:
            own += after.own_s - before.own_s
            reaped += after.reaped_s - before.reaped_s
    by_service: dict[str, float] = {}
    # A process alive at both ends: a check's, which lives a few ms, is the shims' to count.
    for key, start in before_services.items():
        if key in after_services:
            by_service[key[0]] = by_service.get(key[0], 0.0) + after_services[key] - start
    return Rest(
        window_s=window,
        machine_cores=(after_machine - before_machine) / window,
        services_cores=sum(by_service.values()) / window,
        engine_cores=own / window,
        execs_cores=reaped / window,
        by_service={name: cpu / window for name, cpu in sorted(by_service.items())},
        checks=tuple(sorted(checks, key=lambda c: c.service)),
    )
