"""The archive across containers: PostgreSQL in the stack, queried by both gateways, and the
server paused (`docker pause`) costing the archive alone, within the deadline."""

import functools
import subprocess
import threading
import time

import pytest

from tests.integration.stack import DEADLINE_MS, Sample, Stack, closed_loop, fetch, record
from tests.waiting import in_flight, poll

pytestmark = pytest.mark.integration

DEADLINE_S = DEADLINE_MS / 1000
GATEWAYS = ("sync", "async")


def archive_of(body: dict[str, object]) -> dict[str, object]:
    sources = body["sources"]
    assert isinstance(sources, list)
    (archive,) = [source for source in sources if source["name"] == "archive"]
    assert isinstance(archive, dict)
    return archive


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_both_gateways_answer_with_the_archives_articles(stack: Stack, gateway: str) -> None:
    sample = fetch(stack.url(gateway), sources="wire,archive")
    assert sample.status == 200, sample.body
    assert archive_of(sample.body)["ok"] and not sample.body["partial"]
    articles = sample.body["articles"]
    assert isinstance(articles, list)
    assert sum(article["source"] == "archive" for article in articles) == 10


@pytest.mark.timing  # a bound the issue sets: 1.2 x the deadline, the deadline being 2.5 s
def test_a_paused_server_costs_the_archive_alone_then_it_answers_again(stack: Stack) -> None:
    postgres = stack.container("postgres")
    for gateway in GATEWAYS:  # each worker's pool holds a connection before the pause
        assert archive_of(fetch(stack.url(gateway), sources="archive").body)["ok"]
    stack.docker("pause", postgres)
    try:
        samples = {g: fetch(stack.url(g), sources="wire,archive") for g in GATEWAYS}
    finally:
        stack.docker("unpause", postgres)
    unpaused = time.perf_counter()
    for gateway, sample in samples.items():
        assert sample.status == 200, sample.body
        archive = archive_of(sample.body)
        assert sample.body["partial"] and archive["error_kind"] == "database", archive
        record(
            f"{gateway} archive paused: client latency / deadline",
            sample.latency_s / DEADLINE_S,
            "≤ 1.20",
        )
        assert sample.latency_s <= 1.2 * DEADLINE_S
    for gateway in GATEWAYS:
        assert poll(functools.partial(archive_answers, stack, gateway), within_s=30)
        record(
            f"{gateway} archive whole again after unpause, s", time.perf_counter() - unpaused, ""
        )


def archive_answers(stack: Stack, gateway: str) -> bool:
    return archive_of(fetch(stack.url(gateway), sources="archive").body)["ok"] is True


def kill_backends(stack: Stack) -> int:
    """pg_terminate_backend on every connection of the gateways' role: how many."""
    sql = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE usename = 'archive_reader'"
    )
    command = ["docker", "exec", stack.container("postgres"), "psql", "-X", "-At"]
    command += ["-d", "postgres", "-c", sql]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return int(done.stdout.strip())


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_backends_killed_under_load_are_replaced(stack: Stack, gateway: str) -> None:
    """Every archive connection terminated mid-load: those queries fail, alone, and the
    pool's new connections answer again, with no restart."""
    url, samples = stack.url(gateway), list[Sample]()
    load = threading.Thread(
        target=lambda: samples.extend(
            closed_loop(url, clients=8, total=64, deadline_s=90, sources="wire,archive")[1]
        )
    )
    load.start()
    try:
        assert poll(lambda: in_flight(stack.url(gateway, "")) > 0, within_s=30)
        killed_at, killed = time.perf_counter(), kill_backends(stack)
        assert poll(functools.partial(archive_answers, stack, gateway), within_s=30)
        recovered_s = time.perf_counter() - killed_at
    finally:
        load.join(timeout=120)
    assert not load.is_alive() and len(samples) == 64 and killed >= 1
    # wire stayed up: every answer is a 200, the archive failed in some of them at most.
    assert {sample.status for sample in samples} == {200}
    failed = [archive_of(s.body) for s in samples if not archive_of(s.body)["ok"]]
    assert all(archive["error_kind"] == "database" for archive in failed), failed
    record(f"{gateway}, archive backends killed: answers without the archive", len(failed), "")
    record(f"{gateway}, archive backends killed: answering again after, s", recovered_s, "")
