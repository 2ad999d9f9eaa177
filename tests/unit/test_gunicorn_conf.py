import runpy
from pathlib import Path

import pytest

from serving.cores import whole_cores

CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"


def test_gunicorn_conf_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    monkeypatch.setenv("BIND", "127.0.0.1:9000")
    monkeypatch.setenv("GUNICORN_KEEPALIVE", "30")
    monkeypatch.setenv("ACCESS_LOG", "false")
    monkeypatch.setenv("GUNICORN_MAX_REQUESTS", "500")
    monkeypatch.setenv("GUNICORN_MAX_REQUESTS_JITTER", "50")
    conf = runpy.run_path(str(CONF))
    assert conf["workers"] == 4
    assert conf["bind"] == ["127.0.0.1:9000"]
    assert conf["keepalive"] == 30
    assert conf["accesslog"] is None
    assert conf["worker_class"] == "serving.worker.UvicornWorker"
    assert (conf["max_requests"], conf["max_requests_jitter"]) == (500, 50)


def test_an_admin_port_is_bound_beside_the_public_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIND", "0.0.0.0:8000")
    monkeypatch.setenv("ADMIN_PORT", "9000")
    assert runpy.run_path(str(CONF))["bind"] == ["0.0.0.0:8000", "0.0.0.0:9000"]


def test_gunicorn_conf_defaults_keep_connections_longer_than_httpx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("WEB_CONCURRENCY", "GUNICORN_KEEPALIVE", "ACCESS_LOG"):
        monkeypatch.delenv(name, raising=False)
    conf = runpy.run_path(str(CONF))
    assert conf["workers"] == whole_cores() and conf["accesslog"] == "-"
    # httpx's default keepalive_expiry is 5 s; the server must not close first.
    assert conf["keepalive"] > 5
