"""What a fan-out costs: CPU and memory of the gateway's workers and of the upstreams.

Read from the host while a load runs, without touching the services: each container's
processes from its cgroup, each process's CPU from /proc/PID/task/*/schedstat (nanoseconds,
every thread), and its resident memory from /proc/PID/status. The gateway's CPU counts
only its server's workers, so the healthcheck Docker runs inside the container every few
seconds does not inflate "CPU per request" at low load; its memory counts every process of
the server, its main process too, of every replica: what a replica costs beside a worker. The
upstreams are counted whole.

It needs a Linux host that runs the containers (not Docker Desktop's VM); elsewhere every
cost is None and the report says so.
"""

import bisect
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bench.harness.sockets import established, passive_opens

PROC = Path("/proc")
CGROUP_ROOT = Path("/sys/fs/cgroup")
SAMPLE_EVERY_S = 0.2


@dataclass(frozen=True)
class Container:
    service: str
    pid: int  # the container's first process, as the host sees it
    cgroup: Path  # the directory whose cgroup.procs lists its processes


@dataclass(frozen=True)
class Sample:
    at: float  # time.perf_counter()
    gateway_cpu_s: float  # the gateway workers' CPU so far, live workers only
    worker_rss_bytes: tuple[int, ...]
    gateway_rss_bytes: int  # every server process of every replica, main ones included
    upstream_cpu_s: tuple[float, ...]
    # Connections the upstreams have accepted so far, all of them together.
    upstream_opens: int = 0
    # Every core's busy time so far, the whole machine's (/proc/stat), in seconds.
    machine_busy_s: float = 0.0
    # Connections each upstream holds open now, as its kernel lists them.
    upstream_established: tuple[int, ...] = ()


@dataclass(frozen=True)
class WindowCost:
    """What the gateway and the upstreams spent during one measured window."""

    gateway_cpu_s: float
    peak_worker_rss_mib: float  # the largest worker's largest resident size in the window
    peak_gateway_rss_mib: float  # the whole gateway's, all its processes and replicas
    upstream_cpu_cores: float  # all upstreams together, in cores (1.0 = one core busy)
    busiest_upstream_cores: float
    # Connections the upstreams accepted in the window: the gateway's, plus one per Docker
    # healthcheck of each upstream (every 3 s by default).
    upstream_connections: float = 0.0
    machine_busy_cores: float = 0.0  # the whole machine's, every process: 2.0 = 2 cores busy
    # The most connections one upstream held open at once in the window: a pool's size
    # under HTTP/1.1, far fewer where HTTP/2 multiplexes.
    peak_upstream_established: int = 0


def labelled_containers(labels: dict[str, str]) -> list[str]:
    """The ids of the running containers that carry every one of these labels."""
    filters = [arg for key, value in labels.items() for arg in ("--filter", f"label={key}={value}")]
    command = ["docker", "ps", "-q", *filters]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
    return result.stdout.split()


def compose_containers(project: str, service: str) -> list[str]:
    """The ids of one compose service's running containers."""
    return labelled_containers(
        {"com.docker.compose.project": project, "com.docker.compose.service": service}
    )


def swarm_containers(stack: str, service: str) -> list[str]:
    """The ids of one swarm service's tasks running on this node."""
    return labelled_containers({"com.docker.swarm.service.name": f"{stack}_{service}"})


