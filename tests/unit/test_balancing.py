"""The sync gateway's round robin over a source's replicas (gateway/balancing.py)."""

import errno
import http.client
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import requests

from gateway.balancing import (
    FALLBACK_AFTER_S,
    AddressRotation,
    Resolver,
    RoundRobinAdapter,
    connect_in_turn,
    left_unanswered,
)
from gateway.clients import build_session
from gateway.config import GatewaySettings
from gateway.failures import peer_went_silent
from tests.unit.loopback import HeaderRecorder, LiveServer
from upstream.config import UpstreamSettings
from upstream.main import create_app as create_upstream

NAME = "wire.replicas.test"
REPLICA_ADDRESSES = ("127.0.0.1", "127.0.0.2")


def fake_resolver(answers: dict[str, list[str]], calls: list[str]) -> Any:
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        calls.append(host)
        if host not in answers:
            return real(host, port, *args, **kwargs)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in answers[host]
        ]

    return getaddrinfo


def test_addresses_are_handed_out_in_turn_once_each(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    # One replica listed twice (two families or two answers): still one turn each.
    answers = {NAME: ["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.3"]}
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver(answers, calls))
    rotation = AddressRotation(NAME, 8000, Resolver())
    handed = [rotation.next(1.0) for _ in range(6)]
    assert handed == ["10.0.0.1", "10.0.0.2", "10.0.0.3"] * 2
    assert calls == [NAME]  # resolved once within the TTL


def test_the_name_is_resolved_again_after_its_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    answers = {NAME: ["10.0.0.1"]}
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver(answers, calls))
    rotation = AddressRotation(NAME, 8000, Resolver(), ttl_s=0)
    assert rotation.next(1.0) == "10.0.0.1"
    answers[NAME] = ["10.0.0.1", "10.0.0.9"]  # a replica joined
    assert {rotation.next(1.0) for _ in range(4)} == {"10.0.0.1", "10.0.0.9"}
    assert len(calls) == 5


def test_a_name_that_does_not_resolve_raises_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(socket.gaierror):
        AddressRotation("nowhere.test", 8000, Resolver()).next(1.0)


def test_a_resolution_past_its_bound_raises_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def hang(*args: Any, **kwargs: Any) -> Any:
        release.wait(10)
        raise socket.gaierror(socket.EAI_AGAIN, "too late")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    try:
        with pytest.raises(TimeoutError):
            AddressRotation("slow.test", 8000, Resolver()).next(0.05)
    finally:
        release.set()


@pytest.fixture
def two_replicas(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, list[HeaderRecorder]]]:
    """One source, two replicas on one port of two loopback addresses, behind one name."""
    with socket.socket() as probe:  # a port free on 127.0.0.1 is free on 127.0.0.2 too
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    recorders = []
    with ExitStack() as stack:
        for index, address in enumerate(REPLICA_ADDRESSES):
            settings = UpstreamSettings(name="wire", delay_ms=0, instance=f"replica-{index}")
            recorder = HeaderRecorder(create_upstream(settings))
            stack.enter_context(LiveServer(recorder, host=address, port=port))
            recorders.append(recorder)
        answers = {NAME: list(REPLICA_ADDRESSES)}
        monkeypatch.setattr(socket, "getaddrinfo", fake_resolver(answers, []))
        yield port, recorders


def test_the_sync_gateways_connections_spread_over_the_replicas(
    two_replicas: tuple[int, list[HeaderRecorder]],
) -> None:
    """Six calls at once open six connections: three to each replica, where urllib3 alone
    sends all six to the first address."""
    port, recorders = two_replicas
    url = f"http://{NAME}:{port}/news"
    session = build_session(GatewaySettings(sources={"wire": url.removesuffix("/news")}))
    start = threading.Barrier(6)
    seen: Counter[str] = Counter()

    def call() -> None:
        start.wait(timeout=10)
        response = session.get(url, params={"delay_ms": "200"}, timeout=10)
        seen[response.json()["instance"]] += 1

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    session.close()
    assert sum(seen.values()) == 6
    assert seen == {"replica-0": 3, "replica-1": 3}
    # Each replica was asked for the name, not for its address.
    hosts = {headers["host"] for recorder in recorders for headers in recorder.seen}
    assert hosts == {f"{NAME}:{port}"}


