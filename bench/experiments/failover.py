"""Node failure under load, on the multi-node swarm of ``scripts/cluster.sh``.

A bounded closed loop runs against every gateway replica while one thing happens to the
cluster: a node drains, a node dies (its link cut, then every process in its namespace
killed, as when a host loses power), or the sources roll to new tasks. Each answer is
sorted as it came: full (every source answered), partial or failed (accepted, and lost),
or not accepted at all. The figures: what was lost after the event, what was in flight at
that moment, how long until every gateway answered fully again, and where the replicas
run afterwards.

Loads go only to the gateways' own addresses on the cluster's bridge, and every loop is
bounded in time.
"""

import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import requests

from bench.harness.swarm import (
    GATEWAYS,
    REQUEST_TIMEOUT_S,
    SOURCES,
    STACK,
    cluster,
    converged,
    docker,
    gateway_urls,
    node_hostname,
    node_ids,
    node_status,
    placement,
    quiet_node,
    wait_converged,
)

Event = Literal["drain", "kill", "update"]
Kind = Literal["full", "partial", "failed", "refused"]
# Every gateway answers fully for this long, on every client: recovered.
RECOVERED_AFTER_S = 10.0


@dataclass(frozen=True)
class Answer:
    sent: float  # seconds from the loop's start
    done: float
    gateway: str
    kind: Kind
    source_nodes: tuple[str, ...] = ()
    error: str | None = None  # the first failed source's, or the request's
    timeline: str | None = None  # a lost answer's waits and calls, as the gateway timed them


@dataclass
class Run:
    event: Event
    node: str | None
    event_at: float = 0.0
    settled_s: float | None = None  # from the event until the swarm had done its part
    replicas_on_node: int = 0  # the sources' replicas on the node, before the event
    answers: list[Answer] = field(default_factory=list)
    placement_after: dict[str, Counter[str]] = field(default_factory=dict)

    def after(self) -> list[Answer]:
        return [a for a in self.answers if a.done >= self.event_at]

    def lost(self) -> int:
        """Requests a gateway accepted that did not get every source's answer."""
        return sum(a.kind in ("partial", "failed") for a in self.after())

    def refused(self) -> int:
        return sum(a.kind == "refused" for a in self.after())

    def in_flight_at_event(self) -> int:
        return sum(a.sent <= self.event_at < a.done for a in self.answers)

    def lost_sent_after(self, delay_s: float) -> int:
        """Lost answers to requests sent `delay_s` or more after the event."""
        since = self.event_at + delay_s
        return sum(a.kind in ("partial", "failed") for a in self.answers if a.sent >= since)

    def lost_after_settled(self) -> int:
        """Lost answers to requests sent once the swarm had done its part: what stale DNS or
        pooled connections to the dead node would cost."""
        if self.settled_s is None:
            return self.lost()
        return self.lost_sent_after(self.settled_s)

    def lost_before(self) -> int:
        return sum(a.kind != "full" for a in self.answers if a.done < self.event_at)

    def recovery_s(self) -> float | None:
        """From the event to the start of the last stretch in which every gateway answered
        fully for RECOVERED_AFTER_S; 0 when nothing was lost; None if it never recovered."""
        bad = [a.done for a in self.after() if a.kind != "full"]
        if not bad:
            return 0.0
        last_bad = max(bad)
        end = max(a.done for a in self.answers)
        if end - last_bad < RECOVERED_AFTER_S:
            return None
        return last_bad - self.event_at

    def lost_answers(self) -> list[str]:
        """Each lost answer: its gateway, when it was sent and done against the event, and
        the first failed source's error."""
        return [
            f"{a.gateway} sent {a.sent - self.event_at:+.2f} s,"
            f" done {a.done - self.event_at:+.2f} s: {a.error} ({a.timeline})"
            for a in self.after()
            if a.kind in ("partial", "failed")
        ]

    def summary(self) -> dict[str, object]:
        kinds = Counter(a.kind for a in self.after())
        errors = Counter(f"{a.gateway.split('#')[0]}: {a.error}" for a in self.after() if a.error)
        latencies = [a.done - a.sent for a in self.after() if a.kind == "full"]
        return {
            "event": self.event,
            "node": self.node,
            "answers_after_event": len(self.after()),
            "kinds_after_event": dict(kinds),
            "lost": self.lost(),
            "errors": dict(errors.most_common(5)),
            "refused": self.refused(),
            "in_flight_at_event": self.in_flight_at_event(),
            "replicas_on_node": self.replicas_on_node,
            "lost_after_settled": self.lost_after_settled(),
            "lost_before_event": self.lost_before(),
            "recovery_s": None if self.recovery_s() is None else round(self.recovery_s() or 0, 1),
            "swarm_settled_s": None if self.settled_s is None else round(self.settled_s, 1),
            "full_p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "placement_after": {s: dict(c) for s, c in sorted(self.placement_after.items())},
            "lost_answers": self.lost_answers(),
        }


