"""bench/experiments/failover.py's arithmetic: how answers are sorted, what counts as lost,
when the gateways count as recovered."""

import json

import pytest
import requests

from bench.experiments.failover import Answer, Run, classify


def response(status: int, body: object) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer._content = json.dumps(body).encode()
    return answer


def source(name: str, ok: bool, node: str | None = "n1") -> dict[str, object]:
    return {"name": name, "ok": ok, "node": node if ok else None, "error": None if ok else "x"}


def test_answers_are_full_partial_or_failed() -> None:
    full = {"sources": [source("wire", True), source("gazette", True, "n2")]}
    assert classify(response(200, full)) == ("full", ("n1", "n2"), None)
    partial = {"sources": [source("wire", True), source("gazette", False)]}
    assert classify(response(200, partial)) == ("partial", ("n1",), "gazette: x")
    # Every source failed: the gateway's 502, with the first source's reason.
    none = {"sources": [source("wire", False)]}
    assert classify(response(502, none)) == ("failed", (), "wire: x")
    assert classify(response(503, {"detail": "overloaded"})) == ("failed", (), "HTTP 503")


def run_with(*answers: tuple[float, float, str], event_at: float = 10.0) -> Run:
    run = Run("kill", "n3", event_at=event_at, settled_s=5.0)
    run.answers = [Answer(sent, done, "sync#1", kind) for sent, done, kind in answers]  # type: ignore[arg-type]
    return run


def test_lost_counts_accepted_answers_that_missed_a_source_after_the_event() -> None:
    run = run_with(
        (0.0, 1.0, "full"),
        (8.0, 9.0, "partial"),  # before the event: not the event's
        (9.5, 11.0, "partial"),  # in flight at the event
        (12.0, 13.0, "failed"),
        (12.0, 13.0, "refused"),  # never accepted
        (14.0, 30.0, "full"),
    )
    assert (run.lost(), run.refused(), run.lost_before()) == (2, 1, 1)
    assert run.in_flight_at_event() == 1
    # Settled 5 s after the event, at 15: nothing sent after that was lost.
    assert run.lost_after_settled() == 0
    run.answers.append(Answer(16.0, 17.0, "sync#1", "partial"))
    assert run.lost_after_settled() == 1


def test_recovery_ends_at_the_last_bad_answer_once_good_ones_held_long_enough() -> None:
    assert run_with((11.0, 12.0, "full"), (12.0, 30.0, "full")).recovery_s() == 0.0
    recovered = run_with((11.0, 14.5, "partial"), (15.0, 30.0, "full"))
    assert recovered.recovery_s() == pytest.approx(4.5)
    # Only 5 s of full answers after the last lost one: not yet recovered.
    assert run_with((11.0, 14.5, "partial"), (15.0, 19.5, "full")).recovery_s() is None
    summary = recovered.summary()
    assert summary["lost"] == 1 and summary["recovery_s"] == 4.5


def test_lost_sent_after_counts_only_what_was_sent_that_long_after_the_event() -> None:
    run = Run("kill", "n2", event_at=10.0)
    run.answers = [
        Answer(9.0, 12.0, "sync#1", "partial"),  # in flight at the event
        Answer(10.5, 13.0, "sync#1", "partial"),  # sent just after it
        Answer(13.0, 14.0, "sync#1", "full"),
        Answer(13.0, 15.5, "async#1", "failed"),  # sent a deadline after it
    ]
    assert run.lost() == 3 and run.in_flight_at_event() == 1
    assert run.lost_sent_after(0) == 2
    assert run.lost_sent_after(2.5) == 1
    assert run.lost_sent_after(3.5) == 0
