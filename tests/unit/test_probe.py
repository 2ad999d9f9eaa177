"""The cost probe: /proc and cgroup readers on real processes, and a window's arithmetic."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.probe import (
    Container,
    Sample,
    StackProbe,
    cgroup_dir,
    cpu_seconds,
    gunicorn_processes,
    gunicorn_workers,
    passive_opens,
    status_field,
)

linux_only = pytest.mark.skipif(not Path("/proc/self/schedstat").exists(), reason="needs /proc")


@linux_only
def test_cpu_seconds_counts_this_process_burning_cpu() -> None:
    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert cpu_seconds(os.getpid()) - before == pytest.approx(0.2, abs=0.05)


@linux_only
def test_status_fields_are_read_in_bytes() -> None:
    assert status_field(os.getpid(), "PPid") == os.getppid()
    assert 10 * 2**20 < status_field(os.getpid(), "VmRSS") < 4 * 2**30
    assert status_field(2**22 + 1, "VmRSS") == 0  # no such process


@linux_only
def test_cgroup_dir_lists_this_process() -> None:
    found = cgroup_dir(os.getpid())
    if found is None:
        pytest.skip("this host exposes no cgroup filesystem")
    assert str(os.getpid()) in (found / "cgroup.procs").read_text().split()


# A parent with "gunicorn" in its command line that starts a child like it, as gunicorn's
# arbiter starts its workers. The child itself says its pid, on the arbiter's stdout, once
# it runs: by then both command lines are the ones the probe reads.
WORKER = "import os, time; print(os.getpid(), flush=True); time.sleep(30)"
ARBITER = f"""
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", {WORKER!r}, "gunicorn"])
time.sleep(30)
"""


@pytest.fixture
def process_tree(tmp_path: Path) -> Iterator[tuple[Container, int, int]]:
    arbiter = subprocess.Popen(
        [sys.executable, "-c", ARBITER, "gunicorn"], stdout=subprocess.PIPE, text=True
    )
    worker = None
    try:
        assert arbiter.stdout is not None
        worker = int(arbiter.stdout.readline())
        # A cgroup of our own making: the arbiter, its worker, and this test's process.
        (tmp_path / "cgroup.procs").write_text(f"{os.getpid()}\n{arbiter.pid}\n{worker}\n")
        yield Container("gateway", arbiter.pid, tmp_path), arbiter.pid, worker
    finally:
        if worker is not None:
            os.kill(worker, signal.SIGKILL)
        arbiter.kill()
        arbiter.communicate()


@linux_only
def test_workers_are_the_gunicorn_children_of_a_gunicorn(
    process_tree: tuple[Container, int, int],
) -> None:
    container, arbiter, worker = process_tree
    assert gunicorn_workers(container) == [worker]
    # The whole gateway's memory counts the arbiter too; this test's process is no gunicorn.
    assert gunicorn_processes(container) == {arbiter, worker}


def _probe(samples: list[Sample]) -> StackProbe:
    gateway = Container("gateway", 1, Path("/nonexistent"))
    probe = StackProbe([gateway], [Container("up", 2, Path("/nonexistent"))])
    probe.samples.extend(samples)
    return probe


SAMPLES = [
    Sample(
        10.0,
        0.0,
        worker_rss_bytes=(50 * 2**20,),
        gateway_rss_bytes=80 * 2**20,
        upstream_cpu_s=(1.0,),
        machine_busy_s=100.0,
    ),
    Sample(
        11.0,
        0.5,
        worker_rss_bytes=(70 * 2**20,),
        gateway_rss_bytes=100 * 2**20,
        upstream_cpu_s=(1.2,),
        machine_busy_s=101.0,
    ),
    Sample(
        12.0,
        1.5,
        worker_rss_bytes=(90 * 2**20,),
        gateway_rss_bytes=130 * 2**20,
        upstream_cpu_s=(1.6,),
        machine_busy_s=103.0,
    ),
    Sample(
        13.0,
        1.5,
        worker_rss_bytes=(99 * 2**20,),
        gateway_rss_bytes=140 * 2**20,
        upstream_cpu_s=(1.6,),
        machine_busy_s=105.0,
    ),
]


def test_a_window_is_priced_between_its_samples() -> None:
    cost = _probe(SAMPLES).cost(10.5, 12.0)
    assert cost is not None
    # Gateway CPU at 10.5 s is 0.25 (half-way from 0 to 0.5), at 12 s it is 1.5.
    assert cost.gateway_cpu_s == pytest.approx(1.25)
    # Upstream: 1.1 to 1.6 over 1.5 s.
    assert cost.upstream_cpu_cores == pytest.approx(0.5 / 1.5)
    assert cost.busiest_upstream_cores == pytest.approx(0.5 / 1.5)
    # The machine: 100.5 to 103 busy seconds over 1.5 s.
    assert cost.machine_busy_cores == pytest.approx(2.5 / 1.5)
    # The samples inside the window: 11 s and 12 s; the 13 s one is after it.
    assert cost.peak_worker_rss_mib == pytest.approx(90)
    assert cost.peak_gateway_rss_mib == pytest.approx(130)


@pytest.mark.parametrize(("start", "end"), [(9.0, 12.0), (11.0, 14.0), (12.0, 11.0)])
def test_a_window_the_samples_do_not_cover_has_no_price(start: float, end: float) -> None:
    assert _probe(SAMPLES).cost(start, end) is None


@linux_only
def test_passive_opens_counts_connections_this_namespace_accepted() -> None:
    here = Container("here", os.getpid(), Path("/"))
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        before = passive_opens(here)
        for _ in range(5):
            with socket.create_connection(server.getsockname(), timeout=5):
                server.accept()[0].close()
        # Other processes on this host may accept connections too: at least ours.
        assert passive_opens(here) - before >= 5
    assert passive_opens(Container("gone", 2**22 + 1, Path("/"))) == 0
