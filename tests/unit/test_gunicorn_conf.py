import runpy
from pathlib import Path

import pytest

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
    assert conf["bind"] == "127.0.0.1:9000"
    assert conf["keepalive"] == 30
    assert conf["accesslog"] is None
    assert conf["worker_class"] == "serving.worker.UvicornWorker"
    assert (conf["max_requests"], conf["max_requests_jitter"]) == (500, 50)


def test_gunicorn_conf_defaults_keep_connections_longer_than_httpx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("WEB_CONCURRENCY", "GUNICORN_KEEPALIVE", "ACCESS_LOG"):
        monkeypatch.delenv(name, raising=False)
    conf = runpy.run_path(str(CONF))
    assert conf["workers"] == conf["auto_workers"]() and conf["accesslog"] == "-"
    # httpx's default keepalive_expiry is 5 s; the server must not close first.
    assert conf["keepalive"] > 5


def cgroup(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "cores"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2, cpus: 1.5
        ({"cpu.max": "max 100000\n"}, None),  # v2, no limit
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),  # no cgroup files at all
    ],
)
def test_the_cpu_limit_is_read_from_cgroup_v1_and_v2(
    tmp_path: Path, files: dict[str, str], cores: float | None
) -> None:
    conf = runpy.run_path(str(CONF))
    assert conf["cpu_limit_cores"](cgroup(tmp_path, files)) == cores


def test_auto_workers_follow_the_containers_limit_not_the_hosts_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = runpy.run_path(str(CONF))
    monkeypatch.setattr("os.cpu_count", lambda: 32)
    assert conf["auto_workers"](cgroup(tmp_path / "one", {"cpu.max": "100000 100000"})) == 1
    assert conf["auto_workers"](cgroup(tmp_path / "two", {"cpu.max": "250000 100000"})) == 2
    assert conf["auto_workers"](cgroup(tmp_path / "half", {"cpu.max": "50000 100000"})) == 1
    assert conf["auto_workers"](cgroup(tmp_path / "none", {"cpu.max": "max 100000"})) == 32
