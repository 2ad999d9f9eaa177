"""The README's curl tour, recorded: one answer of each gateway's ``/news`` from the running
stack, trimmed to the fields that tell the story, with the run's date and commit.

``python -m bench tour`` writes docs/results/tour.json; bench/readme.py draws the README's
tour from it, so the output the README shows is output the stack gave.
"""

import json
import time
from typing import Any

from bench.stack import get_json, git_commit, machine_description
from bench.topology import env_overrides

# What each gateway's answer shows a newcomer.
TOUR = {
    "sync": "sync: each call starts when the last one ends",
    "async": "async: the three calls start together",
}
SOURCE_FIELDS = ("name", "ok", "started_ms", "elapsed_ms")


def trimmed(answer: dict[str, Any]) -> dict[str, Any]:
    return {
        "gateway": answer["gateway"],
        "mode": answer["mode"],
        "elapsed_ms": answer["elapsed_ms"],
        "partial": answer["partial"],
        "sources": [{k: s[k] for k in SOURCE_FIELDS} for s in answer["sources"]],
        "articles": len(answer["articles"]),
    }


def record_tour(bases: dict[str, str], command: str, warm: int = 2) -> dict[str, Any]:
    """One answer of each gateway's /news, after `warm` others (the first connections)."""
    answers = []
    for gateway in TOUR:
        for _ in range(warm):
            get_json(f"{bases[gateway]}/news")
        answers.append(trimmed(get_json(f"{bases[gateway]}/news")))
    meta = {
        "command": command,
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": git_commit(),
        "machine": machine_description(),
        "env_overrides": env_overrides(),
    }
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
