"""serving/serve.py: each SERVER gets the same settings, and each one really serves, stops
gracefully, and reports itself, run as the image runs it on a loopback port."""

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway import async_app
from gateway.config import GatewaySettings
from serving.certs import CA_FILE, leaf_file, make_certificates
from serving.serve import ServerSettingError, granian_server, gunicorn_argv, main, uvicorn_config
from serving.settings import SERVERS, ServerSettings

ROOT = Path(__file__).resolve().parents[2]
APP = "upstream.main:create_app"
# Long enough that the stop surely lands while the request is in flight (it is sent, and
# another request answered, before the stop), short beside the graceful timeout.
IN_FLIGHT_MS = 2000
GRACEFUL_TIMEOUT_S = 20
START_TIMEOUT_S = 30


def test_gunicorn_runs_the_factory_with_the_labs_config() -> None:
    argv = gunicorn_argv(APP)
    assert argv[:3] == [sys.executable, "-m", "gunicorn"]
    assert argv[3:] == ["--config", str(ROOT / "gunicorn.conf.py"), f"{APP}()"]


def test_uvicorn_gets_the_same_settings_as_gunicorn() -> None:
    settings = ServerSettings(
        web_concurrency=3,
        bind="127.0.0.1:9000",
        gunicorn_keepalive=40,
        gunicorn_graceful_timeout=12,
        gunicorn_max_requests=500,
        gunicorn_max_requests_jitter=50,
        access_log=False,
    )
    config = uvicorn_config(APP, settings)
    assert (config.host, config.port, config.workers) == ("127.0.0.1", 9000, 3)
    assert config.factory and (config.loop, config.http) == ("uvloop", "httptools")
    assert (config.timeout_keep_alive, config.timeout_graceful_shutdown) == (40, 12)
    assert (config.limit_max_requests, config.limit_max_requests_jitter) == (500, 50)
    assert config.access_log is False
    assert uvicorn_config(APP, settings, port=9001).port == 9001


def test_granian_gets_the_same_settings_as_gunicorn() -> None:
    settings = ServerSettings(web_concurrency=3, gunicorn_graceful_timeout=12)
    server = granian_server(APP, settings)
    assert (server.workers, server.workers_kill_timeout) == (3, 12)
    assert server.factory and server.respawn_failed_workers
    # Its idle keep-alive is its header read timeout, 60 s at most: 75 s becomes 60.
    assert server.http1_settings is not None
    assert server.http1_settings.header_read_timeout == 60_000
    shorter = granian_server(APP, ServerSettings(gunicorn_keepalive=20))
    assert shorter.http1_settings is not None
    assert shorter.http1_settings.header_read_timeout == 20_000


def test_granian_refuses_an_admin_port_it_cannot_bind(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ServerSettingError, match="ADMIN_PORT=0"):
        granian_server(APP, ServerSettings(admin_port=9000))
    monkeypatch.setenv("SERVER", "granian")
    monkeypatch.setenv("ADMIN_PORT", "9000")
    assert main([APP]) == 2
    assert "ADMIN_PORT" in capsys.readouterr().err


def test_a_bad_command_line_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == main(["upstream.main"]) == 2
    assert "usage" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str, timeout: float = 30, tls: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout, context=tls) as answer:
        return answer.status, answer.read()


