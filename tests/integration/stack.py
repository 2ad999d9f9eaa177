"""Helpers for the integration tests: the compose stack under test, and ways to load it."""

import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]


def run_script(name: str, *args: str, env: dict[str, str], timeout: float) -> str:
    """`scripts/NAME ARGS...` with this environment: its output, or an error that ends
    with the end of what it said on stderr."""
    result = subprocess.run(
        [str(ROOT / "scripts" / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{name} {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return result.stdout


REQUIRE_DOCKER = "FANOUT_REQUIRE_DOCKER"
UPSTREAMS = ("wire", "gazette", "chronicle")
DEADLINE_MS = 2500  # the stack's default fan-out deadline (.env)

# Ratios measured in this run, printed at the end so the numbers can be quoted.
MEASURED: list[tuple[str, float, str]] = []


def record(name: str, value: float, expectation: str) -> None:
    MEASURED.append((name, value, expectation))


def docker_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer in 30 s"
    if info.returncode != 0:
        return "no Docker engine answers `docker info`"
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    if not v2 and shutil.which("docker-compose") is None:
        return "neither `docker compose` nor `docker-compose` is installed"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_run(length: int, attempts: int = 20) -> int:
    """The first of `length` consecutive free loopback ports."""
    for _ in range(attempts):
        first = free_port()
        try:
            for port in range(first, first + length):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError(f"no {length} consecutive free ports in {attempts} attempts")


@dataclass
class Stack:
    """One compose project. Every action goes through the same scripts the README names."""

    project: str
    env: dict[str, str] = field(default_factory=dict)

    def script(self, *args: str, timeout: float = 900, check: bool = True) -> str:
        env = {**os.environ, "COMPOSE_PROJECT_NAME": self.project, **self.env}
        result = subprocess.run(
            [str(ROOT / "scripts" / args[0]), *args[1:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}"
                f"\n--- logs ---\n{self.logs()}"
            )
        return result.stdout

    def logs(self) -> str:
        return self.script("compose.sh", "logs", "--no-color", "--tail=40", check=False)

    def up(self) -> None:
        self.script("up.sh")

    def restart(self, service: str, deps: bool = True, **env: str) -> None:
        """Recreate one service with changed settings, and wait until it is healthy. Without
        `deps`, a setting every service reads (SERVER) changes this one alone."""
        self.env.update(env)
        only = () if deps else ("--no-deps",)
        self.script("up.sh", "--no-build", *only, service, timeout=300)

    @contextmanager
    def reconfigured(self, service: str, deps: bool = True, **env: str) -> Iterator[None]:
        """One service runs with these settings inside the block; afterwards it runs again
        with the values it had before (set or unset), whatever the block did."""
        before = {name: self.env.get(name) for name in env}
        self.restart(service, deps, **env)
        try:
            yield
        finally:
            for name, value in before.items():
                if value is None:
                    self.env.pop(name, None)
                else:
                    self.env[name] = value
            self.restart(service, deps)

    def down(self) -> None:
        self.script("down.sh", "--volumes", timeout=300, check=False)

    def container(self, service: str) -> str:
        """The id of one service's container."""
        (container,) = self.script("compose.sh", "ps", "-q", service).split()
        return container

    def docker(self, *args: str) -> None:
        subprocess.run(["docker", *args], check=True, capture_output=True, timeout=60)

    def bench(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """`python -m bench ...` as a user runs it, pointed at this compose project."""
        env = {**os.environ, "COMPOSE_PROJECT_NAME": self.project, **self.env, "COLUMNS": "200"}
        return subprocess.run(
            [sys.executable, "-m", "bench", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def url(self, gateway: str, path: str = "/news") -> str:
        port = self.env["SYNC_PORT" if gateway == "sync" else "ASYNC_PORT"]
        return f"http://127.0.0.1:{port}{path}"

    def upstream_url(self, name: str) -> str:
        """An upstream on loopback, published by docker-compose.upstream-ports.yml."""
        return f"http://127.0.0.1:{self.env[f'{name.upper()}_PORT']}"


@dataclass(frozen=True)
class Sample:
    latency_s: float  # measured by this client, across containers
    status: int
    body: dict[str, Any]

    @property
    def source_elapsed_ms(self) -> list[float]:
        return [source["elapsed_ms"] for source in self.body["sources"]]


def fetch(url: str, **params: str) -> Sample:
    # A new connection per request, so gunicorn may hand each one to any worker.
    started = time.perf_counter()
    response = requests.get(url, params=params, headers={"Connection": "close"}, timeout=60)
    latency = time.perf_counter() - started
    return Sample(latency, response.status_code, response.json())


def median_latency(url: str, repeats: int = 3, **params: str) -> float:
    return statistics.median(fetch(url, **params).latency_s for _ in range(repeats))


def burst(url: str, clients: int, **params: str) -> tuple[float, list[Sample]]:
    """`clients` requests at once; returns the wall time of the whole burst."""
    barrier = threading.Barrier(clients)

    def one(_: int) -> Sample:
        barrier.wait(timeout=30)
        return fetch(url, **params)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        samples = list(pool.map(one, range(clients)))
    return time.perf_counter() - started, samples


def closed_loop(
    url: str, clients: int, total: int, deadline_s: float, **params: str
) -> tuple[float, list[Sample]]:
    """`clients` loops share `total` requests, bounded by `deadline_s`; returns wall and samples."""
    lock = threading.Lock()
    remaining = [total]
    stop_at = time.perf_counter() + deadline_s

    def client(_: int) -> list[Sample]:
        samples = []
        while time.perf_counter() < stop_at:
            with lock:
                if remaining[0] == 0:
                    break
                remaining[0] -= 1
            samples.append(fetch(url, **params))
        return samples

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        samples = [sample for batch in pool.map(client, range(clients)) for sample in batch]
    return time.perf_counter() - started, samples