def resolve(service: str, container_id: str) -> Container | None:
    """The container's cgroup on this host, or None where the host cannot see it."""
    inspect = ["docker", "inspect", "-f", "{{.State.Pid}}", container_id]
    result = subprocess.run(inspect, capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0 or not result.stdout.strip().isdigit():
        return None
    pid = int(result.stdout)
    cgroup = cgroup_dir(pid)
    return None if cgroup is None else Container(service, pid, cgroup)


def cgroup_dir(pid: int) -> Path | None:
    """The cgroup directory holding `pid`: cgroup v1's cpuacct hierarchy, or v2's."""
    try:
        lines = (PROC / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    by_controller = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            by_controller[controller] = path.lstrip("/")
    candidates = []
    if "cpuacct" in by_controller:
        path = by_controller["cpuacct"]
        candidates += [CGROUP_ROOT / d / path for d in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu")]
    if "" in by_controller:
        candidates.append(CGROUP_ROOT / by_controller[""])
    return next((c for c in candidates if (c / "cgroup.procs").is_file()), None)


def processes(container: Container) -> list[int]:
    try:
        return [int(pid) for pid in (container.cgroup / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    """CPU time of every live thread of one process, from the scheduler's own clock."""
    total = 0
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return 0.0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # the thread ended between the listing and the read
    return total / 1e9


def status_field(pid: int, name: str) -> int:
    """One numeric field of /proc/PID/status (kB fields in bytes), 0 if it is gone."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                value = line.split()[1]
                return int(value) * (1024 if line.endswith("kB") else 1)
    except OSError:
        pass
    return 0


# A container's first process when compose runs it with `init: true` (Docker's tini).
INITS = ("docker-init", "tini")
# multiprocessing's helper beside spawned workers (uvicorn's): not a worker.
HELPERS = (b"multiprocessing.resource_tracker", b"multiprocessing.forkserver")


def _parents(container: Container) -> dict[int, int]:
    return {pid: status_field(pid, "PPid") for pid in processes(container)}


def _children(parents: dict[int, int], pid: int) -> list[int]:
    return sorted(child for child, parent in parents.items() if parent == pid)


def comm(pid: int) -> str:
    """A process's name (its first 15 characters), or '' once it is gone."""
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def server_main(container: Container, parents: dict[int, int]) -> int | None:
    """The server's first process: the container's own, or the init's child under an init.
    A healthcheck Docker runs in the container is no descendant of either."""
    if comm(container.pid) not in INITS:
        return container.pid
    children = _children(parents, container.pid)
    return children[0] if children else None


def server_processes(container: Container) -> set[int]:
    """The server's main process and every descendant: the whole gateway's memory."""
    parents = _parents(container)
    main = server_main(container, parents)
    found, todo = set(), [] if main is None else [main]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += _children(parents, pid)
    return found


def server_workers(container: Container) -> list[int]:
    """The processes that serve requests, whatever the server: the main process's children
    (gunicorn's arbiter, uvicorn's supervisor, granian's main each start the workers), or
    the main process alone when it has none (uvicorn with one worker). A worker's own
    children (the /cpu/process pool) are not workers."""
    parents = _parents(container)
    main = server_main(container, parents)
    if main is None:
        return []
    workers = [
        pid
        for pid in _children(parents, main)
        if not any(helper in _cmdline(pid) for helper in HELPERS)
    ]
    return workers or [main]


def _cmdline(pid: int) -> bytes:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def machine_busy_seconds() -> float:
    """Every core's busy time since boot (idle and iowait aside), 0 if it cannot be read."""
    try:
        fields = (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(field) for field in fields[:8]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def container_cpu_seconds(container: Container) -> float:
    return sum(cpu_seconds(pid) for pid in processes(container))


@dataclass
class StackProbe:
    """Samples a gateway's workers and the upstreams in a thread, then prices a window.

    Worker CPU is summed per worker pid over the samples, so a worker that is recycled
    mid-run loses only what it spent since its last sample.
    """

    gateways: list[Container]  # its replicas; one on compose
    upstreams: list[Container]
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _last_cpu: dict[int, float] = field(default_factory=dict)
    _gateway_cpu_s: float = 0.0

    def sample(self) -> Sample:
        rss, total_rss = [], 0
        for gateway in self.gateways:
            for pid in server_workers(gateway):
                now = cpu_seconds(pid)
                self._gateway_cpu_s += max(0.0, now - self._last_cpu.get(pid, now))
                self._last_cpu[pid] = now
                rss.append(status_field(pid, "VmRSS"))
            total_rss += sum(status_field(pid, "VmRSS") for pid in server_processes(gateway))
        upstream = tuple(container_cpu_seconds(c) for c in self.upstreams)
        opens = sum(passive_opens(c.pid) for c in self.upstreams)
        taken = Sample(
            time.perf_counter(),
            self._gateway_cpu_s,
            tuple(rss),
            total_rss,
            upstream,
            opens,
            machine_busy_seconds(),
            tuple(established(c.pid) for c in self.upstreams),
        )
        self.samples.append(taken)
        return taken

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self.sample()

    @contextmanager
    def running(self) -> Iterator["StackProbe"]:
        self.samples.clear()
        self._last_cpu.clear()
        self._gateway_cpu_s = 0.0
        self._stop.clear()
        self.sample()
        thread = threading.Thread(target=self._run, name="stack-probe", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=5)
            self.sample()

    def cost(self, start: float, end: float) -> WindowCost | None:
        """The window [start, end] (perf_counter times), interpolated between samples."""
        if end <= start or len(self.samples) < 2:
            return None
        if self.samples[0].at > start or self.samples[-1].at < end:
            return None
        inside = [s for s in self.samples if start <= s.at <= end]
        peak = max((max(s.worker_rss_bytes, default=0) for s in inside), default=0)
        peak_total = max((s.gateway_rss_bytes for s in inside), default=0)
        peak_open = max((max(s.upstream_established, default=0) for s in inside), default=0)
        (busy_start, opens_start, gateway_start, *upstream_start) = interpolate(self.samples, start)
        (busy_end, opens_end, gateway_end, *upstream_end) = interpolate(self.samples, end)
        upstream = [b - a for a, b in zip(upstream_start, upstream_end, strict=True)]
        window = end - start
        return WindowCost(
            gateway_cpu_s=gateway_end - gateway_start,
            peak_worker_rss_mib=peak / 2**20,
            peak_gateway_rss_mib=peak_total / 2**20,
            upstream_cpu_cores=sum(upstream) / window,
            busiest_upstream_cores=max(upstream, default=0.0) / window,
            upstream_connections=opens_end - opens_start,
            machine_busy_cores=(busy_end - busy_start) / window,
            peak_upstream_established=peak_open,
        )


def interpolate(samples: list[Sample], at: float) -> list[float]:
    """The cumulative figures at time `at`: the machine's busy time, the upstreams'
    accepted connections, the gateway's CPU, then each upstream's CPU."""
    times = [s.at for s in samples]
    index = min(max(bisect.bisect_left(times, at), 1), len(samples) - 1)
    before, after = samples[index - 1], samples[index]
    share = 0.0 if after.at == before.at else (at - before.at) / (after.at - before.at)
    values = zip(
        (
            before.machine_busy_s,
            before.upstream_opens,
            before.gateway_cpu_s,
            *before.upstream_cpu_s,
        ),
        (after.machine_busy_s, after.upstream_opens, after.gateway_cpu_s, *after.upstream_cpu_s),
        strict=True,
    )
    return [a + share * (b - a) for a, b in values]


def probe_of(
    containers_of: Callable[[str], list[str]],
    gateway_service: str,
    upstream_services: Iterable[str],
) -> StackProbe | None:
    """A probe for one gateway, all its replicas, and the upstreams, if this host can see
    every one of them."""
    if not CGROUP_ROOT.is_dir() or os.name != "posix":
        return None
    found: dict[str, list[Container]] = {}
    for service in (gateway_service, *upstream_services):
        containers = [resolve(service, cid) for cid in containers_of(service)]
        if not containers or None in containers:
            return None
        found[service] = [c for c in containers if c is not None]
    gateways = found.pop(gateway_service)
    return StackProbe(gateways, [c for cs in found.values() for c in cs])


def compose_probe(
    project: str, gateway_service: str, upstream_services: Iterable[str]
) -> StackProbe | None:
    """A probe for one compose project's gateway and upstreams."""
    return probe_of(partial(compose_containers, project), gateway_service, upstream_services)


def swarm_probe(
    stack: str, gateway_service: str, upstream_services: Iterable[str]
) -> StackProbe | None:
    """A probe for one swarm stack's gateway replicas and upstreams, on this node."""
    return probe_of(partial(swarm_containers, stack), gateway_service, upstream_services)
