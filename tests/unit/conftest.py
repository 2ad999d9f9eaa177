"""Fixtures: real upstream apps on loopback, shared by the whole unit session."""

from collections.abc import Iterator

import pytest

from tests.unit.loopback import DELAYS_MS, Upstreams, running_upstreams, unused_loopback_url
from tests.unit.postgres import Postgres, running_postgres


@pytest.fixture(scope="session", autouse=True)
def one_worker() -> Iterator[None]:
    """In process, one worker serves: what a gateway reports of its server (WEB_CONCURRENCY,
    read as serving/serve.py reads it) says so, unless a test sets another count."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WEB_CONCURRENCY", "1")
        yield


@pytest.fixture(scope="session")
def upstreams() -> Iterator[Upstreams]:
    with running_upstreams(DELAYS_MS) as running:
        yield running


@pytest.fixture(scope="session")
def unused_url() -> str:
    return unused_loopback_url()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A seeded PostgreSQL on loopback (tests/unit/postgres.py), once per test process."""
    with running_postgres() as server:
        yield server
