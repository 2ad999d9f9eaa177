"""Every page that quotes a results file, and the builders of its blocks (bench/docs/blocks.py):
``python -m bench readme`` writes them all, and tests/unit/test_readme.py checks them."""

from bench.docs import readme
from bench.docs.blocks import Page
from bench.docs.docblocks import DOC_PAGES
from bench.harness.topology import ROOT

PAGES = (
    Page(readme.README, readme.BLOCKS),
    *(Page(ROOT / path, blocks) for path, blocks in DOC_PAGES.items()),
)
