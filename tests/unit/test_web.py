"""What a fan-out request may ask for, as the schema says it and as the gateways enforce it:
the patterns of ?sources= and ?fault=, the lab's levers switch, and the admin port."""

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import async_app, sync_app
from gateway.config import GatewaySettings
from gateway.sources import select_sources
from gateway.web import ADMIN_PATHS, parse_faults, source_patterns
from serving.settings import ServerSettings
from tests.unit.loopback import Upstreams
from upstream.config import UpstreamSettings
from upstream.main import create_app as create_upstream

GATEWAYS = {"sync": sync_app.create_app, "async": async_app.create_app}
SETTINGS = GatewaySettings(sources={"wire": "http://127.0.0.1:1", "top-wire": "http://127.0.0.1:2"})
SOURCES_PATTERN, FAULT_PATTERN = source_patterns(SETTINGS)


def in_schema(pattern: str, value: str) -> bool:
    """JSON Schema's reading of a ^...$ pattern: Python's $ would also take a final newline."""
    return re.fullmatch(pattern.removeprefix("^").removesuffix("$"), value) is not None


def accepts(check: Callable[[], object]) -> bool:
    try:
        check()
    except ValueError:
        return False
    return True


def query_schema(client: TestClient, path: str) -> dict[str, dict[str, Any]]:
    operation = client.get("/openapi.json").json()["paths"][path]["get"]
    return {parameter["name"]: parameter["schema"] for parameter in operation["parameters"]}


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(SOURCES_PATTERN, fullmatch=True) | st.text(alphabet="wiretop-, :\n", max_size=24)
)
def test_the_sources_pattern_is_what_select_sources_accepts(requested: str) -> None:
    accepted = accepts(lambda: select_sources(SETTINGS.source_list, requested))
    assert accepted == in_schema(SOURCES_PATTERN, requested)


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(FAULT_PATTERN, fullmatch=True)
    | st.text(alphabet="wiretop-:hang,erro\n", max_size=40)
)
def test_the_fault_pattern_is_what_parse_faults_accepts(requested: str) -> None:
    # A source named twice is refused by both: the pattern's lookahead, the code's check.
    accepted = accepts(lambda: parse_faults(SETTINGS.source_list, requested))
    assert accepted == in_schema(FAULT_PATTERN, requested)


def test_a_name_inside_another_is_not_a_repeat() -> None:
    assert in_schema(FAULT_PATTERN, "top-wire:hang,wire:error")
    assert not in_schema(FAULT_PATTERN, "wire:hang,top-wire:error,wire:error")


@pytest.fixture(params=list(GATEWAYS))
def levers_off(request: pytest.FixtureRequest, upstreams: Upstreams) -> Iterator[TestClient]:
    app = GATEWAYS[request.param](upstreams.settings(lab_levers=False))
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"fault": "wire:hang"}, "fault"),
        ({"deadline_ms": "2501"}, "deadline_ms"),
    ],
)
def test_with_the_levers_off_a_lever_is_a_422_naming_it(
    levers_off: TestClient, params: dict[str, str], name: str
) -> None:
    response = levers_off.get("/news", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", name]


def test_with_the_levers_off_the_per_call_client_is_refused(upstreams: Upstreams) -> None:
    app = async_app.create_app(upstreams.settings(lab_levers=False))
    with TestClient(app) as client:
        response = client.get("/news", params={"client": "per-call"})
        assert response.json()["detail"][0]["loc"] == ["query", "client"]
        assert "client" not in query_schema(client, "/news")


@pytest.mark.parametrize(
    "path", ["/news/blocking", "/wrong", "/sync_func", "/right", "/cpu/inline", "/fast/def"]
)
def test_with_the_levers_off_the_teaching_routes_are_gone(
    levers_off: TestClient, path: str
) -> None:
    assert levers_off.get(path).status_code == 404
    assert path not in levers_off.get("/openapi.json").json()["paths"]


def test_with_the_levers_off_the_schema_offers_no_lever(levers_off: TestClient) -> None:
    schema = query_schema(levers_off, "/news")
    assert "fault" not in schema
    assert schema["deadline_ms"]["anyOf"][0]["maximum"] == 2500  # the default deadline
    # A plain fan-out still answers.
    assert levers_off.get("/news", params={"sources": "wire"}).status_code == 200


def test_with_the_levers_on_the_schema_gives_each_pattern(upstreams: Upstreams) -> None:
    with TestClient(sync_app.create_app(upstreams.settings())) as client:
        schema = query_schema(client, "/news")
    sources_pattern, fault_pattern = source_patterns(upstreams.settings())
    # Beside anyOf: JSON Schema applies a pattern to a string only.
    assert schema["sources"]["pattern"] == sources_pattern
    assert schema["fault"]["pattern"] == fault_pattern
    assert schema["deadline_ms"]["anyOf"][0]["maximum"] == 10_000


def test_upstream_levers_off_refuse_delay_and_fault() -> None:
    app = create_upstream(UpstreamSettings(name="wire", delay_ms=0, lab_levers=False))
    with TestClient(app) as client:
        for name, value in (("delay_ms", "5"), ("fault", "hang")):
            response = client.get("/news", params={name: value})
            assert response.status_code == 422
            assert response.json()["detail"][0]["loc"] == ["query", name]
            assert name not in query_schema(client, "/news")
        assert client.get("/news").status_code == 200


def test_the_levers_switch_is_one_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_LEVERS", "off")
    assert not GatewaySettings().lab_levers and not UpstreamSettings().lab_levers


@pytest.mark.parametrize("gateway", list(GATEWAYS))
def test_an_admin_port_alone_serves_the_schema_and_the_metrics(
    upstreams: Upstreams, gateway: str
) -> None:
    # TestClient's requests arrive on port 80: the public port, then the admin one.
    for admin_port, expected in ((9000, 404), (80, 200)):
        serving = ServerSettings(admin_port=admin_port)
        app = GATEWAYS[gateway](upstreams.settings(serving=serving))
        with TestClient(app) as client:
            for path in sorted(ADMIN_PATHS - {"/docs/oauth2-redirect"}):
                assert client.get(path).status_code == expected, (admin_port, path)
            assert client.get("/healthz").status_code == 200
