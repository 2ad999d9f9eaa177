"""The stack as the bench reaches it (bench/harness/stack.py): each gateway's /healthz, read from
a real one and validated against the model its route returns."""

import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench.experiments.plan import GatewayConfig
from bench.harness.stack import ComposeStack, healthz
from gateway import async_app, sync_app
from tests.unit.health import as_configured, health_of
from tests.unit.loopback import LiveServer, Upstreams


def test_healthz_reads_what_each_gateway_really_reports(upstreams: Upstreams) -> None:
    settings = upstreams.settings(async_http_client="httpx2", threadpool_tokens=7)
    for create_app, expected in [
        (sync_app.create_app, GatewayConfig("sync", 1, 7, "requests", 3000, 3000)),
        (async_app.create_app, GatewayConfig("async", 1, 7, "httpx2", 3000, 3000)),
    ]:
        with LiveServer(create_app(settings)) as server:
            assert GatewayConfig.running(healthz(server.url)) == expected
            stack = ComposeStack(server.url, server.url)
            assert stack.health(expected.gateway) == healthz(server.url)


def test_healthz_without_a_limit_the_matrix_needs_is_refused() -> None:
    partial = health_of(GatewayConfig("async", 1, 40, "aiohttp", 1000, 1000)).model_dump()
    del partial["max_connections"]

    async def reported(request: Request) -> JSONResponse:
        return JSONResponse(partial)

    with LiveServer(Starlette(routes=[Route("/healthz", reported)])) as server:
        with pytest.raises(ValidationError, match="max_connections"):
            healthz(server.url)


def test_a_restart_with_the_same_settings_reports_the_same_configuration() -> None:
    before = health_of(GatewayConfig("sync", 1, 40, "requests", 1000, 1000))
    # A recreated container: another hostname, another calibration of the CPU routes.
    after = before.model_copy(update={"instance": "f00dcafe", "cpu_rounds_per_ms": 812.5})
    assert after != before and as_configured(after) == as_configured(before)
    assert as_configured(before.model_copy(update={"workers": 2})) != as_configured(before)
