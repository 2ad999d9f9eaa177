"""The README quotes the results files: every figure it shows must be the one they hold."""

import json
import re
from pathlib import Path

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