class Served:
    """One service, started as the image starts it, with SERVER and 2 workers."""

    def __init__(
        self, server: str, tmp_path: Path, tls_cert: Path | None = None, http2: bool = False
    ) -> None:
        self.port = free_port()
        self.url = f"{'https' if tls_cert else 'http'}://127.0.0.1:{self.port}"
        self.tls: ssl.SSLContext | None = None
        if tls_cert is not None:
            self.tls = ssl.create_default_context(cafile=tls_cert.parent / CA_FILE)
        env = {
            **os.environ,
            "SERVER": server,
            "WEB_CONCURRENCY": "2",
            "BIND": f"127.0.0.1:{self.port}",
            "ADMIN_PORT": "0",
            "GUNICORN_GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT_S),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "UPSTREAM_NAME": "wire",
            "UPSTREAM_DELAY_MS": "10",
            **({"TLS_CERT": str(tls_cert)} if tls_cert else {}),
            "HTTP2": str(http2).lower(),
        }
        self.log = (tmp_path / "server.log").open("w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "serving.serve", APP],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if get(f"{self.url}/healthz", timeout=2, tls=self.tls)[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"not healthy in {START_TIMEOUT_S} s:\n{self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture(params=SERVERS)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    service = Served(request.param, tmp_path)
    try:
        service.wait_healthy()
        yield service
    finally:
        service.close()


@pytest.mark.timing
def test_each_server_finishes_what_it_took_when_stopped(served: Served) -> None:
    answers: list[tuple[int, bytes]] = []
    caller = threading.Thread(
        target=lambda: answers.append(get(f"{served.url}/news?delay_ms={IN_FLIGHT_MS}"))
    )
    caller.start()
    # The kernel hands out accepted connections in order: once a later request has its
    # answer, a worker has taken this one.
    for _ in range(4):
        assert get(f"{served.url}/healthz")[0] == 200
    served.process.send_signal(signal.SIGTERM)
    caller.join(timeout=GRACEFUL_TIMEOUT_S + 10)
    assert served.process.wait(timeout=GRACEFUL_TIMEOUT_S + 10) == 0, served.output()
    assert len(answers) == 1, served.output()
    status, body = answers[0]
    assert status == 200 and len(json.loads(body)["articles"]) == 10


def test_each_server_logs_json_lines(served: Served) -> None:
    assert get(f"{served.url}/news")[0] == 200
    served.process.send_signal(signal.SIGTERM)
    served.process.wait(timeout=GRACEFUL_TIMEOUT_S + 10)
    lines = [line for line in served.output().splitlines() if line.strip()]
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)


@pytest.mark.parametrize("server", SERVERS)
def test_each_server_serves_https_with_a_tls_cert(server: str, tmp_path: Path) -> None:
    make_certificates(tmp_path / "certs", ["upstream-wire"])
    service = Served(server, tmp_path, tls_cert=leaf_file(tmp_path / "certs", "upstream-wire"))
    try:
        service.wait_healthy()
        # Verified against the lab's CA alone, by the address the certificate names.
        status, body = get(f"{service.url}/news", tls=service.tls)
        assert status == 200 and len(json.loads(body)["articles"]) == 10
        with pytest.raises((OSError, http.client.HTTPException)):  # no HTTP on the HTTPS port
            get(service.url.replace("https", "http") + "/healthz", timeout=5)
    finally:
        service.close()


def test_granian_serves_http2_by_alpn_to_the_async_gateway(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    make_certificates(certs, ["upstream-wire"])
    upstream = Served("granian", tmp_path, tls_cert=leaf_file(certs, "upstream-wire"), http2=True)
    try:
        upstream.wait_healthy()
        for client in ("httpx", "httpx2"):
            settings = GatewaySettings.model_validate(
                {
                    "sources": {"wire": upstream.url},
                    "ca_file": certs / CA_FILE,
                    "async_http_client": client,
                    "http2": True,
                }
            )
            with TestClient(async_app.create_app(settings)) as gateway:
                assert gateway.get("/healthz").json()["http2"] is True
                assert gateway.get("/news").json()["sources"][0]["ok"] is True
        # granian's access line names each request's protocol: the gateways' were HTTP/2
        # (the healthchecks above came over HTTP/1.1).
        calls = [line for line in upstream.output().splitlines() if "GET /news" in line]
        assert len(calls) == 2 and all("HTTP/2" in line for line in calls), calls
    finally:
        upstream.close()


@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_a_server_without_http2_refuses_it(
    server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SERVER", server)
    monkeypatch.setenv("HTTP2", "true")
    assert main([APP]) == 2
    assert f"SERVER={server} has no HTTP/2" in capsys.readouterr().err
