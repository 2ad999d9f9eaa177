"""The sync gateway's round robin over a source's replicas (gateway/balancing.py)."""

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from gateway.balancing import AddressRotation, Resolver
from gateway.clients import build_session
from gateway.config import GatewaySettings
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
