"""The cost probe: /proc and cgroup readers on real processes, and a window's arithmetic."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.harness.probe import (
    Container,
    Sample,
    StackProbe,
    cgroup_dir,
    cpu_seconds,
    server_processes,
    server_workers,
    status_field,
)

TreeStarter = Callable[[str, int], tuple[Container, list[int]]]
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


# Process trees as each server starts them, with Python processes that stand in for them.
# Each process writes its pid on the root's stdout once it runs, in one write: print()
# writes the number and the newline apart, and two processes interleaved them under load.
# A process that names itself (/proc/self/comm) stands in for Docker's init.
LEAF = "import os, time; os.write(1, b'%d\\n' % os.getpid()); time.sleep(30)"


def _parent_of(*children: str, comm: str = "") -> str:
    rename = f"open('/proc/self/comm', 'w').write({comm!r}); " if comm else ""
    spawns = "".join(f"subprocess.Popen([sys.executable, '-c', {child!r}]); " for child in children)
    return (
        f"import os, subprocess, sys, time; {rename}os.write(1, b'%d\\n' % os.getpid()); "
        f"{spawns}time.sleep(30)"
    )


# uvicorn's resource tracker says what it is in its command line, as multiprocessing's does.
TRACKER = LEAF + "  # multiprocessing.resource_tracker"
# gunicorn: an arbiter with two workers, one of which runs a process pool.
GUNICORN = _parent_of(LEAF, _parent_of(LEAF))
# uvicorn's supervisor: its resource tracker, then a worker.
UVICORN = _parent_of(TRACKER, LEAF)


@pytest.fixture
def start_tree(tmp_path: Path) -> Iterator[TreeStarter]:
    started: list[subprocess.Popen[str]] = []
    pids: list[int] = []

    def start(script: str, printed: int) -> tuple[Container, list[int]]:
        root = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        started.append(root)
        assert root.stdout is not None
        pids.extend(int(root.stdout.readline()) for _ in range(printed))
        # A cgroup of our own making: the tree, and this test's process.
        everyone = [os.getpid(), root.pid, *pids]
        (tmp_path / "cgroup.procs").write_text("\n".join(map(str, everyone)))
        return Container("gateway", root.pid, tmp_path), pids

    yield start
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for root in started:
        root.kill()
        root.communicate()


@linux_only
def test_gunicorns_workers_are_its_arbiters_children(start_tree: TreeStarter) -> None:
    # Printed: the arbiter, a worker, the other worker, its pool process.
    container, (arbiter, *rest) = start_tree(GUNICORN, 4)
    pool = next(pid for pid in rest if status_field(pid, "PPid") not in (arbiter,))
    workers = sorted(pid for pid in rest if pid != pool)
    assert server_workers(container) == workers
    # The whole gateway's memory counts the arbiter and the pool; this test's process is
    # in the cgroup but in no server's tree.
    assert server_processes(container) == {arbiter, *workers, pool}


@linux_only
def test_a_server_alone_is_its_own_worker(start_tree: TreeStarter) -> None:
    container, (alone,) = start_tree(LEAF, 1)
    assert server_workers(container) == [alone]
    assert server_processes(container) == {alone}


@linux_only
def test_under_an_init_the_server_is_the_inits_child(start_tree: TreeStarter) -> None:
    # Printed: the init, the supervisor, then (in either order) the worker and the tracker.
    container, (init, supervisor, *rest) = start_tree(_parent_of(UVICORN, comm="docker-init"), 4)
    (worker,) = server_workers(container)
    assert worker in rest and status_field(worker, "PPid") == supervisor
    assert server_processes(container) == {supervisor, *rest}


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
