"""The README on one screen, and every number in it its results file's (bench/readme.py)."""

import json
from pathlib import Path

import pytest

from bench import readme
from bench.topology import ROOT

README = (ROOT / "README.md").read_text()


def test_the_readme_fits_on_one_screen() -> None:
    assert len(README.splitlines()) <= 90


@pytest.mark.parametrize("name", list(readme.BLOCKS))
def test_each_measured_block_is_what_its_results_files_give(name: str) -> None:
    assert readme.quoted(README, name) == readme.BLOCKS[name](readme.RESULTS), (
        f"README.md's {name} block differs from docs/results: python -m bench readme"
    )


def test_the_headline_has_six_rows_at_most_and_every_one_has_its_ideal() -> None:
    rows = readme.headline_rows(json.loads((readme.RESULTS / "results.json").read_text()))
    assert 4 <= len(rows) <= 6
    assert all(measured > 0 and ideal > 0 for _, measured, ideal in rows)


def test_the_readme_shows_eight_measured_claims_at_least() -> None:
    results = json.loads((readme.RESULTS / "claims.json").read_text())
    measured = {row["key"] for row in results["rows"] if row["measured"] is not None}
    assert set(readme.CLAIM_BRIEFS) <= measured and len(readme.CLAIM_BRIEFS) >= 8
    assert all(f"| {brief} |" in README for brief in readme.CLAIM_BRIEFS.values())


def test_a_changed_number_in_a_results_file_changes_the_block(tmp_path: Path) -> None:
    """The blocks are built from the files, not kept beside them."""
    for name in ("results.json", "claims.json", "tour.json"):
        (tmp_path / name).write_text((readme.RESULTS / name).read_text())
    (tmp_path / "scale-out").mkdir()
    scale_out = (readme.RESULTS / "scale-out" / "results.json").read_text()
    (tmp_path / "scale-out" / "results.json").write_text(scale_out)
    assert readme.rewritten(README, tmp_path) == README
    claims = json.loads((tmp_path / "claims.json").read_text())
    measured = next(row for row in claims["rows"] if row["key"] in readme.CLAIM_BRIEFS)
    measured["measured"] += 0.5
    (tmp_path / "claims.json").write_text(json.dumps(claims))
    changed = readme.rewritten(README, tmp_path)
    assert changed != README and f"{measured['measured']:.2f} / " in changed


def test_a_readme_without_a_block_is_refused() -> None:
    with pytest.raises(LookupError, match="measured:headline"):
        readme.rewritten(README.replace("<!-- measured:headline -->", ""))
