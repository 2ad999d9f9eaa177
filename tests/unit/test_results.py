"""The README quotes the results files: every figure it shows must be the one they hold."""

import json
import re
from pathlib import Path
from typing import Any

from bench.tables import sweep_brief

ROOT = Path(__file__).resolve().parents[2]
CLAIMS = "### The blog post's claims"
ROW = re.compile(r"\| ([\d.]+) / ([\d.]+) \| (holds with a limit|holds|does not hold)\b")


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(title)
    end = text.find("\n#", start + len(title))
    return text[start : end if end != -1 else None]


def test_the_readme_claims_are_the_results_files() -> None:
    results = json.loads((ROOT / "docs" / "results" / "claims.json").read_text())
    measured = {
        (f"{row['measured']:.2f}", f"{row['ideal']:.2f}", row["verdict"])
        for row in results["rows"]
        if row["measured"] is not None
    }
    quoted = ROW.findall(readme_section(CLAIMS))
    assert len(quoted) >= 8
    for figures in quoted:
        assert figures in measured, f"the README quotes {figures}, docs/results/claims.json not"


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


def test_the_readme_quotes_the_full_sweep_at_rho_0_8() -> None:
    results = sweep_results("sweep")
    assert results["meta"]["preset"] == "full" and results["meta"]["env_overrides"] == {}
    (point,) = [p for p in results["points"] if p["gateway"] == "sync" and p["rho"] == 0.8]
    servers = results["meta"]["capacities"]["sync"]["servers"]
    row = (
        f"| sync, Poisson arrivals at 0.8 of capacity: mean wait, measured ± s.e. / M/D/{servers}"
        f" | {point['wait_mean_ms']:.1f} ± {point['wait_error_ms']:.1f} ms"
        f" | {point['predicted_mean_ms']:.1f} ms | sweep |"
    )
    readme = (ROOT / "README.md").read_text()
    assert row in readme
    # The sentence under the table: the run, and the two yardsticks beside theory's.
    meta = results["meta"]
    assert f"`make sweep PRESET=full` of\n{meta['started_at'][:10]} at `{meta['commit']}`" in readme
    spread = f"{point['spread_low_ms']:.1f} to {point['spread_high_ms']:.1f} ms"
    assert f"(here {spread} for {point['window_s'] / 60:g} minutes)" in readme
    assert f"ideal queue of {servers} tokens is {point['replayed_mean_ms']:.1f} ms" in readme