def test_addresses_in_turn_put_those_that_failed_last_until_resolved_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = {NAME: ["10.0.0.1", "10.0.0.2", "10.0.0.3"]}
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver(answers, []))
    rotation = AddressRotation(NAME, 8000, Resolver())
    assert rotation.in_turn(1.0) == ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    assert rotation.in_turn(1.0) == ("10.0.0.2", "10.0.0.3", "10.0.0.1")
    rotation.failed("10.0.0.3")
    assert rotation.in_turn(1.0) == ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    assert rotation.in_turn(1.0) == ("10.0.0.1", "10.0.0.2", "10.0.0.3")  # 3's turn: last
    rotation.ttl_s = 0  # the name resolved again: a replica that was starting is back
    rotation._expires = 0
    assert rotation.in_turn(1.0) == ("10.0.0.2", "10.0.0.3", "10.0.0.1")


def test_connect_in_turn_falls_back_quickly_and_leaves_the_rest_to_the_last() -> None:
    shares: list[tuple[str, float | None]] = []
    failed: list[str] = []

    def connect(address: str, share_s: float | None) -> str:
        shares.append((address, share_s))
        if address != "c":
            raise ConnectionRefusedError(address)
        return address

    addresses = ("a", "b", "c")
    assert connect_in_turn(addresses, 3.0, connect, (OSError,), failed.append) == "c"
    assert failed == ["a", "b"]
    # Each but the last its share of what was left, at most FALLBACK_AFTER_S; the last
    # all that is left.
    assert [address for address, _ in shares] == ["a", "b", "c"]
    assert shares[0][1] == shares[1][1] == FALLBACK_AFTER_S
    assert shares[2][1] == pytest.approx(3.0, abs=0.2)
    shares.clear()
    assert connect_in_turn(("a", "c"), 0.1, connect, (OSError,)) == "c"
    assert shares[0][1] == pytest.approx(0.05, abs=0.01)  # half of 0.1, below the cap
    with pytest.raises(ConnectionRefusedError, match="b"):
        connect_in_turn(("a", "b"), None, connect, (OSError,))


def one_source_behind(
    monkeypatch: pytest.MonkeyPatch, addresses: list[str], port: int
) -> tuple[str, Any]:
    """The name resolving to `addresses`, and a session whose pool connects to them."""
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver({NAME: addresses}, []))
    url = f"http://{NAME}:{port}"
    settings = GatewaySettings(sources={"wire": url}, connect_timeout_s=2.0)
    return f"{url}/news", build_session(settings)


