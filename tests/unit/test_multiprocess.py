"""Metrics that survive recycling (observability/multiprocess.py): a dead worker's values
move into the archives, its files go, and no total changes."""

import glob
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from observability.multiprocess import RecyclingSafeCollector, archive_dead_worker

# One worker's life: a counter per route, a histogram, a live gauge; then it exits.
WORKER = """
from prometheus_client import Counter, Gauge, Histogram
requests = Counter("requests", "r", ["route"])
latency = Histogram("latency_seconds", "l", buckets=(0.1, 1.0))
Gauge("in_flight", "g", multiprocess_mode="livesum").set(1)
for i in range({count}):
    requests.labels("/news" if i % 2 else "/healthz").inc()
    latency.observe(0.05 if i % 3 else 0.5)
import os; print(os.getpid())
"""


def run_worker(directory: Path, count: int) -> int:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    script = WORKER.format(count=count)
    output = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    return int(output.stdout)


def totals(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every accumulated sample, as a scrape adds them up (live gauges aside)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in registry.collect()
        if metric.type != "gauge"
        for sample in metric.samples
    }


def test_archiving_dead_workers_keeps_every_total_and_no_file(tmp_path: Path) -> None:
    pids = [run_worker(tmp_path, count) for count in (5, 8, 13)]
    before = totals(tmp_path)
    assert before[("requests_total", (("route", "/news"),))] == 2 + 4 + 6
    assert len(glob.glob(str(tmp_path / "*.db"))) == 3 * 3  # counter, histogram, gauge each

    for pid in pids:
        assert archive_dead_worker(tmp_path, pid) == 2  # its counter and histogram files
    assert totals(tmp_path) == pytest.approx(before)  # the same sums, in another order
    # The live gauges' files are mark_process_dead's to remove (gunicorn.conf.py).
    names = sorted(path.name for path in tmp_path.glob("*.db") if "gauge" not in path.name)
    assert names == ["counter_archive.db", "histogram_archive.db"]

    # A recycled worker's values add to the archive, and the files stay two.
    archive_dead_worker(tmp_path, run_worker(tmp_path, 4))
    after = totals(tmp_path)
    assert after[("requests_total", (("route", "/news"),))] == 12 + 2
    assert after[("latency_seconds_count", ())] == 5 + 8 + 13 + 4
    assert len([p for p in tmp_path.glob("*.db") if "gauge" not in p.name]) == 2


def test_a_file_removed_mid_scrape_makes_the_scrape_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_worker(tmp_path, 3)
    real_glob = glob.glob
    calls: list[str] = []

    def glob_with_a_vanished_file(pattern: str) -> list[str]:
        calls.append(pattern)
        found = real_glob(pattern)
        # The first scrape saw a dead worker's file that the master then archived.
        return [*found, str(tmp_path / "counter_99999.db")] if len(calls) == 1 else found

    monkeypatch.setattr(glob, "glob", glob_with_a_vanished_file)
    registry = CollectorRegistry()
    RecyclingSafeCollector(registry, path=str(tmp_path))
    counted = sum(
        s.value for m in registry.collect() for s in m.samples if s.name == "requests_total"
    )
    assert counted == 3 and len(calls) == 2
