"""How many cores this container may use: its cgroup's CPU quota, not the host's count."""

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def cpu_limit_cores(root: Path = CGROUP) -> float | None:
    """The CPU quota of this process's cgroup, in cores; None when there is none.

    cgroup v2: cpu.max holds "QUOTA PERIOD", or "max PERIOD" without a limit. cgroup v1:
    cpu.cfs_quota_us (-1 without a limit) over cpu.cfs_period_us. In a container both are
    the container's own, at the root of its cgroup mount.
    """
    v2 = root / "cpu.max"
    if v2.is_file():
        limit, interval = v2.read_text().split()[:2]
        return None if limit == "max" else int(limit) / int(interval)
    for folder in (root / "cpu", root / "cpu,cpuacct", root):
        quota_file = folder / "cpu.cfs_quota_us"
        if quota_file.is_file():
            quota = int(quota_file.read_text())
            period = int((folder / "cpu.cfs_period_us").read_text())
            return None if quota <= 0 else quota / period
    return None


def whole_cores(root: Path = CGROUP) -> int:
    """The whole cores the container may use, at least one: gunicorn's worker count for
    WEB_CONCURRENCY=auto, and the size of a gateway's process pool.

    os.cpu_count() is the host's cores whatever the container's limit: sized by it, a
    container limited to 1 CPU on a 32-core host runs 32 workers that fight over one core
    (the widely used uvicorn-gunicorn images did exactly that).
    """
    cores = float(os.cpu_count() or 1)
    limit = cpu_limit_cores(root)
    if limit is not None:
        cores = min(cores, limit)
    return max(1, math.floor(cores))