def test_a_replica_that_refuses_costs_no_call(
    two_replicas: tuple[int, list[HeaderRecorder]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopped replica still listed (nothing listens on 127.0.0.3): every new connection
    that draws it falls back to a live one, and it is tried once, then last."""
    port, _ = two_replicas
    stopped = "127.0.0.3"
    url, session = one_source_behind(monkeypatch, [stopped, REPLICA_ADDRESSES[0]], port)
    start = threading.Barrier(4)
    answered: list[int] = []

    def call() -> None:
        start.wait(timeout=10)
        response = session.get(url, params={"delay_ms": "100"}, timeout=(2, 10))
        answered.append(response.status_code)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    pools = session.get_adapter(url).poolmanager.pools
    (rotation,) = {pools[key].rotation.host: pools[key].rotation for key in pools.keys()}.values()
    session.close()
    assert answered == [200] * 4
    assert rotation.in_turn(1.0)[-1] == stopped


def test_a_replica_that_never_answers_leaves_time_for_the_next(
    two_replicas: tuple[int, list[HeaderRecorder]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listed address that drops every SYN (a listener whose backlog is full), drawn
    first: its share of the 2 s connect timeout runs out, and the live one answers."""
    port, _ = two_replicas
    silent = "127.0.0.4"
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind((silent, port))
        listener.listen(0)
        filler.connect((silent, port))  # the one place in its queue: later SYNs are dropped
        url, session = one_source_behind(monkeypatch, [silent, REPLICA_ADDRESSES[0]], port)
        with session:
            response = session.get(url, params={"delay_ms": "0"}, timeout=(2, 10))
    assert response.status_code == 200
    assert response.json()["instance"] == "replica-0"


def test_pooled_connections_to_an_address_that_went_silent_are_not_reused(
    two_replicas: tuple[int, list[HeaderRecorder]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once one connection finds a replica silent, the pool's other connections to it are
    closed when drawn, and connect again to the live one: no call waits on them."""
    port, _ = two_replicas
    url, session = one_source_behind(monkeypatch, list(REPLICA_ADDRESSES), port)
    start = threading.Barrier(2)

    def call() -> None:
        start.wait(timeout=10)
        session.get(url, params={"delay_ms": "200"}, timeout=(2, 10)).close()

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    (pool,) = session.get_adapter(url).poolmanager.pools._container.values()
    assert {conn.peer for conn in list(pool.pool.queue) if conn} == set(REPLICA_ADDRESSES)

    # The connection the pool would hand out next (it is a LIFO queue) goes silent.
    silent = pool.pool.queue[-1].peer
    pool.rotation.failed(silent)
    instances = [session.get(url, timeout=(2, 10)).json()["instance"] for _ in range(4)]
    session.close()
    live = 1 - REPLICA_ADDRESSES.index(silent)
    assert instances == [f"replica-{live}"] * 4


def test_a_connection_whose_peer_went_silent_marks_its_address_and_ages_every_pool(
    two_replicas: tuple[int, list[HeaderRecorder]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The silent address goes last in its rotation, and every pooled connection of the
    session, another source's too, is from an earlier epoch: it connects again when drawn."""
    port, _ = two_replicas
    other = "gazette.replicas.test"
    answers = {NAME: [REPLICA_ADDRESSES[1]], other: [REPLICA_ADDRESSES[0]]}
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver(answers, []))
    url, other_url = f"http://{NAME}:{port}/news", f"http://{other}:{port}/news"
    sources = {"wire": url.removesuffix("/news"), "gazette": other_url.removesuffix("/news")}
    session = build_session(GatewaySettings(sources=sources))
    for each in (url, other_url):
        session.get(each, timeout=(2, 10)).close()
    adapter = session.get_adapter(url)
    assert isinstance(adapter, RoundRobinAdapter)
    pools = adapter.poolmanager.pools

    def silent(*args: Any, **kwargs: Any) -> Any:
        raise TimeoutError(errno.ETIMEDOUT, "Connection timed out")

    monkeypatch.setattr(http.client.HTTPConnection, "getresponse", silent)
    # requests calls it a read timeout; the gateway tells it apart by its errno.
    with pytest.raises(requests.RequestException) as raised:
        session.get(url, timeout=(2, 10))
    assert peer_went_silent(raised.value)
    monkeypatch.undo()
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver(answers, []))
    by_host = {pool.host: pool for pool in pools._container.values()}
    assert by_host[NAME].rotation.has_failed(REPLICA_ADDRESSES[1])
    watch = by_host[other].watch
    assert watch.epoch == 1
    (before,) = [conn for conn in by_host[other].pool.queue if conn]
    assert before.epoch == 0 and before.sock is not None
    assert session.get(other_url, timeout=(2, 10)).status_code == 200
    session.close()
    assert before.epoch == 1  # closed when drawn, and connected again


def test_resolving_and_connecting_share_one_connect_timeout(
    two_replicas: tuple[int, list[HeaderRecorder]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name that takes 1.5 s to resolve, to an address that drops every SYN, with a 2 s
    connect timeout: the connection fails when the 2 s are up, not 1.5 s + 2 s later."""
    port, _ = two_replicas
    silent = "127.0.0.5"
    resolve = fake_resolver({NAME: [silent]}, [])

    def slow(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == NAME:
            time.sleep(1.5)
        return resolve(host, *args, **kwargs)

    with socket.socket() as listener, socket.socket() as filler:
        listener.bind((silent, port))
        listener.listen(0)
        filler.connect((silent, port))
        url = f"http://{NAME}:{port}"
        # The dead-peer timeout past the connect timeout: the SYN is left to the latter.
        settings = GatewaySettings(sources={"wire": url}, dead_peer_timeout_s=10)
        session = build_session(settings)
        monkeypatch.setattr(socket, "getaddrinfo", slow)
        started = time.monotonic()
        with session, pytest.raises(requests.ConnectTimeout):
            session.get(f"{url}/news", timeout=(2, 10))
        took = time.monotonic() - started
    assert 1.5 <= took < 2.75, took


def test_a_live_connection_leaves_nothing_unanswered() -> None:
    """tcp_info read at the right bytes: an established connection whose peer answered
    everything has no resend and no probe out (its first byte, the state, is not 0)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname()) as client:
            accepted, _ = server.accept()
            with accepted:
                client.sendall(b"ping")
                assert accepted.recv(4) == b"ping"
                assert not left_unanswered(client)
    assert not left_unanswered(None)
