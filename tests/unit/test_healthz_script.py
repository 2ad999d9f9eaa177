"""serving/healthz.sh, Docker's healthcheck: 0 only for a 200 from /healthz, 1 otherwise."""

import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from serving.certs import leaf_file, make_certificates

SCRIPT = Path(__file__).parents[2] / "serving" / "healthz.sh"


def check(port: int, env: dict[str, str] | None = None) -> int:
    environment = {**os.environ, **(env or {})}
    return subprocess.run(["bash", str(SCRIPT), str(port)], env=environment, timeout=10).returncode


class Answers(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_a_service_that_answers_200_is_healthy(server: ThreadingHTTPServer) -> None:
    assert check(server.server_port) == 0


def test_a_service_that_answers_503_is_unhealthy(
    server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Answers, "status", 503)
    assert check(server.server_port) == 1


def test_nothing_listening_is_unhealthy() -> None:
    with socket.create_server(("127.0.0.1", 0)) as bound:
        port = bound.getsockname()[1]
    assert check(port) == 1


def test_a_service_that_never_answers_is_unhealthy_after_its_2_s() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        started = time.monotonic()
        assert check(silent.getsockname()[1]) == 1
        # Bounded by the script's own read timeout, not by the caller's 10 s.
        assert time.monotonic() - started < 8


@pytest.fixture
def https_server(
    server: ThreadingHTTPServer, tmp_path: Path
) -> Iterator[tuple[ThreadingHTTPServer, Path]]:
    """The same service over TLS, its certificate from a private CA, as UPSTREAM_TLS has."""
    make_certificates(tmp_path, ["upstream-wire"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(leaf_file(tmp_path, "upstream-wire"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield server, leaf_file(tmp_path, "upstream-wire")


def test_an_https_service_is_checked_over_tls(
    https_server: tuple[ThreadingHTTPServer, Path],
) -> None:
    server, cert = https_server
    assert check(server.server_port, {"TLS_CERT": str(cert)}) == 0
    # Plain HTTP gets no answer from it.
    assert check(server.server_port) == 1


def test_an_https_service_whose_certificate_is_from_another_ca_is_unhealthy(
    https_server: tuple[ThreadingHTTPServer, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    server, _ = https_server
    other = tmp_path_factory.mktemp("other")
    make_certificates(other, ["upstream-wire"])
    assert check(server.server_port, {"TLS_CERT": str(leaf_file(other, "upstream-wire"))}) == 1
