"""The README's curl tour and docs/failure-modes.md's faults, recorded: answers of the
running stack, trimmed to the fields that tell the story, with the run's date and commit.

``python -m bench tour`` writes docs/results/tour.json: one answer of each gateway's
``/news``, then each fault injected into one source, every source failing at once, and
two bad inputs. bench/docs/readme.py and bench/docs/docblocks.py draw the console sessions from it,
so the output the docs show is output the stack gave.
"""

import json
from typing import Any, get_args

from bench.harness.http import asked, get_json
from bench.harness.results import run_meta
from core.news import FaultKind

# What each gateway's answer shows a newcomer.
TOUR = {
    "sync": "sync: each call starts when the last one ends",
    "async": "async: the three calls start together",
}
SOURCE_FIELDS = ("name", "ok", "started_ms", "elapsed_ms")
# Each fault, injected into one source of the async gateway: its answer, and the time
# the client measured, for the deadline to show.
FAULTED_SOURCE = "gazette"
FAULTS: tuple[str, ...] = get_args(FaultKind)
FAILED_FIELDS = ("name", "ok", "status", "started_ms", "elapsed_ms", "error_kind", "error")
# Every source failing at once, on the sync gateway, whose calls in a row share the one
# deadline; then two inputs the gateway refuses, each with a 422 that names its field.
ALL_FAILING = (
    "fault=wire:hang,gazette:hang,chronicle:hang&deadline_ms=1000",
    "fault=wire:error,gazette:reset,chronicle:hang&deadline_ms=1000",
)
REFUSED = ("fault=gazette:explode", "deadline_ms=60000")


def trimmed(answer: dict[str, Any]) -> dict[str, Any]:
    return {
        "gateway": answer["gateway"],
        "mode": answer["mode"],
        "elapsed_ms": answer["elapsed_ms"],
        "partial": answer["partial"],
        "sources": [{k: s[k] for k in SOURCE_FIELDS} for s in answer["sources"]],
        "articles": len(answer["articles"]),
    }


def failed(answer: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """A failing fan-out: its own fields, and its sources' (or one source's) results."""
    sources = [
        {k: s.get(k) for k in FAILED_FIELDS}
        for s in answer["sources"]
        if source is None or s["name"] == source
    ]
    head = {k: answer[k] for k in ("gateway", "mode", "elapsed_ms", "deadline_ms", "partial")}
    return {**head, "sources": sources}


def record_faults(bases: dict[str, str]) -> dict[str, Any]:
    faults, all_failing, refused = [], [], []
    for fault in FAULTS:
        query = f"fault={FAULTED_SOURCE}:{fault}"
        status, body, seconds = asked(f"{bases['async']}/news?{query}")
        faults.append(
            {
                "query": query,
                "status": status,
                "seconds": seconds,
                "answer": failed(body, FAULTED_SOURCE),
            }
        )
    for query in ALL_FAILING:
        status, body, seconds = asked(f"{bases['sync']}/news?{query}")
        all_failing.append(
            {"query": query, "status": status, "seconds": seconds, "answer": failed(body)}
        )
    for query in REFUSED:
        status, body, _ = asked(f"{bases['sync']}/news?{query}")
        refused.append({"query": query, "status": status, "answer": body})
    return {"faults": faults, "all_failing": all_failing, "refused": refused}


def record_tour(bases: dict[str, str], command: str, warm: int = 2) -> dict[str, Any]:
    """One answer of each gateway's /news, after `warm` others (the first connections)."""
    meta, answers = run_meta(command), []
    for gateway in TOUR:
        for _ in range(warm):
            get_json(f"{bases[gateway]}/news")
        answers.append(trimmed(get_json(f"{bases[gateway]}/news")))
    return {"meta": meta, "answers": answers}


def render_tour(recorded: dict[str, Any], ports: dict[str, int]) -> str:
    """The console lines the README shows: each curl, and its answer, trimmed."""
    lines = ["```console"]
    for answer in recorded["answers"]:
        gateway = answer["gateway"]
        lines.append(f"$ curl -s localhost:{ports[gateway]}/news    # {TOUR[gateway]}")
        head = {k: answer[k] for k in ("gateway", "mode", "elapsed_ms", "partial")}
        lines.append(json.dumps(head)[:-1] + ', "sources": [')
        calls = [json.dumps(source) for source in answer["sources"]]
        articles = f'"articles": [...{answer["articles"]}...]}}'
        lines.append(",\n".join(f"   {call}" for call in calls) + f"], {articles}")
    lines.append("```")
    return "\n".join(lines)


def _session(shown: list[dict[str, Any]], port: int) -> list[str]:
    lines = []
    for one in shown:
        lines.append(f"$ curl -s 'localhost:{port}/news?{one['query']}'")
        answer = one["answer"]
        if "sources" in answer:  # a fan-out: its own fields, then its sources' results
            head = {k: answer[k] for k in ("elapsed_ms", "deadline_ms", "partial")}
            lines += [json.dumps(head), *(json.dumps(s) for s in answer["sources"])]
        else:  # a refusal: the body as it came
            lines.append(json.dumps(answer))
        seconds = f" in {one['seconds']:.3f}s" if "seconds" in one else ""
        lines.append(f"HTTP {one['status']}{seconds}")
    return lines


def render_faults(recorded: dict[str, Any], ports: dict[str, int]) -> str:
    """Each fault in one source of the async gateway: the fan-out, the failed source, and
    the status and time the client saw."""
    return "\n".join(["```console", *_session(recorded["faults"], ports["async"]), "```"])


def render_all_failing(recorded: dict[str, Any], ports: dict[str, int]) -> str:
    """Every source failing at once on the sync gateway, then the two refused inputs."""
    shown = [*recorded["all_failing"], *recorded["refused"]]
    return "\n".join(["```console", *_session(shown, ports["sync"]), "```"])
