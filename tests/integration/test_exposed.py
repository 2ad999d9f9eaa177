"""The exposed profile (docker-compose.exposed.yml) on the real stack: the lab's levers are
refused, /docs and /metrics answer only on the admin port, and admission is bounded."""

import subprocess

import httpx
import pytest

from bench.harness.stack import healthz
from tests.integration.stack import Stack

pytestmark = [pytest.mark.integration]

PUBLIC_ADMIN_PATHS = ["/docs", "/openapi.json", "/metrics"]


def inside(stack: Stack, service: str, url: str) -> str:
    """GET `url` from inside the service's container (the admin port is published nowhere)."""
    script = (
        f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    )
    result = subprocess.run(
        ["docker", "exec", stack.container(service), "python", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_the_exposed_profile_refuses_the_levers_and_keeps_admin_paths_private(
    stack: Stack,
) -> None:
    overlays = f"{stack.env['COMPOSE_OVERLAYS']} docker-compose.exposed.yml"
    with stack.reconfigured("async-gateway", COMPOSE_OVERLAYS=overlays):
        base = stack.url("async", "")
        assert healthz(base).max_in_flight == 200
        assert httpx.get(f"{base}/news").status_code == 200
        for params, name in (
            ({"fault": "wire:hang"}, "fault"),
            ({"deadline_ms": "5000"}, "deadline_ms"),
        ):
            response = httpx.get(f"{base}/news", params=params)
            assert response.status_code == 422
            assert response.json()["detail"][0]["loc"] == ["query", name]
        for path in ("/news/blocking", "/wrong", "/cpu/inline", *PUBLIC_ADMIN_PATHS):
            assert httpx.get(f"{base}{path}").status_code == 404, path
        # The upstreams took the profile too: a request cannot pick their fault or delay.
        upstream = httpx.get(f"{stack.upstream_url('wire')}/news", params={"fault": "hang"})
        assert upstream.status_code == 422
        # The admin port serves what the public one hides, inside the stack's network.
        assert "fanout_source_duration_seconds" in inside(
            stack, "async-gateway", "http://127.0.0.1:9000/metrics"
        )
        assert '"openapi"' in inside(stack, "async-gateway", "http://127.0.0.1:9000/openapi.json")
    # The lab again, as it was.
    assert httpx.get(f"{stack.url('async', '')}/docs").status_code == 200
