"""The README on one screen, and every measured number in it and in docs/ its results file's
(bench/docs/blocks.py, bench/docs/pages.py)."""

import json
import shutil
from pathlib import Path

import pytest

from bench.docs import blocks, readme
from bench.docs.pages import PAGES
from bench.harness.topology import ROOT

README = (ROOT / "README.md").read_text()
EVERY_BLOCK = [(page, name) for page in PAGES for name in page.blocks]


def quoted(text: str, name: str) -> str:
    """The block named `name` as the page has it now."""
    found = blocks.marker(name).search(text)
    assert found is not None, f"no block measured:{name}"
    return found.group(1)


def test_the_readme_fits_on_one_screen() -> None:
    assert len(README.splitlines()) <= 90


@pytest.mark.parametrize(
    ("page", "name"), EVERY_BLOCK, ids=[f"{page.name}:{name}" for page, name in EVERY_BLOCK]
)
def test_each_measured_block_is_what_its_results_files_give(page: blocks.Page, name: str) -> None:
    assert quoted(page.path.read_text(), name) == page.blocks[name](blocks.RESULTS), (
        f"{page.name}'s {name} block differs from docs/results: python -m bench readme"
    )


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_marked_block_has_its_builder_and_appears_once(page: blocks.Page) -> None:
    names = blocks.MARKER.findall(page.path.read_text())
    assert sorted(names) == sorted(page.blocks), f"{page.name}: python -m bench readme"


def test_the_headline_has_six_rows_at_most_and_every_one_has_its_ideal() -> None:
    rows = readme.headline_rows(json.loads((blocks.RESULTS / "results.json").read_text()))
    assert 4 <= len(rows) <= 6
    assert all(measured > 0 and ideal > 0 for _, measured, ideal in rows)


def test_the_readme_shows_eight_measured_claims_at_least() -> None:
    results = json.loads((blocks.RESULTS / "claims.json").read_text())
    measured = {row["key"] for row in results["rows"] if row["measured"] is not None}
    assert set(readme.CLAIM_BRIEFS) <= measured and len(readme.CLAIM_BRIEFS) >= 8
    assert all(f"| {brief} |" in README for brief in readme.CLAIM_BRIEFS.values())


@pytest.fixture
def results_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    shutil.copytree(blocks.RESULTS, folder, ignore=shutil.ignore_patterns("*.png"))
    return folder


def test_a_changed_number_in_a_results_file_changes_the_block(results_copy: Path) -> None:
    """The blocks are built from the files, not kept beside them."""
    assert blocks.rewritten(README, readme.BLOCKS, results_copy) == README
    claims = json.loads((results_copy / "claims.json").read_text())
    measured = next(row for row in claims["rows"] if row["key"] in readme.CLAIM_BRIEFS)
    measured["measured"] += 0.5
    (results_copy / "claims.json").write_text(json.dumps(claims))
    changed = blocks.rewritten(README, readme.BLOCKS, results_copy)
    assert changed != README and f"{measured['measured']:.2f} / " in changed


def test_a_changed_row_of_the_matrix_changes_the_docs_tables(results_copy: Path) -> None:
    (benchmark,) = (page for page in PAGES if page.name == "docs/benchmark.md")
    text = benchmark.path.read_text()
    assert blocks.rewritten(text, benchmark.blocks, results_copy) == text
    results = json.loads((results_copy / "results.json").read_text())
    sync = next(run for run in results["runs"] if run["series"] == "sync" and run["load"] == "10")
    sync["throughput"] = 1234.5
    (results_copy / "results.json").write_text(json.dumps(results))
    changed = blocks.rewritten(text, benchmark.blocks, results_copy)
    assert "| sync | 1 | 10 | 1,234.5 |" in changed and "| sync | 1 | 10 | 1,234.5 |" not in text


def test_a_page_without_a_block_is_refused() -> None:
    with pytest.raises(LookupError, match="measured:headline"):
        blocks.rewritten(README.replace("<!-- measured:headline -->", ""), readme.BLOCKS)


def test_the_screenshot_says_when_and_at_which_commit_it_was_taken() -> None:
    """make screenshot writes console-news.json beside the picture; the README's caption
    quotes its date and commit, so a stale picture shows."""
    meta = json.loads((blocks.RESULTS / "console-news.json").read_text())["meta"]
    assert not meta["commit"].endswith("-dirty")
    (line,) = [line for line in README.splitlines() if "results/console-news.png" in line]
    assert f"{meta['started_at'][:10]} at {meta['commit']}" in line
