"""UPSTREAM_TLS=true, in process: an upstream serving HTTPS with a certificate from the
lab's private CA (serving/certs.py), and each gateway client trusting that CA alone: it
answers with it, and refuses the same upstream under a CA it was not given."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient

from gateway import async_app, sync_app
from gateway.config import AsyncClientName, GatewaySettings, SyncClientName
from serving.certs import CA_FILE, leaf_file, make_certificates
from tests.unit.loopback import LiveServer
from upstream.config import UpstreamSettings
from upstream.main import create_app as create_upstream

NAME = "upstream-wire"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The lab's CA with the upstream's certificate, and another CA, made the same way."""
    lab, other = tmp_path_factory.mktemp("lab"), tmp_path_factory.mktemp("other")
    make_certificates(lab, [NAME])
    make_certificates(other, [NAME])
    return {"lab": lab / CA_FILE, "other": other / CA_FILE, "leaf": leaf_file(lab, NAME)}


@pytest.fixture(scope="module")
def https_source(certs: dict[str, Path]) -> Iterator[str]:
    upstream = create_upstream(UpstreamSettings(name="wire", delay_ms=0))
    with LiveServer(upstream, tls_cert=str(certs["leaf"])) as server:
        yield server.url


def news(settings: GatewaySettings, gateway: str, **params: str) -> dict[str, Any]:
    create_app = sync_app.create_app if gateway == "sync" else async_app.create_app
    with TestClient(create_app(settings)) as client:
        body: dict[str, Any] = client.get("/news", params=params).json()
        return body


CLIENTS = [("async", name) for name in get_args(AsyncClientName)] + [
    ("sync", name) for name in get_args(SyncClientName)
]


def settings_for(gateway: str, client: str, source: str, ca_file: Path) -> GatewaySettings:
    setting = "async_http_client" if gateway == "async" else "sync_http_client"
    return GatewaySettings.model_validate(
        {"sources": {"wire": source}, "ca_file": ca_file, setting: client}
    )


def only_source(gateway: str, client: str, source: str, ca_file: Path) -> dict[str, Any]:
    """The one source's result, from a fan-out by this gateway and client trusting ca_file."""
    results: list[dict[str, Any]] = news(settings_for(gateway, client, source, ca_file), gateway)[
        "sources"
    ]
    (result,) = results
    return result


@pytest.mark.parametrize(("gateway", "client"), CLIENTS)
def test_each_client_answers_over_tls_with_the_lab_ca(
    gateway: str, client: str, https_source: str, certs: dict[str, Path]
) -> None:
    source = only_source(gateway, client, https_source, certs["lab"])
    assert (source["ok"], source["articles"]) == (True, 10), source


@pytest.mark.parametrize(("gateway", "client"), CLIENTS)
def test_each_client_refuses_a_certificate_from_another_ca(
    gateway: str, client: str, https_source: str, certs: dict[str, Path]
) -> None:
    source = only_source(gateway, client, https_source, certs["other"])
    assert (source["ok"], source["error_kind"]) == (False, "tls")
    assert source["error"].startswith("TLS certificate refused"), source["error"]


@pytest.mark.parametrize("ca", ["lab", "other"])
def test_the_per_call_client_trusts_the_lab_ca_besides_the_bundle(
    ca: str, https_source: str, certs: dict[str, Path]
) -> None:
    settings = settings_for("async", "httpx-aiohttp", https_source, certs[ca])
    body = news(settings, "async", client="per-call")
    (source,) = body["sources"]
    assert source["ok"] is (ca == "lab")


def test_a_plain_http_source_behind_https_is_a_tls_failure(certs: dict[str, Path]) -> None:
    with LiveServer(create_upstream(UpstreamSettings(name="wire", delay_ms=0))) as plain:
        source = plain.url.replace("http://", "https://")
        body = news(settings_for("async", "aiohttp", source, certs["lab"]), "async")
    assert body["sources"][0]["error_kind"] == "tls"


def test_certificates_are_made_once_and_kept(tmp_path: Path) -> None:
    assert make_certificates(tmp_path, ["a", "b"]) is True
    ca = (tmp_path / CA_FILE).read_bytes()
    # A restart keeps them: a gateway that kept the CA still trusts the upstreams.
    assert make_certificates(tmp_path, ["a", "b"]) is False
    assert (tmp_path / CA_FILE).read_bytes() == ca
    # A name it has no certificate for: the CA's key is gone, so all are made anew.
    assert make_certificates(tmp_path, ["a", "b", "c"]) is True
    assert (tmp_path / CA_FILE).read_bytes() != ca
    assert oct(leaf_file(tmp_path, "c").stat().st_mode & 0o777) == "0o600"
