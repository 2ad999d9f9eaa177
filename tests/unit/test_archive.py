"""The archive source against a real PostgreSQL on loopback (tests/unit/postgres.py): both
gateways, each of the async gateway's drivers, the seed's role and index, and the ways a
database fails, each a failed source within the deadline, never a 500."""

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import psycopg.errors
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway import async_app, sync_app
from gateway.archive import PSYCOPG_QUERY
from gateway.config import GatewaySettings
from tests.unit.loopback import Upstreams
from tests.unit.postgres import ARCHIVE_PASSWORD, Postgres

GATEWAYS: dict[str, tuple[Callable[[GatewaySettings], FastAPI], dict[str, Any]]] = {
    "sync": (sync_app.create_app, {}),
    "async-asyncpg": (async_app.create_app, {"archive_driver": "asyncpg"}),
    "async-psycopg": (async_app.create_app, {"archive_driver": "psycopg"}),
}
DELAY_MS = 100


@pytest.fixture
def archive_client(upstreams: Upstreams, postgres: Postgres) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(gateway: str, **settings: Any) -> TestClient:
        create_app, own = GATEWAYS[gateway]
        fields = {
            "archive_url": postgres.archive_url,
            "archive_password": ARCHIVE_PASSWORD,
            "archive_delay_ms": DELAY_MS,
            **own,
            **settings,
        }
        client = TestClient(create_app(upstreams.settings(**fields)))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def archive_of(body: dict[str, Any]) -> dict[str, Any]:
    (result,) = [source for source in body["sources"] if source["name"] == "archive"]
    assert isinstance(result, dict)
    return result


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_the_archive_joins_the_fan_out_when_asked(
    archive_client: Callable[..., TestClient], gateway: str
) -> None:
    client = archive_client(gateway)
    response = client.get("/news", params={"sources": "wire,archive"})
    assert response.status_code == 200, response.text
    body = response.json()
    archive = archive_of(body)
    assert archive["ok"] and archive["status"] is None and archive["error_kind"] is None
    # The pause is the server's: no answer can come before it.
    assert archive["elapsed_ms"] >= DELAY_MS
    from_archive = [a for a in body["articles"] if a["source"] == "archive"]
    assert len(from_archive) == archive["articles"] == 5
    assert {a["source"] for a in body["articles"]} == {"wire", "archive"}
    assert "archive;dur=" in response.headers["server-timing"]
    # Opt-in: a fan-out that names no sources leaves it out.
    plain = client.get("/news").json()
    assert [s["name"] for s in plain["sources"]] == ["wire", "gazette", "chronicle"]


@pytest.mark.parametrize("gateway", ["sync", "async-asyncpg"])
def test_default_sources_and_health_name_the_archive(
    archive_client: Callable[..., TestClient], gateway: str
) -> None:
    client = archive_client(gateway, default_sources="wire,archive")
    body = client.get("/news").json()
    assert [s["name"] for s in body["sources"]] == ["wire", "archive"]
    health = client.get("/healthz").json()
    assert health["sources"] == ["wire", "gazette", "chronicle", "archive"]
    assert health["default_sources"] == ["wire", "archive"]
    assert health["archive_driver"] == ("psycopg" if gateway == "sync" else "asyncpg")


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_query_past_the_deadline_is_cancelled_on_the_server(
    archive_client: Callable[..., TestClient], postgres: Postgres, gateway: str
) -> None:
    client = archive_client(gateway, archive_delay_ms=5000)
    response = client.get("/news", params={"sources": "wire,archive", "deadline_ms": "400"})
    assert response.status_code == 200, response.text
    archive = archive_of(response.json())
    assert archive["error_kind"] == "database"
    assert archive["error"].startswith("cancelled on the server"), archive["error"]
    # Nothing is left running: the server itself ended the pg_sleep.
    assert running_sleeps(postgres) == 0


def running_sleeps(postgres: Postgres) -> int:
    sql = (
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'archive_reader'"
        " AND state = 'active' AND query LIKE '%pg_sleep%';"
    )
    return int(postgres.psql(sql).strip())


