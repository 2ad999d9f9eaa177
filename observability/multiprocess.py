"""Metrics across gunicorn's workers that survive recycling.

prometheus_client's multiprocess mode keeps one file per worker and metric type, and sums
them at every scrape. A dead worker's counters and histograms must go on counting, so its
files stay, and with ``GUNICORN_MAX_REQUESTS`` every recycle adds two: the scrape reads
more files each time, without bound. ``archive_dead_worker`` (gunicorn's ``child_exit``,
in the master) adds a dead worker's values into one archive file per type and removes its
own, so the directory holds the live workers' files and the archives, whatever the churn.

This module imports only prometheus_client: the gunicorn master loads it.
"""

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

# The types whose values outlive their worker (gauges have their own modes, and the live
# ones are dropped by mark_process_dead). The lab has no summaries; they add the same way.
ACCUMULATED_TYPES = ("counter", "histogram", "summary")
# "<type>_archive.db": a name the collector reads like any worker's (its type is the part
# before the first "_"), and that no pid can take.
ARCHIVE = "archive"
# A scrape that globbed a dead worker's file just before the master removed it tries again.
COLLECT_ATTEMPTS = 3


def archive_dead_worker(directory: str | Path, pid: int) -> int:
    """Add the dead worker's counters, histograms and summaries to the archives, then remove
    its files. Returns how many files it removed.

    The archive is written before the worker's file goes, so a scrape in between may count
    that worker twice, once, for the microseconds the master takes: never a value lost.
    """
    removed = 0
    for kind in ACCUMULATED_TYPES:
        dead = Path(directory) / f"{kind}_{pid}.db"
        if not dead.exists():
            continue
        archive = MmapedDict(str(Path(directory) / f"{kind}_{ARCHIVE}.db"))
        try:
            for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(dead)):
                total, _ = archive.read_value(key)
                archive.write_value(key, total + value, timestamp)
        finally:
            archive.close()
        dead.unlink()
        removed += 1
    return removed


class RecyclingSafeCollector(MultiProcessCollector):
    """prometheus_client's collector, for a directory whose dead workers' files the master
    removes: a file gone between the glob and its read makes the scrape read again, where
    the stock collector raises (a 500 on /metrics)."""

    # Only a signature: prometheus_client's own constructor has no annotations, so strict
    # mypy would refuse every call to it untyped.
    def __init__(self, registry: CollectorRegistry, path: str) -> None:
        super().__init__(registry, path)

    def collect(self) -> Iterable[Metric]:
        for attempt in range(COLLECT_ATTEMPTS):
            files = glob.glob(os.path.join(self._path, "*.db"))
            try:
                return self.merge(files, accumulate=True)  # type: ignore[no-any-return]
            except FileNotFoundError:
                if attempt == COLLECT_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")
