"""Measured blocks: every part of README.md and docs/ that quotes a results file.

A block sits between two markers, ``<!-- measured:NAME -->`` and ``<!-- /measured:NAME -->``,
and a builder writes it from docs/results. ``python -m bench readme`` rewrites every block
of every page; tests/unit/test_readme.py fails when one differs from what its files give,
or when a page has a marker no builder writes. So a number in a block is always the one
its results file holds, and the prose around the blocks quotes no measured number.
"""

import json
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness.topology import ROOT

RESULTS = ROOT / "docs" / "results"
Record = Mapping[str, Any]
# A builder reads the results folder (a test hands it a copy) and returns the block's text.
Builder = Callable[[Path], str]
MARKER = re.compile(r"<!-- measured:([a-z0-9-]+) -->")


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def ran(meta: Record, started: str) -> str:
    """Which run a results file holds: its date and commit, and any setting other than
    .env's (its command and machine are in the file and its summary)."""
    overrides = " ".join(f"{k}={v}" for k, v in meta.get("env_overrides", {}).items())
    made = f"{started[:10]} at `{meta['commit']}`"
    return f"{made} with `{overrides}`" if overrides else made


def wrapped(text: str) -> list[str]:
    # Never inside a code span or a link: a line may run long rather than break one.
    return textwrap.wrap(text, width=100, break_long_words=False, break_on_hyphens=False)


def ratio(value: float) -> str:
    return f"{value:.2f}"


@dataclass(frozen=True)
class Page:
    """A page of the docs and the builders of its blocks."""

    path: Path
    blocks: Mapping[str, Builder]

    @property
    def name(self) -> str:
        return str(self.path.relative_to(ROOT))


def marker(name: str) -> re.Pattern[str]:
    # An empty block is its two markers on two lines: no line between them.
    return re.compile(
        rf"<!-- measured:{re.escape(name)} -->\n(.*?)\n?<!-- /measured:{re.escape(name)} -->",
        re.DOTALL,
    )


def _found(text: str, name: str) -> re.Match[str]:
    found = marker(name).search(text)
    if found is None:
        raise LookupError(f"no block measured:{name}")
    return found


def rewritten(text: str, blocks: Mapping[str, Builder], folder: Path = RESULTS) -> str:
    """`text` with every block built anew from the results files in `folder`."""
    for name, build in blocks.items():
        found = _found(text, name)
        block = f"<!-- measured:{name} -->\n{build(folder)}\n<!-- /measured:{name} -->"
        text = text[: found.start()] + block + text[found.end() :]
    return text
