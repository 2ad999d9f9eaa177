"""Fixtures: real upstream apps on loopback, shared by the whole unit session."""

from collections.abc import Iterator

import pytest

from tests.unit.loopback import DELAYS_MS, Upstreams, running_upstreams, unused_loopback_url


@pytest.fixture(scope="session")
def upstreams() -> Iterator[Upstreams]:
    with running_upstreams(DELAYS_MS) as running:
        yield running


@pytest.fixture(scope="session")
def unused_url() -> str:
    return unused_loopback_url()