@pytest.mark.timing  # the answer's own clock, against the deadline: 1.2 x, as the issue sets
@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_paused_server_costs_the_deadline_then_the_pool_recovers(
    archive_client: Callable[..., TestClient], postgres: Postgres, gateway: str
) -> None:
    client = archive_client(gateway)
    assert archive_of(client.get("/news", params={"sources": "archive"}).json())["ok"]
    deadline_ms = 1000
    with postgres.paused():
        response = client.get(
            "/news", params={"sources": "wire,archive", "deadline_ms": str(deadline_ms)}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["partial"] and body["elapsed_ms"] <= 1.2 * deadline_ms
    archive = archive_of(body)
    assert archive["error_kind"] == "database"
    assert archive["error"].startswith("no answer before the deadline"), archive["error"]
    assert answers_again(client) <= 10


def answers_again(client: TestClient, attempts: int = 10) -> int:
    """How many fan-outs it takes, after a fault, for the archive to answer again."""
    for attempt in range(1, attempts + 1):
        response = client.get("/news", params={"sources": "archive", "deadline_ms": "2000"})
        assert response.status_code in (200, 502), response.text
        if archive_of(response.json())["ok"]:
            return attempt
        time.sleep(0.2)
    return attempts + 1


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_killed_backends_are_replaced(
    archive_client: Callable[..., TestClient], postgres: Postgres, gateway: str
) -> None:
    client = archive_client(gateway, archive_pool_size=2)
    assert archive_of(client.get("/news", params={"sources": "archive"}).json())["ok"]
    killed = postgres.psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE usename = 'archive_reader';"
    )
    assert int(killed) >= 1
    assert answers_again(client) <= 10


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_backends_killed_mid_query_fail_the_archive_alone(
    archive_client: Callable[..., TestClient], postgres: Postgres, gateway: str
) -> None:
    """pg_terminate_backend while queries run: whatever the driver raises, on the query or
    on the connection's return to the pool, is the archive's failure, never a 500."""
    client = archive_client(gateway, archive_delay_ms=400)
    params = {"sources": "wire,archive"}
    with ThreadPoolExecutor(8) as pool:
        answers = [pool.submit(client.get, "/news", params=params) for _ in range(8)]
        time.sleep(0.2)  # every query is in its pg_sleep
        killed = postgres.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE usename = 'archive_reader';"
        )
        responses = [answer.result() for answer in answers]
    assert int(killed) >= 1
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    failed = [archive_of(r.json()) for r in responses if not archive_of(r.json())["ok"]]
    assert failed and all(a["error_kind"] == "database" for a in failed), failed
    assert answers_again(client) <= 10


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_an_exhausted_pool_waits_no_longer_than_the_deadline(
    archive_client: Callable[..., TestClient], gateway: str
) -> None:
    client = archive_client(gateway, archive_pool_size=1, archive_delay_ms=1500)
    params = {"sources": "archive", "deadline_ms": "2500"}
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.get, "/news", params=params)
        time.sleep(0.3)  # the first holds the one connection for 1.5 s
        second = pool.submit(client.get, "/news", params={**params, "deadline_ms": "600"})
        answers = [first.result().json(), second.result()]
    assert archive_of(answers[0])["ok"]
    assert answers[1].status_code == 502, answers[1].text
    refused = archive_of(answers[1].json())
    assert refused["error"].startswith("pool exhausted: all 1 connections"), refused["error"]


def test_an_unreachable_server_fails_the_archive_alone(
    upstreams: Upstreams, unused_url: str
) -> None:
    port = unused_url.rsplit(":", 1)[1]
    for gateway in GATEWAYS.values():
        create_app, own = gateway
        settings = upstreams.settings(
            archive_url=f"postgresql://archive_reader@127.0.0.1:{port}/news",
            archive_password="x",
            **own,
        )
        with TestClient(create_app(settings)) as client:
            params = {"sources": "wire,archive", "deadline_ms": "500"}
            body = client.get("/news", params=params).json()
        archive = archive_of(body)
        assert body["partial"] and archive["error_kind"] == "database", archive


def test_bad_archive_input_is_a_422_naming_the_field(
    archive_client: Callable[..., TestClient],
) -> None:
    client = archive_client("sync")
    fault = client.get("/news", params={"sources": "archive", "fault": "archive:hang"})
    assert fault.status_code == 422 and "fault" in fault.text
    unknown = client.get("/news", params={"sources": "archive,ledger"})
    assert unknown.status_code == 422 and "ledger" in unknown.text


def test_a_new_connection_per_query_is_a_lever_of_the_sync_gateway(
    archive_client: Callable[..., TestClient], postgres: Postgres
) -> None:
    sessions = "SELECT sessions FROM pg_stat_database WHERE datname = 'news';"
    client = archive_client("sync")
    assert archive_of(client.get("/news", params={"sources": "archive"}).json())["ok"]
    # Read from another database: psql's own session is not one of the archive's.
    before = int(postgres.psql(sessions, dbname="postgres"))
    params = {"sources": "archive", "archive_connection": "new"}
    for _ in range(3):
        archive = archive_of(client.get("/news", params=params).json())
        assert archive["ok"] and archive["waited_ms"] > 0, archive
    # Each query opened a connection of its own; the pool's stayed open and unused.
    assert int(postgres.psql(sessions, dbname="postgres")) - before == 3
    closed = archive_client("sync", lab_levers=False)
    refused = closed.get("/news", params=params)
    assert refused.status_code == 422 and "archive_connection" in refused.text


def test_settings_refuse_a_password_in_the_url_and_unknown_defaults() -> None:
    with pytest.raises(ValueError, match="GATEWAY_ARCHIVE_PASSWORD"):
        GatewaySettings(archive_url="postgresql://archive_reader:secret@db/news")
    with pytest.raises(ValueError, match="default_sources: unknown source"):
        GatewaySettings(default_sources="wire,archive")


def test_the_query_reads_the_index_with_bound_values(postgres: Postgres) -> None:
    with psycopg.connect(postgres.superuser_conninfo()) as conn:
        plan = conn.execute("EXPLAIN " + PSYCOPG_QUERY, [0.0, 10]).fetchall()
    assert "Index Scan using articles_published_at" in "\n".join(row[0] for row in plan)


def test_the_gateways_role_can_only_read_the_archive(postgres: Postgres) -> None:
    conninfo = f"{postgres.archive_url}?password={ARCHIVE_PASSWORD}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM archive.articles").fetchone() == (2000,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM archive.articles")
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM archive.articles")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE archive.mine (id int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE public.mine (id int)")
