"""SERVER: the async gateway under granian and under uvicorn answers the same contract, and
still overlaps its calls (serving/serve.py)."""

import statistics

import pytest

from bench.harness.stack import healthz
from gateway.models import NewsResponse
from serving.settings import SERVER_LACKS, ServerName
from tests.integration.stack import Stack, burst, fetch, record

# Slow (make test-slow): two restarts. The compare matrix's server axis (test_bench.py)
# measures each server's fan-out against its ideal.
pytestmark = [pytest.mark.integration, pytest.mark.timing, pytest.mark.slow]

CLIENTS = 10


OTHER_SERVERS: list[ServerName] = ["granian", "uvicorn"]


@pytest.mark.parametrize("server", OTHER_SERVERS)
def test_another_server_serves_the_same_fan_out(stack: Stack, server: ServerName) -> None:
    # The upstreams stay on the stack's server: only this gateway changes.
    with stack.reconfigured("async-gateway", deps=False, SERVER=server):
        health = healthz(stack.url("async", ""))
        assert health.server == server
        assert health.server_lacks == list(SERVER_LACKS[server])
        url = stack.url("async")
        fetch(url)  # warm-up: first connections and DNS inside the stack
        _, samples = burst(url, CLIENTS)
        assert {sample.status for sample in samples} == {200}
        for sample in samples:
            answer = NewsResponse.model_validate(sample.body)
            assert answer.gateway == "async" and all(s.ok for s in answer.sources)
        # C=10 at once, one worker: each answer in about the slowest source's time.
        ratio = statistics.median(s.latency_s * 1000 / max(s.source_elapsed_ms) for s in samples)
        record(f"async under {server}, C={CLIENTS}: client latency / max(sources)", ratio, "≈ 1")
        # sum/max is 2 with the default 300/500/800 ms: calls one after another cannot pass.
        assert ratio <= 1.5
