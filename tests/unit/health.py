"""The /healthz a gateway reports, for tests that fake a stack: one place builds it, from the
model the route returns."""

from typing import Any

from bench.experiments.plan import GatewayConfig
from gateway.models import GatewayHealth


def health_of(config: GatewayConfig, **changes: Any) -> GatewayHealth:
    """What a gateway running this config reports, with these fields changed."""
    fields: dict[str, Any] = {
        "gateway": config.gateway,
        "instance": f"{config.gateway}-gateway-1",
        "node": None,
        "sources": ["wire", "gazette", "chronicle", "archive"],
        "default_sources": ["wire", "gazette", "chronicle"],
        "archive_driver": "psycopg" if config.gateway == "sync" else "asyncpg",
        "archive_pool_size": 10,
        "archive_delay_ms": 300,
        "http_client": config.http_client,
        "workers": config.workers,
        "server": config.server,
        "server_lacks": [],
        "threadpool_tokens": config.threadpool_tokens,
        "executor_threads": config.threadpool_tokens * 3,
        "requests_pool_maxsize": config.threadpool_tokens,
        "max_connections": config.max_connections,
        "max_keepalive_connections": config.max_keepalive_connections,
        "deadline_ms": 2500,
        "max_deadline_ms": 10_000,
        "connect_retries": 0,
        "max_in_flight": config.max_in_flight,
        "queue_timeout_ms": 100,
        "retry_after_s": 1,
        "max_hold_ms": 60_000,
        "cpu_rounds_per_ms": 1000.0,
        "cpu_processes": 2,
    }
    return GatewayHealth(**{**fields, **changes})


def as_configured(health: GatewayHealth) -> dict[str, object]:
    """All but what each start makes anew with the same settings: the replica's hostname
    (a recreated container's) and the CPU calibration."""
    return health.model_dump(exclude={"instance", "cpu_rounds_per_ms"})