def timeline(response: requests.Response) -> str | None:
    """What a gateway says it did with a request, in ms: its wait, each call's start and
    length (! when it failed), and the whole fan-out."""
    try:
        body = response.json()
        calls = " ".join(
            f"{s['name']}@{s['started_ms']:g}+{s['elapsed_ms']:g}{'' if s['ok'] else '!'}"
            for s in body["sources"]
        )
        return f"queued {body['queued_ms']:g}, {calls}, fan-out {body['elapsed_ms']:g}"
    except (ValueError, KeyError, TypeError):
        return None


def classify(response: requests.Response) -> tuple[Kind, tuple[str, ...], str | None]:
    try:
        body = response.json()
        sources = body["sources"]
    except (ValueError, KeyError, TypeError):
        return "failed", (), f"HTTP {response.status_code}"
    nodes = tuple(str(s.get("node")) for s in sources if s.get("ok"))
    failed = [f"{s['name']}: {s.get('error')}" for s in sources if not s["ok"]]
    if response.status_code == 200 and not failed:
        return "full", nodes, None
    kind: Kind = "partial" if response.status_code == 200 else "failed"
    return kind, nodes, failed[0] if failed else f"HTTP {response.status_code}"


def closed_loop(
    urls: dict[str, str],
    clients: int,
    run: Run,
    event: Callable[[], None],
    settled: Callable[[], bool],
    event_after_s: float,
    max_s: float,
) -> None:
    """`clients` loops per gateway URL until `max_s`, or until the swarm has settled after
    the event and every gateway has answered fully for RECOVERED_AFTER_S since; the event
    fires once, `event_after_s` into the loop."""
    start = time.perf_counter()
    lock = threading.Lock()
    stop = threading.Event()

    def now() -> float:
        return time.perf_counter() - start

    def client(gateway: str, url: str) -> None:
        with requests.Session() as session:
            while not stop.is_set() and now() < max_s:
                sent = now()
                kind: Kind = "refused"
                nodes: tuple[str, ...] = ()
                told = None
                try:
                    response = session.get(f"{url}/news", timeout=REQUEST_TIMEOUT_S)
                    kind, nodes, error = classify(response)
                    told = None if kind == "full" else timeline(response)
                except requests.RequestException as exc:
                    error = type(exc).__name__
                    time.sleep(0.2)  # a gateway that is not there is not hammered
                with lock:
                    run.answers.append(Answer(sent, now(), gateway, kind, nodes, error, told))

    threads = [
        threading.Thread(target=client, args=(gateway, url), daemon=True)
        for gateway, url in urls.items()
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(event_after_s)
    run.event_at = now()
    event()
    settled_at = None
    while now() < max_s:
        time.sleep(1)
        if settled_at is None and settled():
            settled_at = now()
            run.settled_s = settled_at - run.event_at
        with lock:
            recovered = run.recovery_s() is not None
        if settled_at is not None and recovered and now() - settled_at > RECOVERED_AFTER_S:
            break
    stop.set()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_S + 5)


def settled_after(event: Event, node: str | None) -> Callable[[], bool]:
    """When the swarm has done its part: the dead node is down, or the drained node runs
    nothing, and every service runs all its replicas again."""
    hostname = None if node is None else node_hostname(node)

    def settled() -> bool:
        if event == "kill" and node_status(str(node)) != "down":
            return False
        if event == "drain" and any(hostname in where for where in placement().values()):
            return False
        return converged()

    return settled


def failover(event: Event, clients: int = 5, max_s: float = 150.0, lead_s: float = 8.0) -> Run:
    """Run the loop against every gateway replica, and fire the event `lead_s` in."""
    where = placement()
    gateway_nodes = {node for service in GATEWAYS for node in where.get(service, {})}
    node = None if event == "update" else quiet_node(gateway_nodes)
    ids = node_ids()

    def act() -> None:
        if event == "drain":
            docker("node", "update", "--availability", "drain", ids[str(node)])
        elif event == "kill":
            cluster("kill", str(node))
        else:
            # A rolling update of every source, one task at a time, start-first: each new
            # replica is healthy before the old one stops (docker-compose.swarm.yml).
            for source in SOURCES:
                docker("service", "update", "--detach", "--force", f"{STACK}_{source}")

    run = Run(event, node)
    if node is not None:
        hostname = node_hostname(node)
        run.replicas_on_node = sum(where.get(source, Counter())[hostname] for source in SOURCES)
    settled = settled_after(event, node)
    closed_loop(gateway_urls(), clients, run, act, settled, lead_s, max_s)
    if event != "kill":
        wait_converged()
    run.placement_after = placement()
    return run
