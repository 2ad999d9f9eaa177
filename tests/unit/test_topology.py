"""One place for the lab's topology: .env. Compose, the settings' own defaults and the
benchmark must agree with it."""

from pathlib import Path

import pytest
import yaml

from bench.topology import ROOT, SOURCE_NAMES, Topology
from gateway.config import GatewaySettings


def compose_file(name: str = "docker-compose.yml") -> dict[str, object]:
    loaded: dict[str, object] = yaml.safe_load(Path(ROOT / name).read_text())
    return loaded


def test_it_reads_dotenv_and_the_shell_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WIRE_DELAY_MS", raising=False)
    assert Topology().delays_ms == {"wire": 300, "gazette": 500, "chronicle": 800}
    monkeypatch.setenv("WIRE_DELAY_MS", "123")
    assert Topology().delays_ms["wire"] == 123


def test_compose_runs_one_upstream_per_source_and_the_gateways_call_them_in_order() -> None:
    services = compose_file()["services"]
    assert isinstance(services, dict)
    upstreams = [name for name in services if name.startswith("upstream-")]
    assert upstreams == [f"upstream-{name}" for name in SOURCE_NAMES]
    gateway_env = compose_file()["x-gateway-env"]
    assert isinstance(gateway_env, dict)
    named = [item.partition("=")[0] for item in gateway_env["GATEWAY_SOURCES"].split(",")]
    assert named == list(SOURCE_NAMES)
    overlay = compose_file("docker-compose.upstream-ports.yml")["services"]
    assert isinstance(overlay, dict) and list(overlay) == upstreams


def test_every_compose_variable_has_its_value_in_dotenv() -> None:
    files = ("docker-compose.yml", "docker-compose.upstream-ports.yml", "docker-compose.swarm.yml")
    text = "".join((ROOT / name).read_text() for name in files)
    needed = {part.split(":?")[0] for part in text.split("${")[1:] if ":?" in part.split("}")[0]}
    defined = {
        line.partition("=")[0]
        for line in (ROOT / ".env").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert needed and needed <= defined, needed - defined


def test_the_gateways_own_defaults_are_the_stacks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("THREADPOOL_TOKENS", "MAX_CONNECTIONS", "MAX_KEEPALIVE_CONNECTIONS"):
        monkeypatch.delenv(f"GATEWAY_{name}", raising=False)
    settings, topology = GatewaySettings(), Topology()
    assert settings.threadpool_tokens == topology.sync_threadpool_tokens
    assert settings.max_connections == topology.async_max_connections
    assert settings.max_keepalive_connections == topology.async_max_keepalive_connections
    # The sources keep idle connections longer than the gateways reuse them.
    assert topology.upstream_keepalive_s > settings.keepalive_expiry_s
