"""Fixtures: the real compose stack, under its own project name and ports, torn down
whatever happens; and the ratios the run measured, printed at its end."""

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.stack import (
    DEADLINE_MS,
    MEASURED,
    REQUIRE_DOCKER,
    UPSTREAMS,
    Stack,
    docker_unavailable,
    free_port,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The swarm's tests last, in the order they came: leaving the swarm at their end cuts
    the networking of the compose stack's containers, and a compose test after them found
    its gateway refusing connections (test_sweep.py, once it moved to make test-slow)."""
    items.sort(key=lambda item: item.get_closest_marker("swarm") is not None)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not MEASURED:
        return
    terminalreporter.section("measured ratios (same run, across containers)")
    for name, value, expectation in MEASURED:
        terminalreporter.write_line(f"{name:<62} {value:6.2f}   {expectation}")


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    reason = docker_unavailable()
    if reason is not None:
        if os.environ.get(REQUIRE_DOCKER) == "1":
            pytest.fail(f"{REQUIRE_DOCKER}=1 but {reason}", pytrace=False)
        pytest.skip(f"integration tests need a Docker engine: {reason}")
    stack = Stack(
        project=f"fanout-it-{uuid.uuid4().hex[:8]}",
        env={
            "SYNC_PORT": str(free_port()),
            "ASYNC_PORT": str(free_port()),
            "CONSOLE_PORT": str(free_port()),
            "SYNC_WORKERS": "1",
            "ASYNC_WORKERS": "1",
            "ACCESS_LOG": "false",
            # A dripping body that would run 5x past the 2.5 s deadline, as a hang (30 s)
            # does: a gateway that waited it out cannot pass for one the deadline cut.
            "UPSTREAM_DRIP_MS": str(5 * DEADLINE_MS),
            # The upstreams on loopback too, for the schemathesis run.
            "COMPOSE_OVERLAYS": "docker-compose.upstream-ports.yml",
            **{f"{name.upper()}_PORT": str(free_port()) for name in UPSTREAMS},
        },
    )
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
