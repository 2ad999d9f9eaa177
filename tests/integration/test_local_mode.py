"""Local mode: the same services as gunicorn processes on loopback ports, no Docker."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness.topology import local_mode
from tests.integration.stack import fetch, free_port, free_port_run, record

pytestmark = [pytest.mark.integration, pytest.mark.timing]


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    run_dir: Path = tmp_path_factory.mktemp("local")
    env = {
        **os.environ,
        "LOCAL_RUN_DIR": str(run_dir),
        "LOCAL_UPSTREAM_PORT": str(free_port_run(3)),
        "SYNC_PORT": str(free_port()),
        "ASYNC_PORT": str(free_port()),
        "ACCESS_LOG": "false",
    }
    try:
        started = local_mode("up", env)
        logs = "".join(f"\n--- {p.name}\n{p.read_text()[-2000:]}" for p in run_dir.glob("*.log"))
        assert started.returncode == 0, started.stderr + logs
        yield env
    finally:
        stopped = local_mode("down", env)
        assert stopped.returncode == 0, stopped.stderr
    assert not list(run_dir.glob("*.pid")), "local.sh down left processes behind"


def test_local_mode_fans_out_like_the_containers(local_stack: dict[str, str]) -> None:
    sync = fetch(f"http://127.0.0.1:{local_stack['SYNC_PORT']}/news")
    concurrent = fetch(f"http://127.0.0.1:{local_stack['ASYNC_PORT']}/news")
    assert sync.status == concurrent.status == 200
    assert [s["ok"] for s in sync.body["sources"] + concurrent.body["sources"]] == [True] * 6
    sync_ratio = sync.body["elapsed_ms"] / sum(sync.source_elapsed_ms)
    async_ratio = concurrent.body["elapsed_ms"] / max(concurrent.source_elapsed_ms)
    record("local mode: sync elapsed / sum(sources)", sync_ratio, "≈ 1")
    record("local mode: async elapsed / max(sources)", async_ratio, "≈ 1")
    assert 0.95 <= sync_ratio <= 1.15
    assert 0.95 <= async_ratio <= 1.15
