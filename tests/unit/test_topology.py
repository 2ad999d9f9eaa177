"""One place for the lab's topology: .env. Compose, the settings' own defaults and the
benchmark must agree with it."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.harness.topology import ROOT, SOURCE_NAMES, Topology
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
    files = (
        "docker-compose.yml",
        "docker-compose.upstream-ports.yml",
        "docker-compose.swarm.yml",
        "docker-compose.exposed.yml",
    )
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


def dotenv() -> dict[str, str]:
    lines = (ROOT / ".env").read_text().splitlines()
    return dict(line.partition("=")[::2] for line in lines if line and not line.startswith("#"))


def test_a_gateways_shutdown_windows_nest_in_compose() -> None:
    env, gateway = dotenv(), compose_file()["x-gateway"]
    assert isinstance(gateway, dict)
    assert gateway["stop_grace_period"] == "${GATEWAY_STOP_GRACE_PERIOD:?set in .env}"
    grace_s = float(env["GATEWAY_STOP_GRACE_PERIOD"].removesuffix("s"))
    graceful_s = float(env["GATEWAY_GRACEFUL_TIMEOUT_S"])
    longest_request_s = (
        int(env["GATEWAY_MAX_DEADLINE_MS"]) + int(env["GATEWAY_QUEUE_TIMEOUT_MS"])
    ) / 1000
    assert grace_s > graceful_s > longest_request_s


def k8s_deployments(name: str) -> list[dict[str, Any]]:
    documents = yaml.safe_load_all((ROOT / "k8s" / name).read_text())
    return [doc for doc in documents if doc and doc["kind"] == "Deployment"]


def test_a_gateways_shutdown_windows_nest_in_k8s() -> None:
    for deployment in k8s_deployments("gateways.yaml"):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {item["name"]: item.get("value") for item in container["env"]}
        pre_stop_s = float(container["lifecycle"]["preStop"]["exec"]["command"][1])
        graceful_s = float(env["GUNICORN_GRACEFUL_TIMEOUT"])
        # With the levers off no request asks for more than the default deadline.
        assert env["LAB_LEVERS"] == "off"
        longest_request_s = (int(env["GATEWAY_DEADLINE_MS"]) + 100) / 1000  # the queue wait
        assert pod["terminationGracePeriodSeconds"] > pre_stop_s + graceful_s
        assert graceful_s > longest_request_s


def test_every_pod_runs_as_the_dockerfiles_user_without_a_token() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid, gid = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE).groups()  # type: ignore[union-attr]
    for name in ("gateways.yaml", "upstreams.yaml"):
        for deployment in k8s_deployments(name):
            pod = deployment["spec"]["template"]["spec"]
            assert pod["automountServiceAccountToken"] is False
            context = pod["securityContext"]
            assert (str(context["runAsUser"]), str(context["runAsGroup"])) == (uid, gid)
            assert all(volume["emptyDir"].get("sizeLimit") for volume in pod["volumes"])


def test_the_exposed_overlay_turns_every_lever_off() -> None:
    base, exposed = compose_file()["services"], compose_file("docker-compose.exposed.yml")
    services = exposed["services"]
    assert isinstance(base, dict) and isinstance(services, dict)
    # PostgreSQL has no levers to turn off, and publishes no port in either.
    assert set(services) == set(base) - {"postgres"}
    assert "ports" not in base["postgres"]
    for name, service in services.items():
        env = service["environment"]
        assert env["LAB_LEVERS"] == "off", name
        if name.endswith("-gateway"):
            assert env["ADMIN_PORT"] == "9000" and env["GATEWAY_MAX_IN_FLIGHT"] not in ("", "0")
        assert "ports" not in service  # the admin port is published nowhere


def test_the_hostile_overlay_points_the_gateways_at_every_case() -> None:
    from tests.hostile import EXPECTED_KIND

    overlay = compose_file("tests/integration/docker-compose.hostile.yml")
    sources = overlay["x-hostile-sources"]
    assert isinstance(sources, dict)
    named = [item.partition("=")[0] for item in sources["GATEWAY_SOURCES"].split(",")]
    assert named == ["wire", *EXPECTED_KIND]
