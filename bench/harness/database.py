"""The archive's PostgreSQL as the bench reads it: the CPU of its whole container (every
backend, the ones that have ended included), and how many sessions it has opened."""

import subprocess
from dataclasses import dataclass

from bench.harness.probe import Container, compose_containers, resolve

SERVICE = "postgres"
SESSIONS = "SELECT sessions FROM pg_stat_database WHERE datname = 'news'"


@dataclass(frozen=True)
class DatabaseProbe:
    container_id: str
    container: Container

    def cpu_seconds(self) -> float:
        """The container's CPU so far, from its cgroup: a backend that ran for one request
        and exited counts, where a sum over live processes would lose it."""
        usage = self.container.cgroup / "cpuacct.usage"  # cgroup v1, in ns
        if usage.is_file():
            return int(usage.read_text()) / 1e9
        for line in (self.container.cgroup / "cpu.stat").read_text().splitlines():  # v2
            name, _, value = line.partition(" ")
            if name == "usage_usec":
                return int(value) / 1e6
        raise RuntimeError(f"no CPU usage in {self.container.cgroup}")

    def sessions(self) -> int:
        """Sessions the archive's database has seen (pg_stat_database), asked from the
        `postgres` database over the container's socket, so that the asking is none."""
        command = ["docker", "exec", self.container_id, "psql", "-X", "-A", "-t"]
        command += ["-d", "postgres", "-c", SESSIONS]
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
        return int(result.stdout.strip())


def compose_database(project: str) -> DatabaseProbe | None:
    """The probe of one compose project's PostgreSQL, or None where this host cannot read
    its cgroup (or it has none)."""
    ids = compose_containers(project, SERVICE)
    if len(ids) != 1:
        return None
    container = resolve(SERVICE, ids[0])
    return None if container is None else DatabaseProbe(ids[0], container)
