"""The results files the docs quote: made by full runs at clean commits, with the settings
they ran with (the blocks that quote them: tests/unit/test_readme.py)."""

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def test_the_claims_results_come_from_a_full_run() -> None:
    results = json.loads((ROOT / "docs" / "results" / "claims.json").read_text())
    assert results["preset"] == "full"
    assert not results["meta"]["commit"].endswith("-dirty")
    assert "(preset full)" in (ROOT / "docs" / "results" / "claims.md").read_text()


def sweep_results(folder: str) -> dict[str, Any]:
    results: dict[str, Any] = json.loads(
        (ROOT / "docs" / "results" / folder / "sweep.json").read_text()
    )
    assert not results["meta"]["commit"].endswith("-dirty")
    return results


def test_the_four_token_sweep_ran_with_four_tokens_and_the_other_as_env_sets_it() -> None:
    full, four_tokens = sweep_results("sweep"), sweep_results("sweep-4-tokens")
    assert four_tokens["meta"]["env_overrides"] == {"SYNC_THREADPOOL_TOKENS": "4"}
    assert full["meta"]["env_overrides"] == {}


def test_the_readmes_runs_are_full_runs_at_clean_commits() -> None:
    results = ROOT / "docs" / "results"
    full = json.loads((results / "results.json").read_text())["meta"]
    swarm = json.loads((results / "scale-out" / "results.json").read_text())["meta"]
    tour = json.loads((results / "tour.json").read_text())["meta"]
    cost = json.loads((results / "cost.json").read_text())["meta"]
    idle = json.loads((results / "idle.json").read_text())["meta"]
    assert (full["preset"], swarm["preset"]) == ("full", "swarm full")
    compose = (full, tour, cost, idle)
    assert not any(meta["commit"].endswith("-dirty") for meta in (*compose, swarm))
    # The compose runs on the stack as .env sets it; the swarm's may keep the machine for
    # the gateways with fewer source replicas, which its meta then says.
    assert all(meta["env_overrides"] == {} for meta in compose)


def test_every_results_file_says_which_command_made_it_at_which_commit_and_when() -> None:
    files = sorted((ROOT / "docs" / "results").rglob("*.json"))
    assert len(files) >= 10
    for path in files:
        meta = json.loads(path.read_text()).get("meta", {})
        for key in ("command", "commit", "started_at"):
            assert meta.get(key), f"{path.relative_to(ROOT)}: no {key} in its meta"
        assert str(meta["started_at"])[:4].isdigit(), path
