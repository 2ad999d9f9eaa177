"""The results files the docs quote: made by full runs at clean commits, and quoted as they
are (the README's blocks: tests/unit/test_readme.py)."""

import json
from pathlib import Path
from typing import Any

from bench.tables import sweep_brief

ROOT = Path(__file__).resolve().parents[2]


def test_the_claims_results_come_from_a_full_run() -> None:
    results = json.loads((ROOT / "docs" / "results" / "claims.json").read_text())
    assert results["preset"] == "full"
    assert not results["commit"].endswith("-dirty")
    assert "(preset full)" in (ROOT / "docs" / "results" / "claims.md").read_text()


def sweep_results(folder: str) -> dict[str, Any]:
    results: dict[str, Any] = json.loads(
        (ROOT / "docs" / "results" / folder / "sweep.json").read_text()
    )
    assert not results["meta"]["commit"].endswith("-dirty")
    return results


def test_the_docs_quote_both_sweeps_as_their_results_files_have_them() -> None:
    docs = (ROOT / "docs" / "benchmark.md").read_text()
    full, four_tokens = sweep_results("sweep"), sweep_results("sweep-4-tokens")
    assert four_tokens["meta"]["env_overrides"] == {"SYNC_THREADPOOL_TOKENS": "4"}
    for results in (full, four_tokens):
        assert sweep_brief(results["points"]) in docs


def test_the_readmes_runs_are_full_runs_at_clean_commits() -> None:
    results = ROOT / "docs" / "results"
    full = json.loads((results / "results.json").read_text())["meta"]
    swarm = json.loads((results / "scale-out" / "results.json").read_text())["meta"]
    tour = json.loads((results / "tour.json").read_text())["meta"]
    assert (full["preset"], swarm["preset"]) == ("full", "swarm full")
    assert not any(meta["commit"].endswith("-dirty") for meta in (full, swarm, tour))
