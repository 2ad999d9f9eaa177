import gc

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from observability.metrics import no_state
from serving.heap import PYTHON_DEFAULT, with_frozen_heap
from serving.settings import ServerSettings


def collector_app(threshold: int | None) -> FastAPI:
    """An app that reports the collector as its requests see it."""
    app = FastAPI(lifespan=with_frozen_heap(no_state, threshold))

    @app.get("/gc")
    def collector() -> dict[str, int]:
        return {"threshold": gc.get_threshold()[0], "frozen": gc.get_freeze_count()}

    return app


def test_a_started_worker_collects_past_its_frozen_heap_and_ends_as_it_began() -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with TestClient(collector_app(12_345)) as client:
        seen = client.get("/gc").json()
    assert seen["threshold"] == 12_345
    # Everything the process held at startup (this test run's modules included).
    assert seen["frozen"] > 10_000
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_pythons_default_leaves_the_collector_alone() -> None:
    before = gc.get_threshold()
    with TestClient(collector_app(PYTHON_DEFAULT)) as client:
        seen = client.get("/gc").json()
    assert seen == {"threshold": before[0], "frozen": 0}


def test_the_threshold_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GC_THRESHOLD", raising=False)
    assert ServerSettings().gc_threshold == 100_000
    monkeypatch.setenv("GC_THRESHOLD", "4096")
    with TestClient(collector_app(None)) as client:
        assert client.get("/gc").json()["threshold"] == 4096
